//! The Prometheus recorder behind `/metrics`.
//!
//! One recorder per process: several servers in one test process share it.

use herald_core::metrics as names;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(names::PUBLISH_TO_WRITE.to_string()),
                &[
                    0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                    2.5,
                ],
            )
            .expect("the bucket list is not empty")
            .set_buckets_for_metric(
                Matcher::Full(names::COMMIT_SECONDS.to_string()),
                &[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
                ],
            )
            .expect("the bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (a test harness); then the
        // handle still renders, just without the series recorded elsewhere.
        let _ = metrics::set_global_recorder(recorder);
        describe();
        handle
    })
}

fn describe() {
    metrics::describe_gauge!(names::CONNECTIONS, "Connected clients");
    metrics::describe_gauge!(names::SUBSCRIPTIONS, "Live channel subscriptions");
    metrics::describe_gauge!(
        names::HISTORY_STREAMS,
        "Channel streams (history and position) held in memory, after the last sweep"
    );
    metrics::describe_gauge!(
        crate::health::STORAGE_UP,
        "1 while PostgreSQL storage answers the health probe, 0 while it does not"
    );
    metrics::describe_counter!(names::COMMANDS, "Client commands, by method");
    metrics::describe_counter!(names::MESSAGES_SENT, "Messages queued to clients");
    metrics::describe_counter!(names::MESSAGES_RECEIVED, "WebSocket messages received");
    metrics::describe_counter!(names::BYTES_SENT, "Bytes written to clients");
    metrics::describe_counter!(names::BYTES_RECEIVED, "Bytes received from clients");
    metrics::describe_counter!(names::PUBLICATIONS, "Publications fanned out");
    metrics::describe_histogram!(
        names::PUBLISH_TO_WRITE,
        metrics::Unit::Seconds,
        "Time from queueing a message to writing its frame"
    );
    metrics::describe_counter!(names::ERRORS, "Error replies to clients, by code");
    metrics::describe_counter!(names::DISCONNECTS, "Disconnects, by code");
    metrics::describe_counter!(names::API_REQUESTS, "Server API requests, by method");
    metrics::describe_counter!(names::API_ERRORS, "Server API errors, by method and code");
    metrics::describe_histogram!(
        names::COMMIT_SECONDS,
        metrics::Unit::Seconds,
        "Time to commit one batch of publications to durable history"
    );
    metrics::describe_counter!(
        names::COMMITTED,
        "Publications committed to durable history"
    );
    metrics::describe_counter!(
        names::COMMIT_ERRORS,
        "Failed history commits (publishers got error 100)"
    );
    metrics::describe_counter!(
        crate::web::admin::AUTH_REFUSED,
        "Refused admin-page requests, by reason (wrong_password, throttled)"
    );
    metrics::describe_counter!(
        crate::web::demo::REFUSED,
        "Refused demo requests, by reason (content_type, origin, host)"
    );
    metrics::describe_counter!(names::RECOVERIES, "Recovering subscribes, by outcome");
    metrics::describe_counter!(
        crate::transport::emulation::EMULATION_REQUESTS,
        "Commands of HTTP-streaming and SSE clients (/emulation requests), by outcome"
    );
    use herald_apps::metrics as apps;
    metrics::describe_counter!(apps::NOTIFICATIONS, "Notifications stored");
    metrics::describe_counter!(apps::CHAT_MESSAGES, "Chat messages stored");
    metrics::describe_counter!(
        apps::DATABASE_ERRORS,
        "Inbox and chat database errors (answered 100), by operation"
    );
    metrics::describe_counter!(
        apps::PUSH_ERRORS,
        "Inbox and chat live pushes that failed after their change was stored"
    );
}
