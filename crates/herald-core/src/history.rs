//! Per-channel publication streams: offsets, epochs, retention and recovery.
//!
//! Pure logic over in-memory state; the engine decides where the state lives
//! and how it is made durable. An offset is never reused within an epoch, and an
//! epoch changes only when a stream is lost or reset, so `(epoch, offset)` names
//! one publication forever.

use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

/// How much of a channel's stream to keep; both must be non-zero to keep any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retention {
    pub size: usize,
    pub ttl: Duration,
}

impl Retention {
    pub fn enabled(&self) -> bool {
        self.size > 0 && !self.ttl.is_zero()
    }
}

/// One publication as history keeps it: its encoded publication object (with
/// its offset inside), so replies and pushes embed it without re-encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPublication {
    pub offset: u64,
    pub time_ms: u64,
    pub object: Bytes,
}

/// A position in a stream, as clients hold it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Position {
    pub offset: u64,
    pub epoch: Arc<str>,
}

/// What a history read asks for. `limit` follows the protocol: 0 returns only
/// the stream position, a negative limit returns everything retained.
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    pub since: Option<(u64, String)>,
    pub limit: i32,
    pub reverse: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum HistoryError {
    /// `since` names another epoch, or a position older than what is retained.
    UnrecoverablePosition,
}

#[derive(Debug, Clone)]
pub struct Stream {
    epoch: Arc<str>,
    top: u64,
    entries: VecDeque<Arc<StoredPublication>>,
    /// When the stream last changed (created, appended to, reset), so an idle
    /// stream's position can be forgotten after the namespace's meta TTL.
    touched_ms: u64,
}

pub fn new_epoch() -> Arc<str> {
    // Short and unique enough: an epoch only has to differ from its predecessors.
    uuid::Uuid::new_v4().simple().to_string()[..12].into()
}

impl Stream {
    pub fn new() -> Self {
        Self::restore(new_epoch(), 0, Vec::new())
    }

    /// A stream loaded from storage; entries must be in increasing offset order.
    pub fn restore(epoch: Arc<str>, top: u64, entries: Vec<StoredPublication>) -> Self {
        Self {
            epoch,
            top,
            entries: entries.into_iter().map(Arc::new).collect(),
            touched_ms: now_ms(),
        }
    }

    pub fn position(&self) -> Position {
        Position {
            offset: self.top,
            epoch: self.epoch.clone(),
        }
    }

    pub fn epoch(&self) -> &Arc<str> {
        &self.epoch
    }

    pub fn top(&self) -> u64 {
        self.top
    }

    /// Appends a publication whose offset must be `top + 1`, then trims.
    pub fn append(&mut self, publication: StoredPublication, retention: Retention, now_ms: u64) {
        debug_assert_eq!(
            publication.offset,
            self.top + 1,
            "offsets are assigned in order"
        );
        self.top = publication.offset;
        self.touched_ms = self.touched_ms.max(publication.time_ms);
        self.entries.push_back(Arc::new(publication));
        self.trim(retention, now_ms);
    }

    /// Drops what is past the retention's size or age; the position is kept.
    pub fn trim(&mut self, retention: Retention, now_ms: u64) {
        while self.entries.len() > retention.size {
            self.entries.pop_front();
        }
        let oldest_kept = now_ms.saturating_sub(retention.ttl.as_millis() as u64);
        while self
            .entries
            .front()
            .is_some_and(|e| e.time_ms < oldest_kept)
        {
            self.entries.pop_front();
        }
    }

    /// Whether nothing is retained and nothing changed since `idle_since_ms`:
    /// such a stream holds only its position, which may then be forgotten.
    pub fn idle_since(&self, idle_since_ms: u64) -> bool {
        self.entries.is_empty() && self.touched_ms < idle_since_ms
    }

    /// Empties the stream under a new epoch (the server API's `history_remove`).
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// Publications after `offset`, oldest first, or `None` when some of them are
    /// no longer retained: recovery is all or nothing.
    pub fn since(
        &self,
        offset: u64,
        retention: Retention,
        now_ms: u64,
    ) -> Option<Vec<Arc<StoredPublication>>> {
        if offset > self.top {
            return None;
        }
        if offset == self.top {
            return Some(Vec::new());
        }
        let oldest_kept = now_ms.saturating_sub(retention.ttl.as_millis() as u64);
        let missed: Vec<_> = self
            .entries
            .iter()
            .filter(|e| e.offset > offset && e.time_ms >= oldest_kept)
            .cloned()
            .collect();
        let complete = missed
            .first()
            .is_some_and(|first| first.offset == offset + 1)
            && missed.len() as u64 == self.top - offset;
        complete.then_some(missed)
    }

    /// Reads history as the `history` command and API method do.
    pub fn read(
        &self,
        query: &HistoryQuery,
        retention: Retention,
        now_ms: u64,
    ) -> Result<Vec<Arc<StoredPublication>>, HistoryError> {
        let mut selected: Vec<Arc<StoredPublication>> = match &query.since {
            Some((offset, epoch)) => {
                if !epoch.is_empty() && epoch.as_str() != &*self.epoch {
                    return Err(HistoryError::UnrecoverablePosition);
                }
                if query.reverse {
                    let oldest_kept = now_ms.saturating_sub(retention.ttl.as_millis() as u64);
                    self.entries
                        .iter()
                        .filter(|e| e.offset < *offset && e.time_ms >= oldest_kept)
                        .cloned()
                        .collect()
                } else {
                    self.since(*offset, retention, now_ms)
                        .ok_or(HistoryError::UnrecoverablePosition)?
                }
            }
            None => {
                let oldest_kept = now_ms.saturating_sub(retention.ttl.as_millis() as u64);
                self.entries
                    .iter()
                    .filter(|e| e.time_ms >= oldest_kept)
                    .cloned()
                    .collect()
            }
        };
        if query.reverse {
            selected.reverse();
        }
        if query.limit >= 0 {
            selected.truncate(query.limit as usize);
        }
        Ok(selected)
    }

    /// The newest retained publication, for cache mode.
    pub fn latest(&self, retention: Retention, now_ms: u64) -> Option<Arc<StoredPublication>> {
        let oldest_kept = now_ms.saturating_sub(retention.ttl.as_millis() as u64);
        self.entries
            .back()
            .filter(|e| e.time_ms >= oldest_kept)
            .cloned()
    }
}

impl Default for Stream {
    fn default() -> Self {
        Self::new()
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
