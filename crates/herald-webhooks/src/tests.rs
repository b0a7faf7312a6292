//! Unit tests: settings checks, the backoff schedule, the signature, and
//! the outbox's claim protocol on SQLite and PostgreSQL.

use crate::outbox::{Claim, Due, NewRow, Outbox};
use crate::{EVENTS, WebhookSettings, signature};
use std::time::Duration;

fn settings() -> WebhookSettings {
    WebhookSettings {
        url: "http://127.0.0.1:9000/hooks".into(),
        secret: "whsec".into(),
        events: Vec::new(),
        timeout: Duration::from_secs(5),
        max_attempts: 5,
        retry_initial: Duration::from_millis(100),
        retry_max: Duration::from_secs(10),
        node_id: "node-a".into(),
    }
}

fn problem(change: impl FnOnce(&mut WebhookSettings)) -> String {
    let mut settings = settings();
    change(&mut settings);
    settings.validate().expect_err("settings should be refused")
}

#[test]
fn valid_settings_pass_with_all_or_some_events() {
    assert_eq!(settings().validate(), Ok(()));
    let mut some = settings();
    some.events = vec!["user.online".into(), "chat.message".into()];
    assert_eq!(some.validate(), Ok(()));
    let mut every = settings();
    every.events = EVENTS.iter().map(|event| event.to_string()).collect();
    assert_eq!(every.validate(), Ok(()));
}

#[test]
fn each_bad_setting_is_named() {
    assert_eq!(
        problem(|s| s.url = "ftp://backend/hooks".into()),
        "webhooks.url: `ftp://backend/hooks` must start with http://"
    );
    assert_eq!(
        problem(|s| s.url = "backend:8000/hooks".into()),
        "webhooks.url: `backend:8000/hooks` must start with http://"
    );
    assert!(
        problem(|s| s.url = "https://backend/hooks".into()).starts_with(
            "webhooks.url: `https://backend/hooks` uses https://, but this build of Herald has no TLS client"
        )
    );
    assert!(
        problem(|s| s.url = "http://exa mple/".into())
            .starts_with("webhooks.url: `http://exa mple/` is not a valid URL: ")
    );
    assert_eq!(
        problem(|s| s.secret.clear()),
        "webhooks.secret must not be empty: it keys X-Herald-Signature"
    );
    assert_eq!(
        problem(|s| s.timeout = Duration::ZERO),
        "webhooks.timeout must be greater than zero"
    );
    assert_eq!(
        problem(|s| s.max_attempts = 0),
        "webhooks.max_attempts must be at least 1"
    );
    assert_eq!(
        problem(|s| s.retry_initial = Duration::ZERO),
        "webhooks.retry_initial must be greater than zero"
    );
    assert_eq!(
        problem(|s| s.retry_max = Duration::from_millis(50)),
        "webhooks.retry_max (50ms) must not be shorter than webhooks.retry_initial (100ms)"
    );
    assert_eq!(
        problem(|s| s.node_id.clear()),
        "webhooks: the node id must not be empty"
    );
}

#[test]
fn unknown_events_are_listed_with_the_known_ones() {
    let known = EVENTS.join(", ");
    assert_eq!(
        problem(|s| s.events = vec!["user.online".into(), "user.joined".into()]),
        format!("webhooks.events: unknown event `user.joined`; known events are {known}")
    );
    assert_eq!(
        problem(|s| s.events = vec!["Connect".into(), "publish".into()]),
        format!("webhooks.events: unknown events `Connect`, `publish`; known events are {known}")
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let message = problem(|s| {
        s.secret.clear();
        s.max_attempts = 0;
    });
    assert_eq!(
        message,
        "webhooks.secret must not be empty: it keys X-Herald-Signature; \
         webhooks.max_attempts must be at least 1"
    );
}

#[test]
fn backoff_doubles_from_retry_initial_up_to_retry_max_with_jitter() {
    let settings = settings();
    for _ in 0..200 {
        for (attempt, full_ms) in [(1, 100), (2, 200), (3, 400), (7, 6_400), (8, 10_000)] {
            let wait = settings.backoff(attempt);
            let (low, high) = (
                Duration::from_millis(full_ms / 2),
                Duration::from_millis(full_ms),
            );
            assert!(
                (low..=high).contains(&wait),
                "attempt {attempt}: {wait:?} not in {low:?}..={high:?}"
            );
        }
        // Far past the cap nothing overflows.
        assert!(settings.backoff(u32::MAX) <= settings.retry_max);
    }
    let waits: std::collections::HashSet<Duration> = (0..50).map(|_| settings.backoff(8)).collect();
    assert!(waits.len() > 1, "the wait is jittered");
}

#[test]
fn signature_is_hmac_sha256_of_timestamp_dot_body_in_lowercase_hex() {
    // Computed independently: printf '%s' '1700000000.<body>' | openssl dgst -sha256 -hmac whsec
    let body = br#"{"id":"x","event":"connect","time":1,"data":{}}"#;
    assert_eq!(
        signature("whsec", 1_700_000_000, body),
        "sha256=a6fd0f39abd8921d398c76b6436d2c627bf56a2b991fe5340514a2167c6d24df"
    );
    assert_ne!(
        signature("whsec", 1_700_000_001, body),
        signature("whsec", 1_700_000_000, body)
    );
    assert_ne!(
        signature("other", 1_700_000_000, body),
        signature("whsec", 1_700_000_000, body)
    );
}

async fn sqlite_outbox() -> (tempfile::TempDir, Outbox) {
    sqlx::any::install_default_drivers();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/w.db?mode=rwc", dir.path().display());
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    let outbox = Outbox::new(pool);
    outbox.migrate().await.unwrap();
    (dir, outbox)
}

/// The claim protocol, on any backend: one winner per attempt, a stale
/// reader loses, a lost claim cannot finish the row, an expired lease can be
/// taken over.
async fn claims_are_exclusive(outbox: &Outbox) {
    // Migrating again is harmless.
    outbox.migrate().await.unwrap();
    let row = NewRow {
        id: "row-1".into(),
        event: "connect",
        body: "{}".into(),
        created_ms: 1_000,
    };
    outbox.insert(std::slice::from_ref(&row)).await.unwrap();
    // A retried batch whose first commit landed is not an error.
    outbox.insert(std::slice::from_ref(&row)).await.unwrap();
    assert_eq!(outbox.pending().await.unwrap(), 1);

    let due = outbox.due(2_000, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].id.as_str(), due[0].attempts), ("row-1", 0));
    assert!(outbox.due(999, 10).await.unwrap().is_empty(), "not due yet");

    assert!(outbox.claim(&due[0], "a", 2_000, 5_000).await.unwrap());
    assert!(!outbox.claim(&due[0], "b", 2_001, 5_001).await.unwrap());
    assert!(outbox.due(3_000, 10).await.unwrap().is_empty(), "leased");

    // a's lease runs out; b takes over.
    let a = Claim {
        owner: "a".into(),
        until_ms: 5_000,
    };
    let expired = outbox.due(6_000, 10).await.unwrap();
    assert_eq!(expired.len(), 1);
    assert!(outbox.claim(&expired[0], "b", 6_000, 9_000).await.unwrap());
    let b = Claim {
        owner: "b".into(),
        until_ms: 9_000,
    };
    // a's late finish changes nothing.
    assert!(!outbox.reschedule("row-1", &a, 1, 7_000).await.unwrap());
    assert!(!outbox.give_up("row-1", &a).await.unwrap());
    assert!(outbox.reschedule("row-1", &b, 1, 7_000).await.unwrap());

    // Rescheduled: not due before 7000, then due with attempts 1 and no lease.
    assert!(outbox.due(6_500, 10).await.unwrap().is_empty());
    let again = outbox.due(7_000, 10).await.unwrap();
    assert_eq!(again[0].attempts, 1);
    // A reader that still holds the row as it was before cannot claim it.
    let stale = Due {
        attempts: 0,
        ..again[0].clone()
    };
    assert!(!outbox.claim(&stale, "c", 7_000, 9_000).await.unwrap());
    assert!(outbox.claim(&again[0], "c", 7_000, 9_000).await.unwrap());
    let c = Claim {
        owner: "c".into(),
        until_ms: 9_000,
    };
    assert!(outbox.give_up("row-1", &c).await.unwrap());
    assert_eq!(outbox.pending().await.unwrap(), 0);
}

#[tokio::test]
async fn sqlite_claims_are_exclusive() {
    let (_dir, outbox) = sqlite_outbox().await;
    claims_are_exclusive(&outbox).await;
}

#[tokio::test]
async fn postgres_claims_are_exclusive() {
    let Some(db) = herald_postgres::testing::TestDatabase::create().await else {
        return;
    };
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(db.url()).await.unwrap();
    let outbox = Outbox::new(pool.clone());
    outbox.migrate().await.unwrap();
    claims_are_exclusive(&outbox).await;
    pool.close().await;
}

#[tokio::test]
async fn delivered_rows_are_deleted_by_id() {
    let (_dir, outbox) = sqlite_outbox().await;
    let rows: Vec<NewRow> = (0..3)
        .map(|n| NewRow {
            id: format!("row-{n}"),
            event: "subscribe",
            body: format!("{{\"n\":{n}}}"),
            created_ms: 10 + n,
        })
        .collect();
    outbox.insert(&rows).await.unwrap();
    let due = outbox.due(100, 2).await.unwrap();
    let ids: Vec<&str> = due.iter().map(|due| due.id.as_str()).collect();
    assert_eq!(ids, ["row-0", "row-1"], "oldest first, at most the limit");
    assert_eq!(due[1].body, "{\"n\":1}");
    outbox.delete("row-0").await.unwrap();
    assert_eq!(outbox.pending().await.unwrap(), 2);
}
