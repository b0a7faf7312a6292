//! A node's mirror of the broker's streams: publications that arrive from the
//! broker are appended and fanned out here, in offset order, under the same
//! stream lock that recovering subscribers take.
//!
//! The broker's subscription delivers each channel's publications in order, so
//! a publication is normally the next offset. Anything else says what the
//! broker must do: skip a duplicate, or reload the stream when a gap or a new
//! epoch shows the mirror fell behind (a lost connection, a removed history).

use crate::engine::{Streams, deliver};
use crate::history::{Retention, StoredPublication, Stream, now_ms};
use crate::hub::Hub;
use std::sync::Arc;

/// What became of a publication that arrived from the broker.
#[derive(Debug, PartialEq, Eq)]
pub enum Arrival {
    Delivered,
    /// Already in the mirror (it was loaded with the stream).
    Duplicate,
    /// Publications before it are missing, or its epoch is not the mirror's:
    /// the stream must be reloaded.
    OutOfStep,
}

/// A stream as the broker holds it: its epoch, its top offset, and the
/// publications it retains, oldest first.
#[derive(Debug, Clone, Default)]
pub struct LoadedStream {
    pub epoch: Arc<str>,
    pub top: u64,
    pub publications: Vec<StoredPublication>,
}

/// How a reload went for the channel's subscribers.
#[derive(Debug, PartialEq, Eq)]
pub enum Reload {
    /// The missed publications were delivered in order: nobody lost anything.
    Continuous { delivered: usize },
    /// The mirror's epoch is gone or publications expired before they could be
    /// delivered: subscribers must recover on their own.
    Broken,
}

impl Streams {
    /// Appends and fans out a publication from the broker, if it is the next one.
    pub fn arrive(
        &self,
        hub: &Hub,
        channel: &str,
        retention: Retention,
        epoch: &str,
        publication: StoredPublication,
    ) -> Arrival {
        self.locked(channel, |stream| {
            if &**stream.epoch() != epoch {
                return Arrival::OutOfStep;
            }
            if publication.offset <= stream.top() {
                return Arrival::Duplicate;
            }
            if publication.offset != stream.top() + 1 {
                return Arrival::OutOfStep;
            }
            deliver(hub, channel, stream, retention, publication);
            Arrival::Delivered
        })
    }

    /// Brings the mirror up to what the broker holds. `fresh` is true for a
    /// mirror that was never loaded: there is nobody to be continuous for.
    pub fn reload(
        &self,
        hub: &Hub,
        channel: &str,
        retention: Retention,
        loaded: LoadedStream,
        fresh: bool,
    ) -> Reload {
        self.locked(channel, |stream| {
            let same_epoch = *stream.epoch() == loaded.epoch;
            let top = stream.top();
            let missing = loaded.publications.iter().filter(|p| p.offset > top);
            let continuous = !fresh
                && same_epoch
                && loaded.top >= top
                && missing
                    .clone()
                    .next()
                    .is_none_or(|first| first.offset == top + 1);
            if continuous {
                let mut delivered = 0;
                for publication in loaded.publications.into_iter().filter(|p| p.offset > top) {
                    deliver(hub, channel, stream, retention, publication);
                    delivered += 1;
                }
                return Reload::Continuous { delivered };
            }
            *stream = Stream::restore(loaded.epoch, loaded.top, loaded.publications);
            stream.trim(retention, now_ms());
            if fresh {
                Reload::Continuous { delivered: 0 }
            } else {
                Reload::Broken
            }
        })
    }
}

#[cfg(test)]
mod tests;
