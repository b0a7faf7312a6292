//! Work the server API hands to one connection's task.
//!
//! A queue that allocates nothing until something is queued: most connections
//! never receive control work, and idle connections must stay small.

use crate::hub::Control;
use std::collections::VecDeque;
use std::sync::Mutex;
use tokio::sync::Notify;

/// Pending control work a connection may have before it counts as stuck.
const LIMIT: usize = 64;

#[derive(Default)]
pub struct ControlQueue {
    queue: Mutex<VecDeque<Control>>,
    ready: Notify,
}

impl ControlQueue {
    /// Queues `control`; false when the queue is full.
    pub fn push(&self, control: Control) -> bool {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if queue.len() >= LIMIT {
            return false;
        }
        queue.push_back(control);
        drop(queue);
        self.ready.notify_one();
        true
    }

    /// Waits for the next piece of control work.
    pub async fn recv(&self) -> Control {
        loop {
            if let Some(control) = self
                .queue
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop_front()
            {
                return control;
            }
            self.ready.notified().await;
        }
    }
}
