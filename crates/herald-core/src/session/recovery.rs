//! Subscribing to a channel with history: recovery, positioning and cache mode,
//! for client subscribes and for server-side subscriptions made at connect.
//!
//! The subscriber is registered and the missed publications are read under the
//! channel's stream lock, while the outbox is held: the reply carrying them is
//! then released ahead of every live publication queued after registration, so
//! nothing is missed and nothing arrives twice.

use super::subscribe::Terms;
use super::{Expiry, Session};
use crate::channel::ChannelOptions;
use crate::history::{StoredPublication, now_ms};
use crate::hub::SubscriberOptions;
use herald_protocol::ErrorCode;
use herald_protocol::command::SubscribeRequest;
use herald_protocol::reply::SubscribeResult;
use serde_json::value::RawValue;
use std::sync::Arc;

/// The SDK's subscribe flag asking for 112 instead of `recovered: false`.
const FLAG_REJECT_UNRECOVERED: u64 = 2;

/// What a subscriber is owed, owned so it outlives the stream lock.
#[derive(Default)]
pub(super) struct Subscribed {
    recoverable: bool,
    positioned: bool,
    was_recovering: bool,
    recovered: bool,
    epoch: Arc<str>,
    offset: u64,
    publications: Vec<Arc<StoredPublication>>,
}

impl Subscribed {
    /// The protocol's subscribe result, borrowing the publications' bytes.
    pub(super) fn result<'a>(&'a self, expiry: &Expiry) -> SubscribeResult<'a> {
        SubscribeResult {
            expires: expiry.expires,
            ttl: expiry.ttl,
            recoverable: self.recoverable,
            epoch: &self.epoch,
            publications: self
                .publications
                .iter()
                .filter_map(|p| serde_json::from_slice::<&RawValue>(&p.object).ok())
                .collect(),
            recovered: self.recovered,
            offset: self.offset,
            positioned: self.positioned,
            was_recovering: self.was_recovering,
            ..Default::default()
        }
    }
}

impl Session {
    /// Subscribes to a channel with history from the position `request` names.
    /// Call with the outbox held, and release it with the reply.
    pub(super) fn subscribe_at_position(
        &mut self,
        request: &SubscribeRequest<'_>,
        options: &ChannelOptions,
        join_leave: bool,
        terms: Terms,
    ) -> Result<Subscribed, ErrorCode> {
        let channel = request.channel.as_str();
        let retention = options.retention();
        let cache = options.cache_mode();
        let limit = match options.recovery_max_publication_limit {
            0 => usize::MAX,
            limit => limit,
        };
        let mut owed = Subscribed {
            recoverable: cache
                || options.force_recovery
                || (options.allow_recovery && request.recoverable),
            positioned: options.force_positioning
                || (options.allow_positioning && request.positioned),
            ..Default::default()
        };
        let node = self.node.clone();
        node.engine.streams().locked(channel, |stream| {
            let now = now_ms();
            let position = stream.position();
            owed.epoch = position.epoch.clone();
            owed.offset = position.offset;
            if cache {
                owed.publications.extend(stream.latest(retention, now));
                owed.was_recovering = request.recover;
                owed.recovered = request.recover;
            } else if owed.recoverable && request.recover {
                owed.was_recovering = true;
                // An empty epoch means "any"; a client that saw nothing of an empty
                // stream has nothing to miss, whatever its epoch.
                let same_stream = request.epoch.is_empty()
                    || request.epoch == *position.epoch
                    || (request.offset == 0 && position.offset == 0);
                let missed = same_stream
                    .then(|| stream.since(request.offset, retention, now))
                    .flatten()
                    .filter(|missed| missed.len() <= limit);
                match missed {
                    Some(missed) => {
                        owed.recovered = true;
                        if !missed.is_empty() {
                            // The position recovered from; each replayed publication moves it.
                            owed.offset = request.offset;
                        }
                        owed.publications = missed;
                    }
                    None if request.flag & FLAG_REJECT_UNRECOVERED != 0 => {
                        return Err(ErrorCode::UNRECOVERABLE_POSITION);
                    }
                    None => {}
                }
            }
            let outcome = if owed.recovered { "true" } else { "false" };
            ::metrics::counter!(crate::metrics::RECOVERIES, "recovered" => outcome)
                .increment(u64::from(owed.was_recovering));
            let subscriber = SubscriberOptions {
                join_leave,
                positioned_at: owed.positioned.then_some(position.offset),
            };
            self.add_subscription(channel, subscriber, terms);
            Ok(())
        })?;
        Ok(owed)
    }
}
