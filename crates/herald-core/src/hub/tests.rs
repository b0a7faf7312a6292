use super::*;
use crate::outbox::OutboxLimits;

fn client(id: &str, user: &str, max_messages: usize) -> Arc<ClientHandle> {
    let control = Default::default();
    Arc::new(ClientHandle {
        id: id.into(),
        user: user.into(),
        outbox: Arc::new(Outbox::new(OutboxLimits {
            max_messages,
            max_bytes: 1 << 20,
        })),
        control,
        emulation: None,
    })
}

fn info(client: &ClientHandle) -> ClientInfo {
    ClientInfo {
        user: client.user.to_string(),
        client: client.id.to_string(),
        conn_info: None,
        chan_info: None,
    }
}

#[test]
fn a_slow_subscriber_is_closed_and_the_others_still_receive() {
    let hub = Hub::default();
    let slow = client("slow", "s", 1);
    let fast = client("fast", "f", 100);
    hub.subscribe("ch", slow.clone(), SubscriberOptions::default(), None);
    hub.subscribe("ch", fast.clone(), SubscriberOptions::default(), None);
    let message = Bytes::from_static(b"m");
    assert_eq!(hub.broadcast("ch", &message, Audience::Everyone), 2);
    assert_eq!(hub.broadcast("ch", &message, Audience::Everyone), 1);
    assert_eq!(slow.outbox.close_reason(), Some(Disconnect::SLOW));
    assert!(!fast.outbox.is_closed());
}

#[test]
fn join_leave_audience_only_reaches_subscribers_that_asked() {
    let hub = Hub::default();
    let wants = client("a", "u1", 10);
    let does_not = client("b", "u2", 10);
    hub.subscribe(
        "ch",
        wants.clone(),
        SubscriberOptions {
            join_leave: true,
            positioned_at: None,
        },
        None,
    );
    hub.subscribe("ch", does_not.clone(), SubscriberOptions::default(), None);
    assert_eq!(
        hub.broadcast("ch", &Bytes::from_static(b"j"), Audience::JoinLeave),
        1
    );
}

#[test]
fn presence_counts_clients_and_distinct_users_and_unsubscribe_cleans_up() {
    let hub = Hub::default();
    let tab1 = client("t1", "ann", 10);
    let tab2 = client("t2", "ann", 10);
    let bob = client("b", "bob", 10);
    for c in [&tab1, &tab2, &bob] {
        hub.subscribe(
            "room",
            c.clone(),
            SubscriberOptions::default(),
            Some(info(c)),
        );
    }
    assert_eq!(hub.presence_stats("room"), (3, 2));
    assert_eq!(hub.unsubscribe("room", "t1").unwrap().user, "ann");
    assert_eq!(hub.presence_stats("room"), (2, 2));
    hub.unsubscribe("room", "t2");
    hub.unsubscribe("room", "b");
    assert_eq!(hub.num_channels(), 0, "empty channels are dropped");
    assert_eq!(hub.num_subscriptions(), 0);
}

#[test]
fn users_index_finds_every_connection_of_a_user() {
    let hub = Hub::default();
    let one = client("1", "ann", 10);
    let two = client("2", "ann", 10);
    assert!(hub.add_client(one.clone()), "ann's first connection");
    assert!(!hub.add_client(two.clone()));
    assert_eq!(hub.user_connection_count("ann"), 2);
    assert_eq!(hub.user_clients("ann", Some("2")).len(), 1);
    assert!(!hub.remove_client(&one), "ann is still connected");
    assert!(hub.remove_client(&two), "ann's last connection");
    assert!(!hub.remove_client(&two), "removing twice is no transition");
    assert_eq!((hub.num_clients(), hub.num_users()), (0, 0));
}

#[test]
fn a_positioned_subscriber_that_would_miss_an_offset_is_told_to_recover() {
    let hub = Hub::default();
    let positioned = client("p", "u", 10);
    let plain = client("q", "v", 10);
    let at_five = SubscriberOptions {
        join_leave: false,
        positioned_at: Some(5),
    };
    hub.subscribe("ch", positioned.clone(), at_five, None);
    hub.subscribe("ch", plain.clone(), SubscriberOptions::default(), None);
    let message = Bytes::from_static(b"m");
    assert_eq!(hub.broadcast_at("ch", &message, Audience::Everyone, 6), 2);
    assert!(!positioned.outbox.is_closed());
    assert_eq!(hub.broadcast_at("ch", &message, Audience::Everyone, 8), 1);
    assert_eq!(
        positioned.outbox.close_reason(),
        Some(Disconnect::INSUFFICIENT_STATE)
    );
    assert!(!plain.outbox.is_closed());
}

#[test]
fn presence_entries_expire_unless_touched() {
    let hub = Hub::new(std::time::Duration::from_millis(0));
    let ghost = client("g", "ghost", 10);
    hub.subscribe(
        "room",
        ghost.clone(),
        SubscriberOptions::default(),
        Some(info(&ghost)),
    );
    assert_eq!(
        hub.presence_stats("room"),
        (0, 0),
        "a zero TTL expires at once"
    );
    assert!(hub.presence("room").is_empty());
    let hub = Hub::new(std::time::Duration::from_secs(60));
    hub.subscribe(
        "room",
        ghost.clone(),
        SubscriberOptions::default(),
        Some(info(&ghost)),
    );
    hub.touch_presence("room", "g");
    assert_eq!(hub.presence_stats("room"), (1, 1));
}

/// An emulated connection is found by its session secret while registered;
/// a full command queue closes it as slow rather than blocking the caller.
#[test]
fn emulated_sessions_are_found_by_secret_and_a_full_queue_closes_as_slow() {
    let hub = Hub::default();
    let (commands, mut incoming) = tokio::sync::mpsc::channel(1);
    let handle = Arc::new(ClientHandle {
        emulation: Some(Emulation {
            session: "secret".into(),
            commands,
        }),
        ..Arc::try_unwrap(client("c1", "u", 10)).ok().unwrap()
    });
    hub.add_client(handle.clone());
    assert!(
        hub.emulated("c1").is_none(),
        "the client id is not the secret"
    );
    let found = hub.emulated("secret").expect("registered");
    assert_eq!(
        found.emulate(Bytes::from_static(b"{}")),
        Emulated::Delivered
    );
    assert_eq!(incoming.try_recv().unwrap(), Bytes::from_static(b"{}"));
    assert_eq!(found.emulate(Bytes::from_static(b"1")), Emulated::Delivered);
    assert_eq!(
        found.emulate(Bytes::from_static(b"2")),
        Emulated::Overloaded
    );
    assert_eq!(handle.outbox.close_reason(), Some(Disconnect::SLOW));
    hub.remove_client(&handle);
    assert!(hub.emulated("secret").is_none());
}
