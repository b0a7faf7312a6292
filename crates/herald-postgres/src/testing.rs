//! A fresh PostgreSQL database per test, on the local server.
//!
//! The server comes from `HERALD_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); that database is only used
//! to create and drop `herald_test_<pid>_<random>`. When the server cannot be
//! reached, [`TestDatabase::create`] returns `None` after printing why, so the
//! test returns early, unless `CI=true`, where a missing service must fail.

use crate::mask_password;
use sqlx::{Connection, PgConnection};
use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

pub const URL_VARIABLE: &str = "HERALD_TEST_POSTGRES_URL";
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const TIMEOUT: Duration = Duration::from_secs(5);

/// A database that exists until this value is dropped.
pub struct TestDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl TestDatabase {
    /// Creates the database, or returns `None` (having said so) when
    /// PostgreSQL is not reachable outside CI. Use as
    /// `let Some(db) = TestDatabase::create().await else { return };`.
    pub async fn create() -> Option<Self> {
        let admin_url = std::env::var(URL_VARIABLE).unwrap_or_else(|_| DEFAULT_URL.into());
        let mut admin = match connect(&admin_url).await {
            Ok(admin) => admin,
            Err(error) => {
                let place = mask_password(&admin_url);
                if std::env::var("CI").is_ok_and(|ci| ci == "true") {
                    panic!(
                        "PostgreSQL not reachable at {place} ({error}); CI=true requires it \
                         (set {URL_VARIABLE} to a server where the user may create databases)"
                    );
                }
                eprintln!("skipping: PostgreSQL not reachable at {place} ({error})");
                return None;
            }
        };
        // Random per database, not just per process: tests of one binary run
        // in parallel threads.
        let random = RandomState::new().hash_one(std::time::SystemTime::now()) & 0xffff_ffff;
        let name = format!("herald_test_{}_{random:08x}", std::process::id());
        // The name is built from numbers here, never from input.
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name} failed: {e}"));
        let _ = admin.close().await;
        let url = with_database(&admin_url, &name);
        Some(Self {
            admin_url,
            name,
            url,
        })
    }

    /// The URL of the fresh database, for `storage.url`.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for TestDatabase {
    /// Best effort: a leftover `herald_test_*` database is harmless. `FORCE`
    /// ends the sessions the test's pools may still hold.
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop cannot await, and the test's own runtime may be single-threaded
        // or shutting down, so the drop runs on a runtime of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let mut admin = connect(&admin_url).await?;
                let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                tokio::time::timeout(
                    TIMEOUT,
                    sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut admin),
                )
                .await
                .map_err(|_| "timed out".to_string())?
                .map_err(|e| e.to_string())?;
                Ok::<_, String>(())
            })
        })
        .join();
        if let Ok(Err(error)) = dropped {
            eprintln!("note: could not drop test database {}: {error}", self.name);
        }
    }
}

async fn connect(url: &str) -> Result<PgConnection, String> {
    match tokio::time::timeout(TIMEOUT, PgConnection::connect(url)).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {}s", TIMEOUT.as_secs())),
    }
}

/// `url` with its database (the path) replaced by `name`, keeping user,
/// host and query parameters.
fn with_database(url: &str, name: &str) -> String {
    let authority_at = url.find("://").map_or(0, |at| at + 3);
    let query_at = url.find('?').unwrap_or(url.len());
    let host_at = url[..query_at].rfind('@').map_or(authority_at, |at| at + 1);
    let path_at = url[host_at..query_at]
        .find('/')
        .map_or(query_at, |at| host_at + at);
    format!("{}/{name}{}", &url[..path_at], &url[query_at..])
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_database_is_swapped_and_the_rest_kept() {
        for (base, expected) in [
            (
                "postgres://postgres@127.0.0.1:5432/postgres",
                "postgres://postgres@127.0.0.1:5432/t",
            ),
            (
                "postgres://u:p@h/db?sslmode=disable",
                "postgres://u:p@h/t?sslmode=disable",
            ),
            ("postgresql://h:5432", "postgresql://h:5432/t"),
            ("postgres://u:a/b@h/db", "postgres://u:a/b@h/t"),
        ] {
            assert_eq!(super::with_database(base, "t"), expected);
        }
    }
}
