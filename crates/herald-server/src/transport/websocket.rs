//! The WebSocket transport at `/connection/websocket`.
//!
//! Each connection runs two tasks. The reader feeds frames, control messages and
//! timers into the session. The writer drains the outbox, packs everything queued
//! into one frame, and writes it with one flush; it alone owns the socket's sink,
//! so fan-out never touches the network.

use super::{finish, refuse_origin, settle};
use crate::app::{App, WriterMetrics};
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::Response;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use herald_core::control::ControlQueue;
use herald_core::session::ClientRequest;
use herald_core::{Outbox, Session};
use herald_protocol::{Disconnect, pack_frame};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Read chunk size: small, because every idle connection holds one; larger
/// messages still arrive whole, in several reads.
const READ_BUFFER: usize = 1024;
/// How long a closing connection may take to flush its last frame.
const WRITER_DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn upgrade(
    ws: WebSocketUpgrade,
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = refuse_origin(&app, &headers) {
        return refused;
    }
    let max = app.max_message_bytes;
    ws.max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .on_upgrade(move |socket| {
            let request = app.client_request("websocket", &headers);
            serve_connection(socket, app, request)
        })
}

async fn serve_connection(socket: WebSocket, app: Arc<App>, request: ClientRequest) {
    let _active = app.connections.enter();
    let (sink, mut stream) = socket.split();
    let outbox = Arc::new(Outbox::new(app.node.limits.outbox));
    let control = Arc::new(ControlQueue::default());
    let mut session = Session::new(app.node.clone(), outbox.clone(), control.clone())
        .with_client_request(request);
    let mut writer = tokio::spawn(write_loop(sink, outbox.clone(), app.writer_metrics.clone()));
    let mut writer_done = false;
    let mut shutdown = app.shutdown.clone();
    let timer = tokio::time::sleep_until(session.next_deadline().into());
    tokio::pin!(timer);

    let disconnect: Option<Disconnect> = loop {
        let step = tokio::select! {
            message = stream.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    let step = session.handle_frame(text.as_bytes());
                    settle(&mut session, &app.node, text.as_bytes(), step).await
                }
                Some(Ok(Message::Binary(bytes))) => {
                    let step = session.handle_frame(&bytes);
                    settle(&mut session, &app.node, &bytes, step).await
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => Ok(()),
                Some(Ok(Message::Close(_))) | None => break None,
                Some(Err(error)) => break read_error(&error),
            },
            work = control.recv() => {
                let step = session.handle_control(work);
                settle(&mut session, &app.node, &[], step).await
            }
            _ = &mut timer => session.on_timer(Instant::now().into_std()),
            _ = outbox.closed() => break None,
            _ = &mut writer => {
                writer_done = true;
                break None;
            }
            _ = shutdown.recv() => break Some(Disconnect::SHUTDOWN),
        };
        if let Err(disconnect) = step {
            break Some(disconnect);
        }
        timer.as_mut().reset(session.next_deadline().into());
    };

    finish(&mut session, &outbox, disconnect);
    if !writer_done
        && tokio::time::timeout(WRITER_DRAIN_TIMEOUT, &mut writer)
            .await
            .is_err()
    {
        // The peer stopped reading: drop the socket rather than wait on it.
        writer.abort();
    }
}

/// A read error either means the frame was too big (1009) or the peer is gone.
fn read_error(error: &axum::Error) -> Option<Disconnect> {
    let text = error.to_string();
    if text.contains("Space limit exceeded")
        || text.contains("too long")
        || text.contains("too big")
    {
        tracing::info!(%text, "client sent an oversize message");
        Some(Disconnect::MESSAGE_TOO_BIG)
    } else {
        tracing::debug!(%text, "read error");
        None
    }
}

async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    outbox: Arc<Outbox>,
    metrics: WriterMetrics,
) {
    let mut messages = Vec::new();
    loop {
        let drained = outbox.drain(&mut messages).await;
        if !messages.is_empty() {
            let frame = pack_frame(&messages);
            messages.clear();
            let len = frame.len();
            let Ok(text) = Utf8Bytes::try_from(frame) else {
                tracing::error!("an outgoing frame was not UTF-8; closing the connection");
                outbox.close(Disconnect::INTERNAL);
                continue;
            };
            if sink.send(Message::Text(text)).await.is_err() {
                outbox.close(Disconnect::WRITE_ERROR);
                return;
            }
            metrics.bytes_sent.increment(len as u64);
            if let Some(oldest) = drained.oldest {
                metrics
                    .publish_to_write
                    .record(oldest.elapsed().as_secs_f64());
            }
        }
        if let Some(close) = drained.close {
            let frame = CloseFrame {
                code: close.code,
                reason: Utf8Bytes::from(close.reason.as_ref()),
            };
            let _ = sink.send(Message::Close(Some(frame))).await;
            let _ = sink.close().await;
            return;
        }
    }
}
