//! Metric names shared by the core and the transports.
//!
//! Each counter is labelled so that `/metrics` answers the questions an operator
//! asks first: how many are connected, what are they doing, and what went wrong.

pub const CONNECTIONS: &str = "herald_connections";
pub const SUBSCRIPTIONS: &str = "herald_subscriptions";
pub const COMMANDS: &str = "herald_commands_total";
pub const MESSAGES_SENT: &str = "herald_messages_sent_total";
pub const MESSAGES_RECEIVED: &str = "herald_messages_received_total";
pub const BYTES_SENT: &str = "herald_bytes_sent_total";
pub const BYTES_RECEIVED: &str = "herald_bytes_received_total";
pub const PUBLICATIONS: &str = "herald_publications_total";
pub const PUBLISH_TO_WRITE: &str = "herald_publish_to_write_seconds";
pub const ERRORS: &str = "herald_client_errors_total";
pub const DISCONNECTS: &str = "herald_disconnects_total";
pub const API_REQUESTS: &str = "herald_api_requests_total";
pub const API_ERRORS: &str = "herald_api_errors_total";
pub const RECOVERIES: &str = "herald_recoveries_total";
pub const COMMIT_SECONDS: &str = "herald_history_commit_seconds";
pub const COMMITTED: &str = "herald_history_committed_total";
pub const COMMIT_ERRORS: &str = "herald_history_commit_errors_total";
/// Channel streams (history and its position) held in this node's memory.
pub const HISTORY_STREAMS: &str = "herald_history_streams";
/// 1 while the broker connection and its subscriptions are up, 0 while down.
pub const BROKER_UP: &str = "herald_broker_up";
pub const BROKER_DISCONNECTS: &str = "herald_broker_disconnects_total";
/// Mirror reloads after a gap or reconnect, labelled by whether subscribers
/// were kept whole (`continuous`) or told to recover (`broken`).
pub const BROKER_RELOADS: &str = "herald_broker_reloads_total";
pub const BROKER_ERRORS: &str = "herald_broker_errors_total";

pub fn count_error(code: u32) {
    metrics::counter!(ERRORS, "code" => code.to_string()).increment(1);
}

pub fn count_disconnect(code: u16) {
    metrics::counter!(DISCONNECTS, "code" => code.to_string()).increment(1);
}
