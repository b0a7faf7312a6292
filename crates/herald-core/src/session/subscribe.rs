//! `subscribe`, `unsubscribe`, `sub_refresh`, and server-side subscriptions.

use super::{Session, Subscription, expiry};
use crate::channel::{self, ChannelOptions};
use crate::extension::AccessCheck;
use crate::hub::SubscriberOptions;
use crate::proxy::{self, ProxyKind, SubscribeOverride, Verdict};
use herald_protocol::command::{SubRefreshRequest, SubscribeRequest};
use herald_protocol::push;
use herald_protocol::reply::{EmptyResult, Reply, SubRefreshResult, SubscribeResult};
use herald_protocol::{DetailedError, Disconnect, ErrorCode};
use serde_json::value::RawValue;
use std::time::Instant;

/// What a subscription token or the subscribe proxy granted: extra channel
/// info and an expiry; from the proxy also data for the reply and changed
/// namespace options.
#[derive(Default)]
struct Grant {
    info: Option<Box<RawValue>>,
    exp: Option<u64>,
    data: Option<Box<RawValue>>,
    overrides: Option<SubscribeOverride>,
    by_proxy: bool,
}

/// What a new subscription is, beyond what the hub keeps.
pub(super) struct Terms {
    pub chan_info: Option<Box<RawValue>>,
    pub expire_at: Option<Instant>,
    pub refresh_at: Option<Instant>,
    pub presence: bool,
    pub announces: bool,
}

impl Terms {
    /// The namespace's terms: no extra info, no expiry.
    pub fn of(options: &ChannelOptions) -> Self {
        Self {
            chan_info: None,
            expire_at: None,
            refresh_at: None,
            presence: options.presence,
            announces: options.join_leave,
        }
    }
}

/// Applies a subscribe proxy's overrides to the namespace's options.
fn apply(overrides: &SubscribeOverride, options: &mut ChannelOptions) {
    let pairs = [
        (overrides.presence, &mut options.presence),
        (overrides.join_leave, &mut options.join_leave),
        (
            overrides.force_push_join_leave,
            &mut options.force_push_join_leave,
        ),
        (overrides.force_recovery, &mut options.force_recovery),
        (overrides.force_positioning, &mut options.force_positioning),
    ];
    for (value, option) in pairs {
        if let Some(value) = value {
            *option = value.value;
        }
    }
}

impl Session {
    pub(super) fn subscribe(
        &mut self,
        id: u32,
        request: SubscribeRequest<'_>,
    ) -> Result<(), Disconnect> {
        let channel = request.channel.as_str();
        let by_proxy = request.token.is_empty() && self.subscribe_proxied(channel);
        if !by_proxy && request.token.is_empty() && self.access_unknown(channel) {
            let user = self.connected().info.user.clone();
            self.awaiting_access = Some(AccessCheck {
                user,
                channel: channel.to_string(),
            });
            return Ok(());
        }
        let authorized = if by_proxy {
            self.ask_backend(&request)
        } else {
            self.authorize_subscribe(channel, &request.token)
                .map(Some)
                .map_err(|e| e.map(DetailedError::from))
        };
        let grant = match authorized {
            Ok(Some(grant)) => grant,
            Ok(None) => return Ok(()),
            Err(Ok(error)) => {
                self.error_detailed(id, &error);
                return Ok(());
            }
            Err(Err(disconnect)) => return Err(disconnect),
        };
        if !self.proceed_when_ready(id, [channel]) {
            return Ok(());
        }
        let mut options = self
            .node
            .namespaces
            .options(channel)
            .cloned()
            .unwrap_or_default();
        if let Some(overrides) = &grant.overrides {
            apply(overrides, &mut options);
        }
        let join_leave =
            options.join_leave && (options.force_push_join_leave || request.join_leave);
        let (expiry, refresh_at) = self.deadlines(grant.exp, ProxyKind::SubRefresh, grant.by_proxy);
        let terms = Terms {
            chan_info: grant.info,
            expire_at: expiry.deadline,
            refresh_at,
            ..Terms::of(&options)
        };
        let data = grant.data;
        // The reply must precede this client's own join push, and with history
        // every publication after the position it reports.
        self.flush_replies();
        if options.retention().enabled() {
            self.outbox.hold();
            match self.subscribe_at_position(&request, &options, join_leave, terms) {
                Ok(owed) => {
                    let mut result = owed.result(&expiry);
                    result.data = data.as_deref();
                    let reply = Reply::result(id, "subscribe", &result);
                    self.outbox.release(Some(reply));
                }
                Err(error) => {
                    self.outbox.release(None);
                    self.error(id, error);
                    return Ok(());
                }
            }
        } else {
            let subscriber = SubscriberOptions {
                join_leave,
                positioned_at: None,
            };
            self.add_subscription(channel, subscriber, terms);
            let result = SubscribeResult {
                expires: expiry.expires,
                ttl: expiry.ttl,
                data: data.as_deref(),
                ..Default::default()
            };
            self.reply(id, "subscribe", &result);
            self.flush_replies();
        }
        self.announce_join(channel);
        Ok(())
    }

    /// `Err(Ok(code))` answers the command with an error; `Err(Err(..))` disconnects.
    fn authorize_subscribe(
        &self,
        channel: &str,
        token: &str,
    ) -> Result<Grant, Result<ErrorCode, Disconnect>> {
        let options = self.subscribable(channel).map_err(Ok)?;
        let user = self.connected_ref().0.info.user.as_str();
        if !token.is_empty() {
            let claims = self
                .node
                .verifier
                .verify_subscribe(token)
                .map_err(|error| super::token_error(error, "subscribe"))?;
            if claims.channel != channel || claims.sub != user {
                return Err(Ok(ErrorCode::PERMISSION_DENIED));
            }
            return Ok(Grant {
                info: claims.info,
                exp: claims.exp,
                ..Grant::default()
            });
        }
        if self.guarded(channel) {
            // Looked up by the extension while the command waited.
            return match &self.granted {
                Some((granted, Ok(true))) if granted == channel => Ok(Grant::default()),
                Some((granted, Err(error))) if granted == channel => Err(Ok(*error)),
                _ => Err(Ok(ErrorCode::PERMISSION_DENIED)),
            };
        }
        if may_subscribe_without_token(options, channel, user) {
            Ok(Grant::default())
        } else {
            Err(Ok(ErrorCode::PERMISSION_DENIED))
        }
    }

    /// What every subscribe must satisfy, whoever grants it: a valid name in
    /// a known namespace, not subscribed yet, within the channel limit.
    fn subscribable(&self, channel: &str) -> Result<&ChannelOptions, ErrorCode> {
        channel::validate_name(channel)?;
        let options = self.node.namespaces.options(channel)?;
        let State(c) = self.connected_ref();
        if c.subscriptions.contains_key(channel) {
            return Err(ErrorCode::ALREADY_SUBSCRIBED);
        }
        // Herald's own personal channels do not count against the app's limit.
        let personal = c
            .personal
            .iter()
            .filter(|channel| c.subscriptions.contains_key(*channel))
            .count();
        if c.subscriptions.len() - personal >= self.node.limits.channel_limit {
            tracing::info!(client = %c.handle.id, limit = self.node.limits.channel_limit, "channel limit reached");
            return Err(ErrorCode::LIMIT_EXCEEDED);
        }
        Ok(options)
    }

    /// Whether the backend decides subscriptions to `channel`.
    fn subscribe_proxied(&self, channel: &str) -> bool {
        self.proxied(ProxyKind::Subscribe)
            && self
                .node
                .namespaces
                .options(channel)
                .is_ok_and(|o| o.subscribe_proxy_enabled)
    }

    /// The subscribe proxy's grant; `Ok(None)` while the answer is awaited.
    fn ask_backend(
        &mut self,
        request: &SubscribeRequest<'_>,
    ) -> Result<Option<Grant>, Result<DetailedError, Disconnect>> {
        let channel = request.channel.as_str();
        let options = self.subscribable(channel).map_err(|e| Ok(e.into()))?;
        let refreshes = options.sub_refresh_proxy_enabled;
        let fields = || {
            serde_json::json!({
                "channel": channel,
                "token": (!request.token.is_empty()).then_some(&request.token),
                "data": request.data,
            })
        };
        let Some(answer) = self.consult(ProxyKind::Subscribe, channel, fields) else {
            return Ok(None);
        };
        match proxy::judge::<proxy::SubscribeResult>(ProxyKind::Subscribe, answer) {
            Ok(Verdict::Allowed(result)) => Ok(Some(Grant {
                info: result.info,
                exp: (result.expire_at > 0).then_some(result.expire_at),
                data: result.data,
                overrides: result.overrides,
                by_proxy: refreshes,
            })),
            Ok(Verdict::Refused(error)) => Err(Ok(error)),
            Ok(Verdict::Disconnect(disconnect)) => Err(Err(disconnect)),
            Err(_) => Err(Ok(proxy::unavailable())),
        }
    }

    /// Whether the node's extension decides who may subscribe to `channel`.
    fn guarded(&self, channel: &str) -> bool {
        self.node.extension().is_some_and(|e| e.guards(channel))
    }

    /// A guarded channel whose permission has not been looked up yet.
    fn access_unknown(&self, channel: &str) -> bool {
        let looked_up = matches!(&self.granted, Some((granted, _)) if granted == channel);
        self.guarded(channel) && !looked_up
    }

    fn connected_ref(&self) -> State<'_> {
        match &self.state {
            super::State::Connected(c) => State(c),
            _ => unreachable!("only called once connected"),
        }
    }

    pub(super) fn add_subscription(
        &mut self,
        channel: &str,
        subscriber: SubscriberOptions,
        terms: Terms,
    ) {
        let presence = terms.presence;
        let node = self.node.clone();
        let c = self.connected();
        let mut info = c.info.clone();
        info.chan_info = terms.chan_info;
        node.track_subscriber(channel);
        node.hub.subscribe(
            channel,
            c.handle.clone(),
            subscriber,
            presence.then(|| info.clone()),
        );
        if !c.is_personal(channel) {
            node.observe_subscription(channel, &info, true);
        }
        let subscription = Subscription {
            info,
            expire_at: terms.expire_at,
            refresh_at: terms.refresh_at,
            presence,
            announces: terms.announces,
        };
        c.subscriptions.insert(channel.to_string(), subscription);
    }

    /// Enters the client's presence and tells the channel's join/leave
    /// listeners that it joined; follows every `add_subscription`, after the
    /// reply, so the joiner sees its reply before its own join.
    pub(super) fn announce_join(&mut self, channel: &str) {
        let node = self.node.clone();
        let Some(subscription) = self.connected().subscriptions.get(channel) else {
            return;
        };
        let join = subscription
            .announces
            .then(|| push::join(channel, &subscription.info));
        let presence = subscription.presence.then_some(&subscription.info);
        node.subscriber_joined(channel, presence, join);
    }

    /// A subscription made by the server API on a live connection.
    pub(super) fn server_subscribe(&mut self, channel: &str, data: Option<&RawValue>) {
        if self.connected().subscriptions.contains_key(channel) {
            return;
        }
        let Ok(options) = self.node.namespaces.options(channel) else {
            return;
        };
        let subscriber = SubscriberOptions {
            join_leave: options.join_leave,
            positioned_at: None,
        };
        let terms = Terms::of(options);
        self.add_subscription(channel, subscriber, terms);
        let result = SubscribeResult {
            data,
            ..Default::default()
        };
        let _ = self.outbox.push(push::subscribe(channel, &result));
        self.announce_join(channel);
    }

    pub(super) fn unsubscribe(&mut self, id: u32, channel: &str) -> Result<(), Disconnect> {
        self.remove_subscription(channel, None);
        self.reply(id, "unsubscribe", &EmptyResult {});
        Ok(())
    }

    pub(super) fn sub_refresh(
        &mut self,
        id: u32,
        request: SubRefreshRequest,
    ) -> Result<(), Disconnect> {
        let channel = request.channel.as_str();
        let verified = self.node.verifier.verify_subscribe(&request.token);
        let Some(claims) = self.claims(id, verified, "sub_refresh")? else {
            return Ok(());
        };
        let grace = self.node.limits.expired_close_delay;
        let c = self.connected();
        if claims.channel != channel || claims.sub != c.info.user {
            self.error(id, ErrorCode::PERMISSION_DENIED);
            return Ok(());
        }
        let Some(subscription) = c.subscriptions.get_mut(channel) else {
            self.error(id, ErrorCode::PERMISSION_DENIED);
            return Ok(());
        };
        let expiry = expiry(claims.exp, grace);
        subscription.expire_at = expiry.deadline;
        let result = SubRefreshResult {
            expires: expiry.expires,
            ttl: expiry.ttl,
        };
        self.reply(id, "sub_refresh", &result);
        Ok(())
    }
}

struct State<'a>(&'a super::Connected);

/// The namespace rules for a subscribe that carries no token.
fn may_subscribe_without_token(options: &ChannelOptions, channel: &str, user: &str) -> bool {
    if options.allow_user_limited_channels
        && let Some(mut users) = channel::allowed_users(channel)
    {
        return !user.is_empty() && users.any(|allowed| allowed == user);
    }
    options.allow_subscribe_for_client
        && (!user.is_empty() || options.allow_subscribe_for_anonymous)
}
