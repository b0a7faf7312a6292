use super::*;

fn namespaces() -> Namespaces {
    let mut named = HashMap::new();
    named.insert(
        "dm".to_string(),
        ChannelOptions {
            allow_user_limited_channels: true,
            ..Default::default()
        },
    );
    Namespaces {
        without_namespace: ChannelOptions {
            presence: true,
            ..Default::default()
        },
        named,
    }
}

#[test]
fn channels_without_a_colon_use_the_default_options() {
    assert!(namespaces().options("news").unwrap().presence);
}

#[test]
fn an_unknown_namespace_is_error_102() {
    assert_eq!(namespaces().options("nope:1").unwrap_err().code, 102);
    assert!(
        namespaces()
            .options("dm:#1,2")
            .unwrap()
            .allow_user_limited_channels
    );
}

#[test]
fn user_limited_channels_list_their_users() {
    let users: Vec<_> = allowed_users("dm:#42,43").unwrap().collect();
    assert_eq!(users, ["42", "43"]);
    assert!(allowed_users("dm:plain").is_none());
}

#[test]
fn names_are_bounded() {
    assert_eq!(validate_name("").unwrap_err().code, 107);
    assert_eq!(validate_name(&"a".repeat(256)).unwrap_err().code, 106);
    assert!(validate_name(&"a".repeat(255)).is_ok());
}

#[test]
fn unknown_option_names_are_rejected() {
    let err = serde_json::from_str::<ChannelOptions>(r#"{"presense": true}"#).unwrap_err();
    assert!(err.to_string().contains("presense"), "{err}");
}
