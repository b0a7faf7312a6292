//! The HTTP fallbacks for clients that cannot open a WebSocket (a proxy blocks
//! it), as the published JavaScript SDK speaks them:
//!
//! - `POST /connection/http_stream`: the body is the connect command; the
//!   response streams replies and pushes, one JSON value per line.
//! - `GET /connection/sse?cf_connect=<connect command>`: the same stream as
//!   Server-Sent Events.
//! - `POST /emulation`: every later command, as `{"session", "node", "data"}`,
//!   where `session` and `node` come from the connect reply. A request that
//!   reaches another node than the one holding the stream is handed over
//!   through the broker, so no sticky load balancing is needed.
//!
//! Browsers call these across origins with CORS: `server.allowed_origins`
//! decides, as it does for WebSocket upgrades.

use super::stream::{self, Framing};
use super::{finish, refuse_origin, settle};
use crate::app::App;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use herald_core::control::ControlQueue;
use herald_core::{Emulated, Emulation, Outbox, Session};
use herald_protocol::Disconnect;
use serde::Deserialize;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// `/emulation` requests queued for one connection: the SDK sends one at a
/// time per batch of commands, so a full queue means the connection is stuck.
const COMMAND_QUEUE: usize = 64;

/// Requests to `/emulation`, by what became of them.
pub const EMULATION_REQUESTS: &str = "herald_emulation_requests_total";

pub async fn http_stream(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    if !app.transports.http_stream {
        return disabled("http_stream");
    }
    open(&app, &headers, body, Framing::Lines)
}

#[derive(Deserialize)]
pub struct SseQuery {
    cf_connect: Option<String>,
}

pub async fn sse(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(query): Query<SseQuery>,
) -> Response {
    if !app.transports.sse {
        return disabled("sse");
    }
    let Some(connect) = query.cf_connect else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "cf_connect: missing; it carries the connect command",
        );
    };
    if connect.len() > app.max_message_bytes {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "cf_connect: longer than client.max_message_bytes",
        );
    }
    open(&app, &headers, Bytes::from(connect), Framing::EventStream)
}

#[derive(Deserialize)]
struct EmulationRequest {
    session: String,
    node: String,
    data: String,
}

pub async fn emulation(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    if !(app.transports.http_stream || app.transports.sse) {
        return disabled("emulation");
    }
    if let Some(refused) = refuse_origin(&app, &headers) {
        return refused;
    }
    let request: EmulationRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => {
            count("bad_request");
            tracing::info!(%error, "malformed emulation request");
            let message =
                format!("emulation request: {error}; expected {{\"session\", \"node\", \"data\"}}");
            return with_cors(&app, &headers, refuse(StatusCode::BAD_REQUEST, &message));
        }
    };
    let outcome = app
        .node
        .emulate(&request.node, &request.session, request.data)
        .await;
    let (status, label) = match outcome {
        Emulated::Delivered => (StatusCode::OK, "delivered"),
        Emulated::Gone => (StatusCode::NO_CONTENT, "gone"),
        Emulated::UnknownNode => (StatusCode::NOT_FOUND, "unknown_node"),
        Emulated::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
        Emulated::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    };
    count(label);
    if status != StatusCode::OK {
        tracing::debug!(node = %request.node, outcome = label, "emulation request not delivered");
    }
    with_cors(&app, &headers, status.into_response())
}

/// Answers CORS preflights of the three endpoints: browsers send one before a
/// cross-origin POST of JSON.
pub async fn preflight(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Some(refused) = refuse_origin(&app, &headers) {
        return refused;
    }
    let mut response = with_cors(&app, &headers, StatusCode::NO_CONTENT.into_response());
    let allow = response.headers_mut();
    allow.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    allow.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("content-type"),
    );
    allow.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    response
}

/// Starts a connection whose first frame (the connect command) came with the
/// request, and answers with its stream.
fn open(app: &Arc<App>, headers: &HeaderMap, first: Bytes, framing: Framing) -> Response {
    if let Some(refused) = refuse_origin(app, headers) {
        return refused;
    }
    // Without a connect command the stream could only wait for the stale timeout.
    if first.iter().all(u8::is_ascii_whitespace) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "the request must carry the connect command",
        );
    }
    let outbox = Arc::new(Outbox::new(app.node.limits.outbox));
    let control = Arc::new(ControlQueue::default());
    let (commands, incoming) = mpsc::channel(COMMAND_QUEUE);
    let emulation = Emulation {
        session: uuid::Uuid::new_v4().simple().to_string().into(),
        commands,
    };
    let transport = match framing {
        Framing::Lines => "http_stream",
        Framing::EventStream => "sse",
    };
    let session = Session::new(app.node.clone(), outbox.clone(), control.clone())
        .with_emulation(emulation)
        .with_client_request(app.client_request(transport, headers));
    let body = stream::body(outbox.clone(), framing, app.writer_metrics.clone());
    tokio::spawn(serve(
        app.clone(),
        session,
        outbox,
        control,
        incoming,
        first,
    ));
    let mut response = Response::new(body);
    let fields = response.headers_mut();
    fields.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(framing.content_type()),
    );
    fields.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Asks nginx-like proxies not to buffer the stream.
    fields.insert("x-accel-buffering", HeaderValue::from_static("no"));
    with_cors(app, headers, response)
}

/// The connection task: like the WebSocket reader loop, with frames coming
/// from `/emulation` requests instead of a socket.
async fn serve(
    app: Arc<App>,
    mut session: Session,
    outbox: Arc<Outbox>,
    control: Arc<ControlQueue>,
    mut incoming: mpsc::Receiver<Bytes>,
    first: Bytes,
) {
    let _active = app.connections.enter();
    let mut shutdown = app.shutdown.clone();
    let step = session.handle_frame(&first);
    let mut ended = settle(&mut session, &app.node, &first, step).await.err();
    let timer = tokio::time::sleep_until(session.next_deadline().into());
    tokio::pin!(timer);
    while ended.is_none() {
        let step = tokio::select! {
            Some(frame) = incoming.recv() => {
                let step = session.handle_frame(&frame);
                settle(&mut session, &app.node, &frame, step).await
            }
            work = control.recv() => {
                let step = session.handle_control(work);
                settle(&mut session, &app.node, &[], step).await
            }
            _ = &mut timer => session.on_timer(Instant::now().into_std()),
            _ = outbox.closed() => break,
            _ = shutdown.recv() => Err(Disconnect::SHUTDOWN),
        };
        ended = step.err();
        timer.as_mut().reset(session.next_deadline().into());
    }
    finish(&mut session, &outbox, ended);
}

/// Lets a browser page of an allowed origin read the response.
fn with_cors(app: &App, headers: &HeaderMap, mut response: Response) -> Response {
    let origin = headers.get(header::ORIGIN);
    if let Some(origin) = origin.filter(|o| app.origin_allowed(o.to_str().ok())) {
        let fields = response.headers_mut();
        fields.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        fields.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        fields.insert(header::VARY, HeaderValue::from_static("origin"));
    }
    response
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, format!("{message}\n")).into_response()
}

fn disabled(transport: &str) -> Response {
    let message = format!("{transport} is switched off ([transports] in the config)");
    refuse(StatusCode::NOT_FOUND, &message)
}

fn count(outcome: &'static str) {
    metrics::counter!(EMULATION_REQUESTS, "outcome" => outcome).increment(1);
}
