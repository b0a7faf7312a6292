//! `publish`, `presence`, `presence_stats` and `history`: commands on a channel
//! the client may or may not be subscribed to.

use super::{Session, json_null};
use crate::channel::ChannelOptions;
use herald_protocol::command::PublishRequest;
use herald_protocol::reply::{EmptyResult, PresenceResult};
use herald_protocol::{Disconnect, ErrorCode};

/// Which namespace permission a channel command needs.
#[derive(Clone, Copy)]
enum Action {
    Publish,
    Presence,
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
        if let Err(error) = self.permit(channel, Action::Publish) {
            self.error(id, error);
            return Ok(());
        }
        let c = self.connected();
        let info = c
            .subscriptions
            .get(channel)
            .map_or_else(|| c.info.clone(), |subscription| subscription.info.clone());
        let data: &serde_json::value::RawValue = match request.data {
            Some(data) => data,
            None => json_null(),
        };
        match self.node.publish(channel, data, Some(&info), None) {
            Ok(_) => self.reply(id, "publish", &EmptyResult {}),
            Err(error) => self.error(id, error),
        }
        Ok(())
    }

    pub(super) fn presence(&mut self, id: u32, channel: &str) -> Result<(), Disconnect> {
        let result = self
            .permit(channel, Action::Presence)
            .and_then(|_| self.node.presence(channel));
        match result {
            Ok(entries) => {
                let presence = entries
                    .iter()
                    .map(|info| (info.client.as_str(), info))
                    .collect();
                self.reply(id, "presence", &PresenceResult { presence });
            }
            Err(error) => self.error(id, error),
        }
        Ok(())
    }

    pub(super) fn presence_stats(&mut self, id: u32, channel: &str) -> Result<(), Disconnect> {
        let result = self
            .permit(channel, Action::Presence)
            .and_then(|_| self.node.presence_stats(channel));
        match result {
            Ok(stats) => self.reply(id, "presence_stats", &stats),
            Err(error) => self.error(id, error),
        }
        Ok(())
    }

    /// History arrives with its own issue; until then the protocol's answer is 108.
    pub(super) fn history(&mut self, id: u32, channel: &str) -> Result<(), Disconnect> {
        let error = match self.node.namespaces.options(channel) {
            Ok(_) => ErrorCode::NOT_AVAILABLE,
            Err(error) => error,
        };
        self.error(id, error);
        Ok(())
    }
}
