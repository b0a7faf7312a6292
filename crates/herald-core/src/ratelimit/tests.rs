use super::*;

fn bucket(rate: u32, interval_secs: u64) -> Bucket {
    Bucket {
        rate: NonZeroU32::new(rate).unwrap(),
        interval: Duration::from_secs(interval_secs),
        burst: NonZeroU32::new(rate).unwrap(),
    }
}

#[test]
fn a_commands_bucket_refuses_past_its_burst_without_touching_others() {
    let limits = CommandLimits {
        client: [("publish", bucket(3, 60))].into(),
        ..Default::default()
    };
    let users = UserLimiters::new(&limits);
    let mut connection = ConnectionLimiter::default();
    for n in 1..=3 {
        assert_eq!(
            connection.check(&limits, &users, Method::Publish, "42"),
            None,
            "publish {n}"
        );
    }
    assert_eq!(
        connection.check(&limits, &users, Method::Publish, "42"),
        Some(Refusal::Refused)
    );
    assert_eq!(
        connection.check(&limits, &users, Method::Subscribe, "42"),
        None
    );
    assert_eq!(
        connection.check(&limits, &users, Method::Connect, "42"),
        None
    );
    let mut other = ConnectionLimiter::default();
    assert_eq!(
        other.check(&limits, &users, Method::Publish, "42"),
        None,
        "per connection"
    );
}

#[test]
fn sustained_refusals_end_in_a_disconnect() {
    let limits = CommandLimits {
        client_default: Some(bucket(1, 60)),
        disconnect_after: Some(bucket(2, 60)),
        ..Default::default()
    };
    let users = UserLimiters::new(&limits);
    let mut connection = ConnectionLimiter::default();
    assert_eq!(
        connection.check(&limits, &users, Method::History, "42"),
        None
    );
    let refusals: Vec<_> = (0..3)
        .map(|_| connection.check(&limits, &users, Method::History, "42"))
        .collect();
    assert_eq!(
        refusals,
        [
            Some(Refusal::Refused),
            Some(Refusal::Refused),
            Some(Refusal::Disconnect)
        ]
    );
}

#[test]
fn a_users_bucket_is_shared_by_its_connections_and_spares_anonymous_ones() {
    let limits = CommandLimits {
        user: [("rpc", bucket(2, 60))].into(),
        ..Default::default()
    };
    let users = UserLimiters::new(&limits);
    let (mut tab, mut phone) = (ConnectionLimiter::default(), ConnectionLimiter::default());
    assert_eq!(tab.check(&limits, &users, Method::Rpc, "42"), None);
    assert_eq!(phone.check(&limits, &users, Method::Rpc, "42"), None);
    assert_eq!(
        phone.check(&limits, &users, Method::Rpc, "42"),
        Some(Refusal::Refused)
    );
    assert_eq!(
        tab.check(&limits, &users, Method::Rpc, "43"),
        None,
        "another user"
    );
    for _ in 0..5 {
        assert_eq!(
            tab.check(&limits, &users, Method::Rpc, ""),
            None,
            "anonymous"
        );
    }
}
