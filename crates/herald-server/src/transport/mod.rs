//! Transports: how bytes reach a [`herald_core::Session`].
//!
//! - `websocket.rs`: `/connection/websocket`, one reader loop and one writer task
//!   per connection.
//! - `emulation.rs`: the HTTP fallbacks, `/connection/http_stream` and
//!   `/connection/sse`, whose commands come through `/emulation`; `stream.rs`
//!   writes their one-way stream.
//!
//! Whatever the transport, a connection is driven the same way: frames go to
//! `Session::handle_frame`, and [`settle`] lets the session wait for what a
//! command needs before it goes on.

pub mod emulation;
mod stream;
pub mod websocket;

use crate::app::App;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use herald_core::session::Step;
use herald_core::{Node, Outbox, Session};
use herald_protocol::Disconnect;

/// 403 for a connection from a page whose origin is not allowed, whichever
/// transport it asked for.
fn refuse_origin(app: &App, headers: &HeaderMap) -> Option<Response> {
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    if app.origin_allowed(origin) {
        return None;
    }
    tracing::info!(?origin, "connection refused: origin not allowed");
    ::metrics::counter!(herald_core::metrics::DISCONNECTS, "code" => "origin").increment(1);
    Some((StatusCode::FORBIDDEN, "origin not allowed\n").into_response())
}

/// Lets the session go on once what it waits for is there: channels the broker
/// must make ready (the first subscriber of a channel on this node), or a
/// subscribe permission the extension looks up. This connection's later frames
/// wait meanwhile, so its commands keep their order; other connections are
/// unaffected.
async fn settle(
    session: &mut Session,
    node: &Node,
    frame: &[u8],
    mut step: Result<Step, Disconnect>,
) -> Result<(), Disconnect> {
    loop {
        let Step::Await(wait) = step? else {
            return Ok(());
        };
        let prepared = node.prepare(wait).await;
        step = session.resume(frame, prepared);
    }
}

/// Ends a connection: the session leaves its channels, the outbox closes with
/// `disconnect` (unless something closed it first), and the reason it closed
/// with is counted and logged.
fn finish(session: &mut Session, outbox: &Outbox, disconnect: Option<Disconnect>) {
    let client = session.client_id().map(str::to_owned);
    session.close();
    outbox.close(disconnect.unwrap_or(Disconnect::CONNECTION_CLOSED));
    let reason = outbox
        .close_reason()
        .unwrap_or(Disconnect::CONNECTION_CLOSED);
    herald_core::metrics::count_disconnect(reason.code);
    if reason != Disconnect::CONNECTION_CLOSED {
        tracing::info!(client = ?client, code = reason.code, reason = %reason.reason, "client disconnected");
    } else {
        tracing::debug!(client = ?client, "client closed the connection");
    }
}
