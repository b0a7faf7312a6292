//! `publish`, `presence`, `presence_stats` and `history`: commands on a channel
//! the client may or may not be subscribed to.

use super::{Session, json_null};
use crate::channel::ChannelOptions;
use crate::engine::Draft;
use crate::history::HistoryQuery;
use crate::node::Node;
use crate::node::PublishOptions;
use crate::proxy::{self, ProxyKind, Verdict};
use herald_protocol::command::{HistoryRequest, PublishRequest};
use herald_protocol::reply::{EmptyResult, HistoryResult, PresenceResult, Reply};
use herald_protocol::{Disconnect, ErrorCode};
use serde_json::value::RawValue;
use std::sync::Arc;

/// Which namespace permission a channel command needs.
#[derive(Clone, Copy)]
enum Action {
    Publish,
    Presence,
    History,
}

impl Session {
    /// Checks the namespace permission for `action`: allowed for every client, or
    /// only for subscribers of the channel.
    fn permit(&mut self, channel: &str, action: Action) -> Result<ChannelOptions, ErrorCode> {
        crate::channel::validate_name(channel)?;
        let options = self.node.namespaces.options(channel)?.clone();
        let c = self.connected();
        let subscribed = c.subscriptions.contains_key(channel);
        let anonymous = c.info.user.is_empty();
        let (for_client, for_subscriber, for_anonymous) = match action {
            Action::Publish => (
                options.allow_publish_for_client,
                options.allow_publish_for_subscriber,
                options.allow_publish_for_anonymous,
            ),
            Action::Presence => (
                options.allow_presence_for_client,
                options.allow_presence_for_subscriber,
                options.allow_presence_for_anonymous,
            ),
            Action::History => (
                options.allow_history_for_client,
                options.allow_history_for_subscriber,
                options.allow_history_for_anonymous,
            ),
        };
        let allowed =
            (for_client || (for_subscriber && subscribed)) && (!anonymous || for_anonymous);
        if allowed {
            Ok(options)
        } else {
            Err(ErrorCode::PERMISSION_DENIED)
        }
    }

    pub(super) fn publish(
        &mut self,
        id: u32,
        request: PublishRequest<'_>,
    ) -> Result<(), Disconnect> {
        let channel = request.channel.as_str();
        let mut options = PublishOptions::default();
        let mut data = request.data.unwrap_or_else(|| json_null()).to_owned();
        let mut tags = None;
        if self.publish_proxied(channel) {
            // The backend decides instead of the namespace's allow_publish_*.
            if let Err(error) = crate::channel::validate_name(channel) {
                self.error(id, error);
                return Ok(());
            }
            let fields = || serde_json::json!({ "channel": channel, "data": request.data });
            let Some(answer) = self.consult(ProxyKind::Publish, channel, fields) else {
                return Ok(());
            };
            match proxy::judge::<proxy::PublishResult>(ProxyKind::Publish, answer) {
                Ok(Verdict::Allowed(result)) => {
                    data = result.data.unwrap_or(data);
                    options.skip_history = result.skip_history;
                    options.idempotency_key = result.idempotency_key;
                    tags = result.tags;
                }
                Ok(Verdict::Refused(error)) => {
                    self.error_detailed(id, &error);
                    return Ok(());
                }
                Ok(Verdict::Disconnect(disconnect)) => return Err(disconnect),
                Err(_) => {
                    self.error(id, ErrorCode::INTERNAL);
                    return Ok(());
                }
            }
        } else if let Err(error) = self.permit(channel, Action::Publish) {
            self.error(id, error);
            return Ok(());
        }
        let c = self.connected();
        let info = c
            .subscriptions
            .get(channel)
            .map_or_else(|| c.info.clone(), |subscription| subscription.info.clone());
        let draft = Draft {
            data,
            info: Some(info),
            tags,
        };
        let node = self.node.clone();
        let channel = channel.to_string();
        // In memory the publish is done at once and its reply joins this frame's;
        // a durable or brokered publish answers on its own once done.
        self.answer(async move {
            let result = node.publish(&channel, draft, options).await;
            match result {
                Ok(_) => Reply::result(id, "publish", &EmptyResult {}),
                Err(error) => error_reply(id, error),
            }
        });
        Ok(())
    }

    /// Whether the backend decides publishes to `channel`.
    fn publish_proxied(&self, channel: &str) -> bool {
        self.proxied(ProxyKind::Publish)
            && self
                .node
                .namespaces
                .options(channel)
                .is_ok_and(|o| o.publish_proxy_enabled)
    }

    pub(super) fn presence(&mut self, id: u32, channel: &str) -> Result<(), Disconnect> {
        self.presence_query(id, channel, async move |node, channel| {
            match node.presence(&channel).await {
                Ok(entries) => {
                    let presence = entries
                        .iter()
                        .map(|info| (info.client.as_str(), info))
                        .collect();
                    Reply::result(id, "presence", &PresenceResult { presence })
                }
                Err(error) => error_reply(id, error),
            }
        })
    }

    pub(super) fn presence_stats(&mut self, id: u32, channel: &str) -> Result<(), Disconnect> {
        self.presence_query(id, channel, async move |node, channel| {
            match node.presence_stats(&channel).await {
                Ok(stats) => Reply::result(id, "presence_stats", &stats),
                Err(error) => error_reply(id, error),
            }
        })
    }

    /// Answers a presence command with `query` once the client may ask.
    fn presence_query<F>(
        &mut self,
        id: u32,
        channel: &str,
        query: impl FnOnce(Arc<Node>, String) -> F,
    ) -> Result<(), Disconnect>
    where
        F: std::future::Future<Output = bytes::Bytes> + Send + 'static,
    {
        if let Err(error) = self.permit(channel, Action::Presence) {
            self.error(id, error);
            return Ok(());
        }
        let reply = query(self.node.clone(), channel.to_string());
        self.answer(reply);
        Ok(())
    }

    pub(super) fn history(&mut self, id: u32, request: HistoryRequest) -> Result<(), Disconnect> {
        let channel = request.channel.as_str();
        let available = self.node.checked_channel(channel).and_then(|options| {
            match options.retention().enabled() {
                true => Ok(()),
                false => Err(ErrorCode::NOT_AVAILABLE),
            }
        });
        if let Err(error) = available.and_then(|()| self.permit(channel, Action::History).map(drop))
        {
            self.error(id, error);
            return Ok(());
        }
        let query = HistoryQuery {
            since: request.since.map(|since| (since.offset, since.epoch)),
            limit: request.limit,
            reverse: request.reverse,
        };
        let node = self.node.clone();
        let channel = channel.to_string();
        self.answer(async move {
            match node.history(&channel, &query).await {
                Ok((publications, position)) => {
                    let objects: Vec<&RawValue> = publications
                        .iter()
                        .filter_map(|p| serde_json::from_slice(&p.object).ok())
                        .collect();
                    let result = HistoryResult {
                        publications: objects,
                        epoch: &position.epoch,
                        offset: position.offset,
                    };
                    Reply::result(id, "history", &result)
                }
                Err(error) => error_reply(id, error),
            }
        });
        Ok(())
    }
}

fn error_reply(id: u32, error: ErrorCode) -> bytes::Bytes {
    crate::metrics::count_error(error.code);
    Reply::error(id, &error)
}
