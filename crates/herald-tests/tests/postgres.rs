//! Durable history in PostgreSQL (`storage.url`): the same restart and
//! `kill -9` promises as the embedded default, on a fresh database per test.
//! Without a reachable server these skip, or fail under `CI=true`.

use herald_postgres::testing::TestDatabase;
use herald_tests::broker::{health, wait_until};
use herald_tests::{TestServer, durability, test_config};
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};

#[tokio::test]
async fn history_epoch_offsets_and_idempotency_survive_a_restart() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    durability::history_epoch_offsets_and_idempotency_survive_a_restart(|| {
        let mut config = test_config();
        config.storage.durable = true;
        config.storage.url = Some(db.url().to_string());
        // Nothing may land in SQLite: a path that cannot be a directory
        // would fail start-up if it were used.
        config.storage.path = "/dev/null/herald-must-not-use-sqlite".into();
        config
    })
    .await;
}

#[tokio::test]
async fn kill_9_loses_no_acknowledged_publication() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let storage = format!(
        "url = \"{}\"\npath = \"/dev/null/herald-must-not-use-sqlite\"",
        db.url()
    );
    durability::kill_9_loses_no_acknowledged_publication(dir.path(), &storage).await;
}

/// Losing PostgreSQL takes the node out of rotation within 5 s (503 naming
/// storage), and it comes back once PostgreSQL answers again.
#[tokio::test]
async fn health_is_503_while_postgresql_is_unreachable_and_200_once_it_is_back() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let (url, proxy) = Cut::start(db.url()).await;
    let mut config = test_config();
    config.storage.durable = true;
    config.storage.url = Some(url);
    config.storage.path = "/dev/null/herald-must-not-use-sqlite".into();
    let server = TestServer::start(config).await;
    assert_eq!(health(&server).await.0, 200);

    proxy.set_cut(true);
    let cut_at = Instant::now();
    let reason = wait_until("/health 503", Duration::from_secs(5), async || {
        let (status, body) = health(&server).await;
        (status == 503).then(|| body["reason"].as_str().unwrap_or_default().to_string())
    })
    .await;
    assert!(reason.starts_with("storage: PostgreSQL"), "{reason}");
    eprintln!("503 after {:?}: {reason}", cut_at.elapsed());
    assert!(
        server.metrics().await.contains("herald_storage_up 0"),
        "the gauge shows the outage"
    );

    proxy.set_cut(false);
    wait_until("/health 200 again", Duration::from_secs(5), async || {
        (health(&server).await.0 == 200).then_some(())
    })
    .await;
    let (status, body) = server
        .api("publish", json!({"channel": "news", "data": {"n": 1}}))
        .await;
    assert_eq!(status, 200, "{body}");
}

/// A TCP hop in front of PostgreSQL that can drop every connection and refuse
/// new ones (as a crashed server does), then forward again.
struct Cut {
    cut: tokio::sync::watch::Sender<bool>,
}

impl Cut {
    /// The URL through the hop, and the hop.
    async fn start(url: &str) -> (String, Self) {
        let authority_at = url.find("://").unwrap() + 3;
        let host_at = url.rfind('@').map_or(authority_at, |at| at + 1);
        let path_at = host_at + url[host_at..].find('/').unwrap();
        let upstream = url[host_at..path_at].to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let through = format!(
            "{}{}{}",
            &url[..host_at],
            listener.local_addr().unwrap(),
            &url[path_at..]
        );
        let (cut, cut_changes) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if *cut_changes.borrow() {
                    continue; // dropped: the connection is closed at once
                }
                let upstream = upstream.clone();
                let mut cut_changes = cut_changes.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut_changes.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        (through, Self { cut })
    }

    fn set_cut(&self, cut: bool) {
        self.cut.send_replace(cut);
    }
}
