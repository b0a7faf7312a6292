//! The inbox and chat against real databases: SQLite in memory and on disk,
//! and a fresh PostgreSQL database. Live pushes are read from a listener
//! subscribed to the channels through the node's hub.

use super::*;
use crate::chat::{CreateRequest, Draft as ChatDraft, Kind};
use crate::inbox::{Action, ListQuery, NotifyRequest, Preferences, Target};
use herald_core::Namespaces;
use herald_core::hub::{ClientHandle, SubscriberOptions};
use herald_core::node::{ClientLimits, NodeConfig};
use herald_core::outbox::Outbox;
use herald_core::token::{TokenVerifier, VerifierKeys};
use herald_postgres::testing::TestDatabase;
use herald_protocol::DetailedError;
use serde_json::json;
use std::time::Duration;

struct Fixture {
    apps: Arc<Apps>,
    node: Arc<Node>,
}

fn node() -> Arc<Node> {
    let mut namespaces = Namespaces::default();
    namespaces.named.extend(namespaces_of(&Settings::default()));
    let verifier = TokenVerifier::new(&VerifierKeys {
        hmac_secret: Some("s".into()),
        ..Default::default()
    })
    .unwrap();
    let config = NodeConfig {
        name: "test".into(),
        namespaces,
        limits: ClientLimits::default(),
    };
    Arc::new(Node::new(config, verifier))
}

fn namespaces_of(settings: &Settings) -> Vec<(String, ChannelOptions)> {
    namespaces(settings)
}

async fn fixture(db: Db) -> Fixture {
    let node = node();
    let apps = Apps::install(Settings::default(), db, &node);
    Fixture { apps, node }
}

/// Receives what is published to `channel`.
struct Listener(Arc<Outbox>);

impl Fixture {
    fn listen(&self, channel: &str) -> Listener {
        let outbox = Arc::new(Outbox::new(Default::default()));
        let handle = Arc::new(ClientHandle {
            id: uuid(),
            user: "listener".into(),
            outbox: outbox.clone(),
            control: Default::default(),
            emulation: None,
        });
        self.node
            .hub
            .subscribe(channel, handle, SubscriberOptions::default(), None);
        Listener(outbox)
    }
}

fn uuid() -> Arc<str> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("listener-{}", NEXT.fetch_add(1, Ordering::Relaxed)).into()
}

impl Listener {
    /// The data of every publication received so far; waits for at least one.
    async fn pushes(&self) -> Vec<Value> {
        let mut frames = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), self.0.drain(&mut frames))
            .await
            .expect("a push within 5 s");
        frames
            .iter()
            .flat_map(|f| {
                std::str::from_utf8(f)
                    .unwrap()
                    .lines()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .map(|line| {
                serde_json::from_str::<Value>(&line).unwrap()["push"]["pub"]["data"].clone()
            })
            .collect()
    }
}

fn notify(users: &[&str], title: &str) -> NotifyRequest {
    serde_json::from_value(json!({"users": users, "title": title})).unwrap()
}

fn query(value: Value) -> ListQuery {
    serde_json::from_value(value).unwrap()
}

async fn inbox_scenario(f: Fixture) {
    let apps = &f.apps;
    let bell = f.listen("inbox:#42");
    let ids = apps.notify(notify(&["42", "43"], "first")).await.unwrap();
    assert_eq!(ids.len(), 2);
    let pushes = bell.pushes().await;
    assert_eq!(pushes[0]["type"], "notification");
    assert_eq!(pushes[0]["notification"]["title"], "first");
    assert_eq!(pushes[0]["notification"]["id"], json!(ids[0]));
    assert_eq!(pushes[1], json!({"type": "unread_count", "count": 1}));

    // dedupe: the same key answers the first id and pushes nothing new
    let mut keyed = notify(&["42"], "keyed");
    keyed.dedupe_key = Some("k1".into());
    let first = apps.notify(keyed).await.unwrap();
    let mut again = notify(&["42"], "keyed again");
    again.dedupe_key = Some("k1".into());
    assert_eq!(apps.notify(again).await.unwrap(), first);
    assert_eq!(
        bell.pushes().await.len(),
        2,
        "one notification and one count"
    );
    for n in 0..5 {
        apps.notify(notify(&["42"], &format!("n{n}")))
            .await
            .unwrap();
    }
    assert_eq!(apps.unread_notifications("42").await.unwrap(), 7);
    assert_eq!(apps.unread_notifications("43").await.unwrap(), 1);

    // paging, newest first, and a bad cursor
    let page = apps
        .list_notifications("42", query(json!({"limit": 4})))
        .await
        .unwrap();
    let titles: Vec<&str> = page["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["n4", "n3", "n2", "n1"]);
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let rest = apps
        .list_notifications("42", query(json!({"limit": 4, "cursor": cursor})))
        .await
        .unwrap();
    let titles: Vec<&str> = rest["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["n0", "keyed", "first"]);
    assert!(rest["next_cursor"].is_null());
    let bad = apps
        .list_notifications("42", query(json!({"cursor": "zz"})))
        .await
        .unwrap_err();
    assert_eq!(bad.code, 107);
    assert!(bad.message.contains("cursor"), "{bad:?}");

    // mark read by ids (someone else's id is ignored), then all; archive; delete
    let other = ids[1];
    let read = apps
        .update_notifications("42", Action::Read, Target::Ids(vec![ids[0], other]))
        .await
        .unwrap();
    assert_eq!(read, 1);
    bell.pushes().await;
    assert_eq!(apps.unread_notifications("43").await.unwrap(), 1);
    let unread_only = apps
        .list_notifications("42", query(json!({"unread_only": true, "limit": 100})))
        .await
        .unwrap();
    assert_eq!(unread_only["notifications"].as_array().unwrap().len(), 6);
    assert_eq!(
        apps.update_notifications("42", Action::Read, Target::All)
            .await
            .unwrap(),
        6
    );
    assert_eq!(
        bell.pushes().await.last().unwrap(),
        &json!({"type": "unread_count", "count": 0})
    );
    assert_eq!(
        apps.update_notifications("42", Action::Unread, Target::Ids(vec![ids[0]]))
            .await
            .unwrap(),
        1
    );
    assert_eq!(apps.unread_notifications("42").await.unwrap(), 1);
    assert_eq!(
        apps.update_notifications("42", Action::Archive, Target::Ids(vec![ids[0]]))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        apps.unread_notifications("42").await.unwrap(),
        0,
        "archived ones do not count"
    );
    let listed = apps
        .list_notifications("42", query(json!({"limit": 100})))
        .await
        .unwrap();
    assert_eq!(listed["notifications"].as_array().unwrap().len(), 6);
    let archived = apps
        .list_notifications("42", query(json!({"limit": 100, "include_archived": true})))
        .await
        .unwrap();
    assert_eq!(archived["notifications"].as_array().unwrap().len(), 7);
    assert_eq!(
        apps.update_notifications("42", Action::Delete, Target::Ids(vec![ids[0]]))
            .await
            .unwrap(),
        1
    );
    let after = apps
        .list_notifications("42", query(json!({"limit": 100, "include_archived": true})))
        .await
        .unwrap();
    assert_eq!(after["notifications"].as_array().unwrap().len(), 6);

    // filters and muting
    let warning: NotifyRequest = serde_json::from_value(
        json!({"users": ["42"], "title": "w", "level": "warning", "category": "billing"}),
    )
    .unwrap();
    apps.notify(warning).await.unwrap();
    let by_level = apps
        .list_notifications("42", query(json!({"level": "warning"})))
        .await
        .unwrap();
    assert_eq!(by_level["notifications"].as_array().unwrap().len(), 1);
    let by_category = apps
        .list_notifications("42", query(json!({"category": "billing"})))
        .await
        .unwrap();
    assert_eq!(by_category["notifications"][0]["title"], "w");
    bell.pushes().await;
    let muted = Preferences {
        muted_levels: vec![],
        muted_categories: vec!["marketing".into()],
    };
    apps.inbox_preferences("42", Some(muted.clone()))
        .await
        .unwrap();
    assert_eq!(apps.inbox_preferences("42", None).await.unwrap(), muted);
    let before = apps.unread_notifications("42").await.unwrap();
    let ad: NotifyRequest =
        serde_json::from_value(json!({"users": ["42"], "title": "sale", "category": "marketing"}))
            .unwrap();
    apps.notify(ad).await.unwrap();
    assert_eq!(
        apps.unread_notifications("42").await.unwrap(),
        before,
        "a muted notification arrives read"
    );
    let sale = apps
        .list_notifications("42", query(json!({"category": "marketing"})))
        .await
        .unwrap();
    assert_eq!(sale["notifications"][0]["read"], json!(true));
    apps.notify(notify(&["42"], "marker")).await.unwrap();
    let pushes = bell.pushes().await;
    assert_eq!(
        pushes[0]["notification"]["title"], "marker",
        "the muted one was not pushed: {pushes:?}"
    );
}

fn create(conversation: &str, members: &[&str]) -> CreateRequest {
    serde_json::from_value(
        json!({"conversation": conversation, "title": "Order", "members": members}),
    )
    .unwrap()
}

fn send(conversation: &str, user: &str, text: &str, client_msg_id: Option<&str>) -> ChatDraft {
    ChatDraft {
        conversation: conversation.into(),
        user: Some(user.into()),
        kind: Kind::Message,
        text: text.into(),
        data: Value::Null,
        client_msg_id: client_msg_id.map(str::to_string),
        member_only: true,
    }
}

async fn chat_scenario(f: Fixture) {
    let apps = &f.apps;
    let created = apps
        .create_conversation(create("order-1", &["42", "7"]))
        .await
        .unwrap();
    assert_eq!(created["conversation"]["members"], json!(["42", "7"]));
    let room = f.listen("chat:order-1");
    let seven = f.listen("inbox:#7");
    let first = apps
        .post(send("order-1", "42", "hello", Some("c-1")))
        .await
        .unwrap();
    assert_eq!(first.id, 1);
    let pushed = room.pushes().await;
    assert_eq!(pushed[0]["type"], "message");
    assert_eq!(pushed[0]["message"]["text"], "hello");
    assert_eq!(
        seven.pushes().await,
        [json!({"type": "chat_unread", "conversation": "order-1", "unread": 1})]
    );
    let again = apps
        .post(send("order-1", "42", "hello", Some("c-1")))
        .await
        .unwrap();
    assert_eq!(
        again.id, 1,
        "the same client_msg_id answers the stored message"
    );
    let error: DetailedError = apps
        .post(send("order-1", "99", "intruder", None))
        .await
        .unwrap_err();
    assert_eq!(error.code, 103);
    assert_eq!(
        apps.post(send("nope", "42", "x", None))
            .await
            .unwrap_err()
            .code,
        102
    );
    let long = "x".repeat(4001);
    assert_eq!(
        apps.post(send("order-1", "42", &long, None))
            .await
            .unwrap_err()
            .code,
        107
    );
    for n in 2..=5 {
        apps.post(send("order-1", "7", &format!("m{n}"), None))
            .await
            .unwrap();
    }
    let system = ChatDraft {
        user: None,
        kind: Kind::System,
        member_only: false,
        ..send("order-1", "", "shipped", None)
    };
    let system = apps.post(system).await.unwrap();
    assert_eq!(
        (system.id, system.user.clone(), system.kind.as_str()),
        (6, None, "system")
    );

    // history: pages back, oldest first within a page
    let page = apps
        .history("order-1", Some("42"), None, Some(2))
        .await
        .unwrap();
    let ids: Vec<i64> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [5, 6]);
    assert_eq!(page["has_more"], json!(true));
    let older = apps
        .history("order-1", Some("42"), Some(5), Some(10))
        .await
        .unwrap();
    let ids: Vec<i64> = older["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [1, 2, 3, 4]);
    assert_eq!(older["has_more"], json!(false));
    assert_eq!(
        apps.history("order-1", Some("99"), None, None)
            .await
            .unwrap_err()
            .code,
        103
    );

    // unread counts and read marks
    let list = apps.list_conversations("42", None).await.unwrap();
    assert_eq!(list["conversations"][0]["unread"], json!(5));
    assert_eq!(list["conversations"][0]["last_message"]["text"], "shipped");
    let list = apps.list_conversations("7", None).await.unwrap();
    assert_eq!(
        list["conversations"][0]["unread"],
        json!(1),
        "7 sent 2–5, then the system message"
    );
    room.pushes().await;
    assert_eq!(apps.mark_read("order-1", "42", 4).await.unwrap(), 2);
    let receipts = room.pushes().await;
    assert_eq!(
        receipts,
        [json!({"type": "read", "user": "42", "message_id": 4})]
    );
    assert_eq!(
        apps.mark_read("order-1", "42", 2).await.unwrap(),
        2,
        "a read mark never moves back"
    );
    assert_eq!(apps.mark_read("order-1", "42", 100).await.unwrap(), 0);

    // members
    let changed = apps
        .change_members("order-1", &["9".into()], true)
        .await
        .unwrap();
    assert_eq!(changed["members"], json!(["42", "7", "9"]));
    let pushes = room.pushes().await;
    let members = pushes.iter().find(|p| p["type"] == "members").unwrap();
    assert_eq!(members["added"], json!(["9"]));
    assert_eq!(
        apps.list_conversations("9", None).await.unwrap()["conversations"][0]["unread"],
        json!(0),
        "a new member starts with nothing unread"
    );
    apps.change_members("order-1", &["9".into()], false)
        .await
        .unwrap();
    assert_eq!(
        apps.post(send("order-1", "9", "bye", None))
            .await
            .unwrap_err()
            .code,
        103
    );
    apps.typing("order-1", "7").await.unwrap();
    let typing = room.pushes().await;
    assert_eq!(
        typing.last().unwrap(),
        &json!({"type": "typing", "user": "7"})
    );
    assert_eq!(apps.typing("order-1", "9").await.unwrap_err().code, 103);
}

async fn sqlite_memory() -> Db {
    Db::open(Location::Memory).await.unwrap()
}

#[tokio::test]
async fn inbox_on_sqlite() {
    inbox_scenario(fixture(sqlite_memory().await).await).await;
}

#[tokio::test]
async fn chat_on_sqlite() {
    chat_scenario(fixture(sqlite_memory().await).await).await;
}

#[tokio::test]
async fn inbox_and_chat_on_postgres() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    inbox_scenario(fixture(Db::open(Location::Postgres(database.url())).await.unwrap()).await)
        .await;
    chat_scenario(fixture(Db::open(Location::Postgres(database.url())).await.unwrap()).await).await;
}

#[tokio::test]
async fn data_on_disk_outlives_a_restart_and_migrations_run_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(Location::SqliteDir(dir.path())).await.unwrap();
    let f = fixture(db).await;
    f.apps.notify(notify(&["42"], "kept")).await.unwrap();
    f.apps
        .create_conversation(create("c", &["42"]))
        .await
        .unwrap();
    f.apps
        .post(send("c", "42", "kept too", None))
        .await
        .unwrap();
    drop(f);
    let reopened = fixture(Db::open(Location::SqliteDir(dir.path())).await.unwrap()).await;
    assert_eq!(reopened.apps.unread_notifications("42").await.unwrap(), 1);
    let history = reopened.apps.history("c", None, None, None).await.unwrap();
    assert_eq!(history["messages"][0]["text"], "kept too");
}

#[tokio::test]
async fn concurrent_senders_get_one_gapless_order() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture(Db::open(Location::SqliteDir(dir.path())).await.unwrap()).await;
    f.apps
        .create_conversation(create("busy", &["1", "2", "3", "4"]))
        .await
        .unwrap();
    let room = f.listen("chat:busy");
    let senders = (1..=4).map(|user| {
        let apps = f.apps.clone();
        tokio::spawn(async move {
            for n in 0..25 {
                apps.post(send(
                    "busy",
                    &user.to_string(),
                    &format!("{user}-{n}"),
                    Some(&format!("{n}")),
                ))
                .await
                .unwrap();
            }
        })
    });
    for sender in senders.collect::<Vec<_>>() {
        sender.await.unwrap();
    }
    let history = f.apps.history("busy", None, None, Some(100)).await.unwrap();
    let ids: Vec<i64> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, (1..=100).collect::<Vec<_>>());
    let mut pushed = Vec::new();
    while pushed.len() < 100 {
        pushed.extend(
            room.pushes()
                .await
                .iter()
                .map(|p| p["message"]["id"].as_i64().unwrap()),
        );
    }
    assert_eq!(pushed, (1..=100).collect::<Vec<_>>(), "pushed in id order");
    assert_eq!(f.apps.ordered.len(), 0, "no lock outlives its change");
}

#[tokio::test]
async fn concurrent_notifies_on_sqlite_all_commit_and_counts_end_current() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture(Db::open(Location::SqliteDir(dir.path())).await.unwrap()).await;
    let bell = f.listen("inbox:#42");
    let callers = (0..8).map(|caller| {
        let apps = f.apps.clone();
        tokio::spawn(async move {
            for n in 0..20 {
                apps.notify(notify(&["42"], &format!("{caller}-{n}")))
                    .await
                    .unwrap();
            }
        })
    });
    for caller in callers.collect::<Vec<_>>() {
        caller.await.unwrap();
    }
    assert_eq!(f.apps.unread_notifications("42").await.unwrap(), 160);
    let mut counts = Vec::new();
    while counts.len() < 160 {
        let pushes = bell.pushes().await;
        counts.extend(
            pushes
                .iter()
                .filter(|p| p["type"] == "unread_count")
                .map(|p| p["count"].as_i64().unwrap()),
        );
    }
    assert!(
        counts.windows(2).all(|w| w[0] <= w[1]),
        "a later push never carries an older count: {counts:?}"
    );
    assert_eq!(counts.last(), Some(&160));
}

async fn recent_first_scenario(f: Fixture) {
    for id in ["a", "b", "c"] {
        f.apps
            .create_conversation(create(id, &["42"]))
            .await
            .unwrap();
    }
    // Within one millisecond, the order of the sends still decides.
    for id in ["b", "a", "c", "b"] {
        f.apps.post(send(id, "42", "x", None)).await.unwrap();
    }
    let list = f.apps.list_conversations("42", None).await.unwrap();
    let ids: Vec<&str> = list["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["b", "c", "a"]);
}

#[tokio::test]
async fn conversations_are_listed_by_their_last_message_even_within_a_millisecond() {
    recent_first_scenario(fixture(sqlite_memory().await).await).await;
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    recent_first_scenario(
        fixture(Db::open(Location::Postgres(database.url())).await.unwrap()).await,
    )
    .await;
}
