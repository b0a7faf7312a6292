//! The one-way stream of an HTTP-streaming or SSE connection: the response
//! body, fed from the connection's outbox.
//!
//! Each drain of the outbox becomes one chunk, so a burst of pushes costs one
//! write, as on WebSocket. When the outbox closes, the stream ends with a
//! `disconnect` push carrying the code, since there is no close frame to carry it.

use crate::app::WriterMetrics;
use axum::body::Body;
use bytes::{BufMut, Bytes, BytesMut};
use herald_core::Outbox;
use herald_protocol::{Disconnect, push};
use std::convert::Infallible;
use std::sync::Arc;

/// How replies and pushes are laid out in the body.
#[derive(Debug, Clone, Copy)]
pub enum Framing {
    /// One JSON value per line (`/connection/http_stream`).
    Lines,
    /// Server-Sent Events: each drain is one event, a `data:` line per value.
    EventStream,
}

impl Framing {
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Lines => "application/json",
            Self::EventStream => "text/event-stream",
        }
    }

    fn append(self, chunk: &mut BytesMut, message: &[u8]) {
        match self {
            Self::Lines => chunk.put_slice(message),
            // A queued message may hold several values, one per line, and
            // each needs its own `data:` field.
            Self::EventStream => {
                for (i, line) in message.split(|&byte| byte == b'\n').enumerate() {
                    if i > 0 {
                        chunk.put_u8(b'\n');
                    }
                    chunk.put_slice(b"data: ");
                    chunk.put_slice(line);
                }
            }
        }
        chunk.put_u8(b'\n');
    }

    fn end_event(self, chunk: &mut BytesMut) {
        if let Self::EventStream = self {
            chunk.put_u8(b'\n');
        }
    }
}

/// Dropped by the server when the client goes away, which closes the outbox so
/// the connection task ends too.
struct Writer {
    outbox: Arc<Outbox>,
    framing: Framing,
    metrics: WriterMetrics,
    messages: Vec<Bytes>,
    done: bool,
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.outbox.close(Disconnect::CONNECTION_CLOSED);
    }
}

pub fn body(outbox: Arc<Outbox>, framing: Framing, metrics: WriterMetrics) -> Body {
    let writer = Writer {
        outbox,
        framing,
        metrics,
        messages: Vec::new(),
        done: false,
    };
    Body::from_stream(futures_util::stream::unfold(writer, next_chunk))
}

async fn next_chunk(mut writer: Writer) -> Option<(Result<Bytes, Infallible>, Writer)> {
    if writer.done {
        return None;
    }
    let drained = writer.outbox.drain(&mut writer.messages).await;
    // Room for every message and its `data: ` field, so the chunk is
    // allocated once rather than grown while appending.
    let size: usize = writer.messages.iter().map(|m| m.len() + 8).sum();
    let mut chunk = BytesMut::with_capacity(size + 1);
    let framing = writer.framing;
    for message in writer.messages.drain(..) {
        framing.append(&mut chunk, &message);
    }
    if let Some(close) = drained.close {
        writer.done = true;
        if close != Disconnect::CONNECTION_CLOSED {
            framing.append(&mut chunk, &push::disconnect(&close));
        }
    }
    framing.end_event(&mut chunk);
    writer.metrics.bytes_sent.increment(chunk.len() as u64);
    if let Some(oldest) = drained.oldest {
        writer
            .metrics
            .publish_to_write
            .record(oldest.elapsed().as_secs_f64());
    }
    Some((Ok(chunk.freeze()), writer))
}
