//! Subscribing to a channel with history: recovery, positioning and cache mode.
//!
//! Everything here runs under the channel's stream lock, so the reply (with the
//! missed publications) is queued before any publication that comes after it.

use super::{Expiry, Session};
use crate::channel::ChannelOptions;
use crate::history::now_ms;
use crate::hub::SubscriberOptions;
use herald_protocol::ErrorCode;
use herald_protocol::command::SubscribeRequest;
use herald_protocol::reply::{Reply, SubscribeResult};
use serde_json::value::RawValue;

/// The SDK's subscribe flag asking for 112 instead of `recovered: false`.
const FLAG_REJECT_UNRECOVERED: u64 = 2;

impl Session {
    pub(super) fn subscribe_with_history(
        &mut self,
        id: u32,
        request: &SubscribeRequest<'_>,
        options: &ChannelOptions,
        join_leave: bool,
        chan_info: Option<Box<RawValue>>,
        expiry: &Expiry,
    ) -> Result<(), ErrorCode> {
        let channel = request.channel.as_str();
        let retention = options.retention();
        let cache = options.cache_mode();
        let recoverable =
            cache || options.force_recovery || (options.allow_recovery && request.recoverable);
        let positioned =
            options.force_positioning || (options.allow_positioning && request.positioned);
        let limit = match options.recovery_max_publication_limit {
            0 => usize::MAX,
            limit => limit,
        };
        let node = self.node.clone();
        node.engine.streams().locked(channel, |stream| {
            let now = now_ms();
            let position = stream.position();
            let mut result = SubscribeResult {
                expires: expiry.expires,
                ttl: expiry.ttl,
                recoverable,
                epoch: &position.epoch,
                offset: position.offset,
                positioned,
                ..Default::default()
            };
            let mut publications = Vec::new();
            if cache {
                publications.extend(stream.latest(retention, now));
                result.was_recovering = request.recover;
                result.recovered = request.recover;
            } else if recoverable && request.recover {
                result.was_recovering = true;
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
                        result.recovered = true;
                        if !missed.is_empty() {
                            // The position recovered from; each replayed publication moves it.
                            result.offset = request.offset;
                        }
                        publications = missed;
                    }
                    None if request.flag & FLAG_REJECT_UNRECOVERED != 0 => {
                        return Err(ErrorCode::UNRECOVERABLE_POSITION);
                    }
                    None => {}
                }
            }
            ::metrics::counter!(crate::metrics::RECOVERIES, "recovered" => if result.recovered { "true" } else { "false" })
                .increment(u64::from(result.was_recovering));
            let objects: Vec<&RawValue> = publications
                .iter()
                .filter_map(|p| serde_json::from_slice(&p.object).ok())
                .collect();
            result.publications = objects;
            let subscriber = SubscriberOptions {
                join_leave,
                positioned_at: positioned.then_some(position.offset),
            };
            self.add_subscription(channel, subscriber, chan_info, expiry.deadline);
            let _ = self.outbox.push(Reply::result(id, "subscribe", &result));
            Ok(())
        })
    }
}
