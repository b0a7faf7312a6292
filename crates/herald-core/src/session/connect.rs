//! `connect` and `refresh`.

use super::recovery::Subscribed;
use super::subscribe::Terms;
use super::{Connected, Session, State};
use crate::hub::{ClientHandle, SubscriberOptions};
use crate::proxy::{self, ProxyKind, Verdict};
use crate::token::ConnectClaims;
use herald_protocol::command::{ConnectRequest, RefreshRequest};
use herald_protocol::push::ClientInfo;
use herald_protocol::reply::{ConnectResult, RefreshResult, Reply};
use herald_protocol::{Disconnect, ErrorCode};
use serde_json::value::RawValue;
use std::sync::Arc;
use std::time::Instant;

/// Who a connection is: from its token, or from the connect proxy.
struct Credentials {
    claims: ConnectClaims,
    /// The connect proxy's `data`, for the connect reply.
    data: Option<Box<RawValue>>,
    by_proxy: bool,
}

impl Session {
    pub(super) fn connect(
        &mut self,
        id: u32,
        mut request: ConnectRequest<'_>,
    ) -> Result<(), Disconnect> {
        let limits = self.node.limits.clone();
        let Some(credentials) = self.credentials(id, &request)? else {
            return Ok(());
        };
        let Credentials {
            claims,
            data: connect_data,
            by_proxy,
        } = credentials;
        let user = claims.sub;
        if limits.user_connection_limit > 0
            && self.node.hub.user_connection_count(&user) >= limits.user_connection_limit
        {
            tracing::info!(%user, limit = limits.user_connection_limit, "user connection limit reached");
            return Err(Disconnect::CONNECTION_LIMIT);
        }
        let mut server_channels: Vec<String> = claims.channels;
        server_channels.extend(claims.subs.into_keys());
        let personal = self.node.personal_channels(&user);
        server_channels.extend(personal.iter().cloned());
        server_channels.sort_unstable();
        server_channels.dedup();
        let known = server_channels
            .iter()
            .map(String::as_str)
            .filter(|channel| self.node.namespaces.options(channel).is_ok());
        if !self.proceed_when_ready(id, known.collect::<Vec<_>>()) {
            return Ok(());
        }
        let client_id = self.id.clone();
        let handle = Arc::new(ClientHandle {
            id: client_id.clone(),
            user: user.as_str().into(),
            outbox: self.outbox.clone(),
            control: self.control.clone(),
            emulation: self.emulation.clone(),
        });
        let (expiry, refresh_at) = self.deadlines(claims.exp, ProxyKind::Refresh, by_proxy);
        self.node.connected(handle.clone());
        let now = Instant::now();
        self.state = State::Connected(Box::new(Connected {
            handle,
            info: ClientInfo {
                user,
                client: client_id.to_string(),
                conn_info: claims.info,
                chan_info: None,
            },
            expire_close_at: expiry.deadline,
            refresh_at,
            subscriptions: Default::default(),
            personal,
            next_ping: now + limits.ping_interval,
            pong_deadline: None,
        }));

        // Server-side subscriptions recover like client ones, from the positions
        // the SDK sends in `subs`; the connect reply carries what they missed.
        self.outbox.hold();
        let no_expiry = super::expiry(None, limits.expired_close_delay);
        let mut owed = Vec::with_capacity(server_channels.len());
        for channel in server_channels {
            let options = match self.node.namespaces.options(&channel) {
                Ok(options) => options.clone(),
                Err(error) => {
                    tracing::warn!(%channel, %error, "token lists a channel in an unknown namespace; skipped");
                    continue;
                }
            };
            let mut position = request.subs.remove(&channel).unwrap_or_default();
            position.channel = channel.clone();
            position.flag = 0;
            let subscribed = if options.retention().enabled() {
                self.subscribe_at_position(
                    &position,
                    &options,
                    options.join_leave,
                    Terms::of(&options),
                )
                .unwrap_or_default()
            } else {
                let subscriber = SubscriberOptions {
                    join_leave: options.join_leave,
                    positioned_at: None,
                };
                self.add_subscription(&channel, subscriber, Terms::of(&options));
                Subscribed::default()
            };
            owed.push((channel, subscribed));
        }
        let subs = owed
            .iter()
            .map(|(channel, subscribed)| (channel.clone(), subscribed.result(&no_expiry)))
            .collect();
        let node = self.node.clone();
        let result = ConnectResult {
            client: &client_id,
            version: node.version,
            expires: expiry.expires,
            ttl: expiry.ttl,
            data: connect_data.as_deref(),
            subs,
            ping: limits.ping_interval.as_secs() as u32,
            pong: true,
            // Over emulation the SDK sends `node` back with every command, to be
            // routed to this node: the id, unlike the name, is unique.
            node: match &self.emulation {
                Some(_) => &node.id,
                None => &node.name,
            },
            session: self
                .emulation
                .as_ref()
                .map_or("", |emulation| &emulation.session),
        };
        self.outbox
            .release(Some(Reply::result(id, "connect", &result)));
        // Joins of server-side subscriptions follow the connect reply.
        let channels: Vec<String> = self.connected().subscriptions.keys().cloned().collect();
        for channel in channels {
            self.announce_join(&channel);
        }
        Ok(())
    }

    pub(super) fn refresh(&mut self, id: u32, request: RefreshRequest) -> Result<(), Disconnect> {
        let verified = self.node.verifier.verify_connect(&request.token);
        let Some(claims) = self.claims(id, verified, "refresh")? else {
            return Ok(());
        };
        let grace = self.node.limits.expired_close_delay;
        let version = self.node.version;
        let c = self.connected();
        if claims.sub != c.info.user {
            tracing::info!(user = %c.info.user, token_user = %claims.sub, "refresh token is for another user");
            return Err(Disconnect::INVALID_TOKEN);
        }
        let expiry = super::expiry(claims.exp, grace);
        c.expire_close_at = expiry.deadline;
        let client = c.handle.id.clone();
        let result = RefreshResult {
            client: &client,
            version,
            expires: expiry.expires,
            ttl: expiry.ttl,
        };
        self.reply(id, "refresh", &result);
        Ok(())
    }

    /// Who connects: the token's claims, an anonymous user where allowed, or
    /// the connect proxy's answer for a connect without a token. `None` once
    /// the command was answered with an error, or must wait for the backend.
    fn credentials(
        &mut self,
        id: u32,
        request: &ConnectRequest<'_>,
    ) -> Result<Option<Credentials>, Disconnect> {
        let from_token = |claims| Credentials {
            claims,
            data: None,
            by_proxy: false,
        };
        if !request.token.is_empty() {
            let verified = self.node.verifier.verify_connect(&request.token);
            return Ok(self.claims(id, verified, "connect")?.map(from_token));
        }
        if !self.proxied(ProxyKind::Connect) {
            if !self.node.limits.allow_anonymous {
                tracing::info!("connect without token refused: anonymous connections are off");
                self.error(id, ErrorCode::UNAUTHORIZED);
                return Ok(None);
            }
            return Ok(Some(from_token(ConnectClaims::default())));
        }
        let non_empty = |text: &str| (!text.is_empty()).then(|| text.to_string());
        let fields = || {
            serde_json::json!({
                "name": non_empty(&request.name),
                "version": non_empty(&request.version),
                "data": request.data,
            })
        };
        let Some(answer) = self.consult(ProxyKind::Connect, "", fields) else {
            return Ok(None);
        };
        match proxy::judge::<proxy::ConnectResult>(ProxyKind::Connect, answer) {
            Ok(Verdict::Allowed(result)) => {
                let mut channels = result.channels;
                channels.extend(result.subs.into_keys());
                let claims = ConnectClaims {
                    sub: result.user,
                    exp: (result.expire_at > 0).then_some(result.expire_at),
                    info: result.info,
                    channels,
                    ..Default::default()
                };
                Ok(Some(Credentials {
                    claims,
                    data: result.data,
                    by_proxy: true,
                }))
            }
            Ok(Verdict::Refused(error)) => {
                tracing::info!(code = error.code, message = %error.message, "the connect proxy refused a connection");
                self.error_detailed(id, &error);
                Ok(None)
            }
            Ok(Verdict::Disconnect(disconnect)) => Err(disconnect),
            Err(_) => {
                self.error(id, ErrorCode::INTERNAL);
                Ok(None)
            }
        }
    }
}
