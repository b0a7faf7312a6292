//! The bounded queue between fan-out and one connection's writer.
//!
//! Fan-out pushes shared `Bytes` without awaiting; the writer task drains
//! everything queued at once and packs it into one frame. A push that would pass
//! the count or byte limit closes the outbox with 3008 "slow" instead of waiting,
//! so one slow reader never holds back a publisher or other subscribers.

use bytes::Bytes;
use herald_protocol::Disconnect;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Instant;
use tokio::sync::Notify;

#[derive(Debug, Clone, Copy)]
pub struct OutboxLimits {
    pub max_messages: usize,
    pub max_bytes: usize,
}

impl Default for OutboxLimits {
    fn default() -> Self {
        Self {
            max_messages: 4096,
            max_bytes: 4 * 1024 * 1024,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum PushError {
    /// The outbox was already closed; the message is dropped with the connection.
    Closed,
    /// This push overflowed the limits and closed the outbox as slow.
    Overflow,
}

/// What the writer takes in one drain, besides the messages themselves.
#[derive(Debug, Default)]
pub struct Drained {
    /// When the oldest drained message was queued, for the publish-to-write latency.
    pub oldest: Option<Instant>,
    /// Set once: the writer sends this Close frame after the messages and stops.
    pub close: Option<Disconnect>,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Bytes>,
    bytes: usize,
    oldest: Option<Instant>,
    close: Option<Disconnect>,
    close_taken: bool,
    /// While set, the writer waits; the held reply goes in at this index.
    hold_at: Option<usize>,
}

pub struct Outbox {
    state: Mutex<State>,
    ready: Notify,
    closed: Notify,
    limits: OutboxLimits,
}

impl Outbox {
    pub fn new(limits: OutboxLimits) -> Self {
        Self {
            state: Mutex::new(State::default()),
            ready: Notify::new(),
            closed: Notify::new(),
            limits,
        }
    }

    pub fn push(&self, message: Bytes) -> Result<(), PushError> {
        self.push_at(message, Instant::now())
    }

    /// `push`, with the caller's clock reading: fan-out reads the clock once
    /// per publication, not once per subscriber.
    pub fn push_at(&self, message: Bytes, queued_at: Instant) -> Result<(), PushError> {
        let mut state = self.lock();
        if state.close.is_some() {
            return Err(PushError::Closed);
        }
        if state.queue.len() >= self.limits.max_messages
            || state.bytes + message.len() > self.limits.max_bytes
        {
            state.close = Some(Disconnect::SLOW);
            state.queue.clear();
            state.bytes = 0;
            drop(state);
            self.wake_all();
            return Err(PushError::Overflow);
        }
        state.bytes += message.len();
        let was_empty = state.queue.is_empty();
        if was_empty {
            state.oldest = Some(queued_at);
        }
        state.queue.push_back(message);
        drop(state);
        // The writer takes everything queued at once, so only the first message
        // after a drain needs to wake it: fan-out to a busy client costs no wake-up.
        if was_empty {
            self.ready.notify_one();
        }
        Ok(())
    }

    /// Holds the writer back until `release`, so a reply built over several steps
    /// can still be sent before the messages queued meanwhile.
    pub fn hold(&self) {
        let mut state = self.lock();
        state.hold_at = Some(state.queue.len());
    }

    /// Puts `reply` where the hold began, ahead of what was queued since, and
    /// lets the writer go on.
    pub fn release(&self, reply: Option<Bytes>) {
        let mut state = self.lock();
        let at = state
            .hold_at
            .take()
            .unwrap_or(usize::MAX)
            .min(state.queue.len());
        if let Some(reply) = reply {
            if state.queue.is_empty() {
                state.oldest = Some(Instant::now());
            }
            state.bytes += reply.len();
            state.queue.insert(at, reply);
        }
        drop(state);
        self.ready.notify_one();
    }

    /// Asks the writer to flush what is queued, then close with `disconnect`.
    /// The first close wins; later ones are ignored.
    pub fn close(&self, disconnect: Disconnect) {
        let mut state = self.lock();
        if state.close.is_none() {
            state.close = Some(disconnect);
        }
        drop(state);
        self.wake_all();
    }

    fn wake_all(&self) {
        self.ready.notify_one();
        self.closed.notify_waiters();
    }

    /// Resolves once the outbox is closed, by anyone, for any reason.
    pub async fn closed(&self) {
        loop {
            let notified = self.closed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_closed() {
                return;
            }
            notified.await;
        }
    }

    pub fn is_closed(&self) -> bool {
        self.lock().close.is_some()
    }

    /// The code the outbox was closed with, if any.
    pub fn close_reason(&self) -> Option<Disconnect> {
        self.lock().close.clone()
    }

    /// Waits until there is something to write, then moves all of it into
    /// `messages` (the writer's own buffer, reused from drain to drain).
    pub async fn drain(&self, messages: &mut Vec<Bytes>) -> Drained {
        loop {
            {
                let mut state = self.lock();
                let close = if state.close.is_some() && !state.close_taken {
                    state.close_taken = true;
                    state.close.clone()
                } else {
                    None
                };
                let held = state.hold_at.is_some() && close.is_none();
                if (!state.queue.is_empty() && !held) || close.is_some() {
                    state.bytes = 0;
                    messages.extend(state.queue.drain(..));
                    return Drained {
                        oldest: state.oldest.take(),
                        close,
                    };
                }
            }
            self.ready.notified().await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the queue half-updated in a
        // way that matters more than losing the connection, so recover the guard.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests;
