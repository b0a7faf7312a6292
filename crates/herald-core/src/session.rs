//! One client's state machine: frames and control messages in, replies out.
//!
//! The transport owns the socket and calls in; the session never awaits. Replies
//! produced by one frame are packed into one outgoing frame. Any `Err(Disconnect)`
//! tells the transport to close the connection with that code.
//!
//! With a broker, a subscribe may need a channel the node does not receive yet.
//! The session then stops before the command has any effect and returns
//! `Step::Await`; the transport awaits `Node::ready` for those channels and calls
//! `resume`, which runs the command again, so a connection's commands keep
//! their order.
//!
//! - `connect.rs`: `connect` and `refresh`, token checks and server-side subscriptions.
//! - `subscribe.rs`: `subscribe`, `unsubscribe`, `sub_refresh` and the permission rules.
//! - `channel_ops.rs`: `publish`, `presence`, `presence_stats`, `history`.
//! - `rpc.rs`: `rpc`, answered by the node's extension (the inbox, chat) or
//!   the backend.
//! - `proxied.rs`: asking the application's backend (`crate::proxy`), and
//!   the refreshes it answers in the background.

mod channel_ops;
mod connect;
mod proxied;
mod recovery;
mod rpc;
mod subscribe;

pub use proxied::{ClientRequest, Proxied};

use crate::control::ControlQueue;
use crate::extension::{AccessCheck, Prepared, Wait};
use crate::hub::{ClientHandle, Control, Emulation};
use crate::metrics;
use crate::node::Node;
use crate::outbox::Outbox;
use crate::proxy::ProxyCall;
use crate::token::TokenError;
use bytes::Bytes;
use herald_protocol::command::{Command, Method};
use herald_protocol::frame::FrameDecoder;
use herald_protocol::push::{self, ClientInfo};
use herald_protocol::reply::{EmptyResult, Reply};
use herald_protocol::{Disconnect, ErrorCode, Unsubscribe, pack_frame};
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Session {
    /// The client id, chosen up front: a connect proxy is told it.
    id: Arc<str>,
    node: Arc<Node>,
    outbox: Arc<Outbox>,
    control: Arc<ControlQueue>,
    /// Set for HTTP-streaming and SSE connections (see `with_emulation`).
    emulation: Option<Emulation>,
    /// How the client came, as proxies are told.
    request: ClientRequest,
    state: State,
    replies: Vec<Bytes>,
    /// Channels the current command needs ready before it can run.
    awaiting: Vec<String>,
    /// A subscribe permission the current command needs looked up.
    awaiting_access: Option<AccessCheck>,
    /// The permission looked up while the command waited, for its channel.
    granted: Option<(String, Result<bool, ErrorCode>)>,
    /// A question for the backend the current command needs answered.
    awaiting_proxy: Option<ProxyCall>,
    /// The backend's answer, kept until the command that asked has run.
    proxied: Option<Proxied>,
    /// This connection's command buckets.
    limiter: crate::ratelimit::ConnectionLimiter,
    /// The frame index of a command running again after it waited: its
    /// token was taken the first time.
    rerun: Option<usize>,
    /// Where to pick up once they are.
    resume: Option<Resume>,
    /// Set while a command runs again after its channels could not be made
    /// ready: it answers with a temporary error instead of waiting again.
    ready_failed: bool,
}

/// What the transport must do before the session can go on.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub enum Step {
    Done,
    /// Await `Node::prepare` with this, then call `Session::resume`.
    Await(Wait),
}

enum Resume {
    /// The command at this index of the frame, and those after it.
    Frame(usize),
    Control(Control),
}

/// Whether a command's channels are ready.
enum Readiness {
    Ready,
    /// The command must stop without effect; the transport will wait.
    Waiting,
    /// Waiting failed (the broker is unreachable): answer a temporary error.
    Unavailable,
}

enum State {
    Connecting { stale_at: Instant },
    Connected(Box<Connected>),
    Closed,
}

struct Connected {
    handle: Arc<ClientHandle>,
    info: ClientInfo,
    /// When the connection closes unless a `refresh` arrives first.
    expire_close_at: Option<Instant>,
    /// When to ask the refresh proxy whether a proxied connection lives on.
    refresh_at: Option<Instant>,
    subscriptions: HashMap<String, Subscription>,
    /// The user's personal channels (Herald's own, joined at connect).
    personal: Vec<String>,
    next_ping: Instant,
    pong_deadline: Option<Instant>,
}

impl Connected {
    fn is_personal(&self, channel: &str) -> bool {
        self.personal.iter().any(|p| p == channel)
    }
}

struct Subscription {
    /// The client's info as seen on this channel (with the token's `info`).
    info: ClientInfo,
    expire_at: Option<Instant>,
    /// When to ask the sub_refresh proxy whether it lives on.
    refresh_at: Option<Instant>,
    /// Whether the client is in the channel's presence, and its joins and
    /// leaves are sent: the namespace's options, or a subscribe proxy's.
    presence: bool,
    announces: bool,
}

/// What a token's `exp` means for the reply (`expires`, `ttl`) and for the
/// timer: the instant the connection or subscription must be refreshed by.
struct Expiry {
    expires: bool,
    ttl: u32,
    deadline: Option<Instant>,
}

fn expiry(exp: Option<u64>, grace: Duration) -> Expiry {
    match exp {
        Some(exp) => {
            let ttl = exp.saturating_sub(crate::unix_now());
            Expiry {
                expires: true,
                ttl: ttl as u32,
                deadline: Some(Instant::now() + Duration::from_secs(ttl) + grace),
            }
        }
        None => Expiry {
            expires: false,
            ttl: 0,
            deadline: None,
        },
    }
}

impl Session {
    pub fn new(node: Arc<Node>, outbox: Arc<Outbox>, control: Arc<ControlQueue>) -> Self {
        let stale_at = Instant::now() + node.limits.stale_timeout;
        Self {
            id: uuid::Uuid::new_v4().to_string().into(),
            node,
            outbox,
            control,
            emulation: None,
            request: ClientRequest::default(),
            state: State::Connecting { stale_at },
            replies: Vec::new(),
            awaiting: Vec::new(),
            awaiting_access: None,
            granted: None,
            awaiting_proxy: None,
            proxied: None,
            limiter: Default::default(),
            rerun: None,
            resume: None,
            ready_failed: false,
        }
    }

    /// A session whose commands arrive through `/emulation` requests: its
    /// connect reply carries the session secret and the node id to send them with.
    pub fn with_emulation(mut self, emulation: Emulation) -> Self {
        self.emulation = Some(emulation);
        self
    }

    /// The client id once connected.
    pub fn client_id(&self) -> Option<&str> {
        match &self.state {
            State::Connected(c) => Some(&c.handle.id),
            _ => None,
        }
    }

    /// Handles every command of one frame, then queues their replies as one frame.
    pub fn handle_frame(&mut self, frame: &[u8]) -> Result<Step, Disconnect> {
        ::metrics::counter!(metrics::MESSAGES_RECEIVED).increment(1);
        ::metrics::counter!(metrics::BYTES_RECEIVED).increment(frame.len() as u64);
        self.run_frame(frame, 0)
    }

    /// Goes on after `Step::Await` with what `Node::prepare` answered; `frame`
    /// must be the frame last handed to `handle_frame`. `prepared` is dropped
    /// only once the command has run again, so its channels stay ready.
    pub fn resume(&mut self, frame: &[u8], mut prepared: Prepared) -> Result<Step, Disconnect> {
        self.ready_failed = !prepared.ready;
        self.granted = prepared.access.take();
        // An answer outlives a wait for channels that follows it, so the
        // backend is asked once per command.
        if let Some(proxied) = prepared.proxied.take() {
            self.proxied = Some(proxied);
        }
        let step = match self.resume.take() {
            Some(Resume::Frame(index)) => {
                self.rerun = Some(index);
                let step = self.run_frame(frame, index);
                self.rerun = None;
                step
            }
            Some(Resume::Control(control)) => self.handle_control(control),
            None => Ok(Step::Done),
        };
        self.ready_failed = false;
        self.granted = None;
        if !matches!(step, Ok(Step::Await(_))) {
            self.proxied = None;
        }
        step
    }

    fn run_frame(&mut self, frame: &[u8], start: usize) -> Result<Step, Disconnect> {
        let result = self.dispatch_frame(frame, start);
        self.flush_replies();
        result
    }

    fn dispatch_frame(&mut self, frame: &[u8], start: usize) -> Result<Step, Disconnect> {
        let decoder = FrameDecoder::new(frame).map_err(|e| self.bad_request(&e.to_string()))?;
        for (index, command) in decoder.enumerate().skip(start) {
            let command = command.map_err(|e| self.bad_request(&e.to_string()))?;
            let method = command.method();
            if self.rerun != Some(index) && self.rate_limited(command.id, method)? {
                continue;
            }
            let dispatched = self.dispatch(command);
            let waiting = self.await_step(Resume::Frame(index));
            // A command that waits runs again on resume: count it then.
            if waiting.is_none() {
                ::metrics::counter!(metrics::COMMANDS, "method" => method.as_str()).increment(1);
            }
            dispatched?;
            if let Some(step) = waiting {
                return Ok(step);
            }
            // Only the command that waited gets the failed wait's answer.
            self.ready_failed = false;
            self.granted = None;
            self.proxied = None;
        }
        Ok(Step::Done)
    }

    /// Whether the command was refused by a rate limit (and answered 111);
    /// a connection refused too often is closed with 3013.
    fn rate_limited(&mut self, id: u32, method: Method) -> Result<bool, Disconnect> {
        let State::Connected(c) = &self.state else {
            return Ok(false);
        };
        let node = &self.node;
        let refusal = self.limiter.check(
            &node.limits.commands,
            &node.user_limiters,
            method,
            &c.info.user,
        );
        match refusal {
            None => Ok(false),
            Some(crate::ratelimit::Refusal::Refused) => {
                tracing::debug!(client = %self.id, method = method.as_str(), "command over its rate limit");
                self.error(id, ErrorCode::TOO_MANY_REQUESTS);
                Ok(true)
            }
            Some(crate::ratelimit::Refusal::Disconnect) => {
                tracing::info!(client = %self.id, method = method.as_str(), "rate limits refused this connection too often; disconnecting with 3013");
                Err(Disconnect::TOO_MANY_REQUESTS)
            }
        }
    }

    /// `Step::Await` when the command just run asked for channels.
    fn await_step(&mut self, resume: Resume) -> Option<Step> {
        if self.awaiting.is_empty()
            && self.awaiting_access.is_none()
            && self.awaiting_proxy.is_none()
        {
            return None;
        }
        self.resume = Some(resume);
        Some(Step::Await(Wait {
            channels: std::mem::take(&mut self.awaiting),
            access: self.awaiting_access.take(),
            proxy: self.awaiting_proxy.take(),
        }))
    }

    /// Whether `channels` are ready for a command about to change state.
    fn readiness<'c>(&mut self, channels: impl IntoIterator<Item = &'c str>) -> Readiness {
        let missing: Vec<String> = channels
            .into_iter()
            .filter(|channel| !self.node.channel_ready(channel))
            .map(str::to_string)
            .collect();
        if missing.is_empty() {
            Readiness::Ready
        } else if self.ready_failed {
            Readiness::Unavailable
        } else {
            self.awaiting = missing;
            Readiness::Waiting
        }
    }

    /// True when a client command may go on with `channels`; otherwise it
    /// stops: to wait, or answered with a temporary error when waiting failed.
    fn proceed_when_ready<'c>(
        &mut self,
        id: u32,
        channels: impl IntoIterator<Item = &'c str>,
    ) -> bool {
        match self.readiness(channels) {
            Readiness::Ready => true,
            Readiness::Waiting => false,
            Readiness::Unavailable => {
                self.error(id, ErrorCode::INTERNAL);
                false
            }
        }
    }

    /// Queues `reply` with this frame's replies when it is ready at once (in
    /// memory it always is), or from a task when it resolves: replies are
    /// matched by id, so their order does not matter.
    fn answer(&mut self, reply: impl std::future::Future<Output = Bytes> + Send + 'static) {
        let mut reply = Box::pin(reply);
        match futures_util::FutureExt::now_or_never(&mut reply) {
            Some(reply) => self.replies.push(reply),
            None => {
                let outbox = self.outbox.clone();
                tokio::spawn(async move {
                    let _ = outbox.push(reply.await);
                });
            }
        }
    }

    fn bad_request(&self, why: &str) -> Disconnect {
        tracing::info!(client = ?self.client_id(), %why, "bad request: disconnecting");
        Disconnect::BAD_REQUEST
    }

    fn dispatch(&mut self, command: Command<'_>) -> Result<(), Disconnect> {
        let method = command.method();
        let id = command.id;
        if id == 0 && !matches!(method, Method::Pong | Method::Send) {
            return Err(self.bad_request("command without id"));
        }
        let connected = matches!(self.state, State::Connected(_));
        match (method, connected) {
            (Method::Connect, false) => {
                return self.connect(id, command.connect.unwrap_or_default());
            }
            (Method::Connect, true) => return Err(self.bad_request("connect sent twice")),
            (_, false) => return Err(self.bad_request("first command must be connect")),
            _ => {}
        }
        match method {
            Method::Pong => {
                if let State::Connected(c) = &mut self.state {
                    c.pong_deadline = None;
                }
                Ok(())
            }
            Method::Subscribe => self.subscribe(id, command.subscribe.unwrap_or_default()),
            Method::Unsubscribe => {
                self.unsubscribe(id, &command.unsubscribe.unwrap_or_default().channel)
            }
            Method::Publish => self.publish(id, command.publish.unwrap_or_default()),
            Method::Presence => self.presence(id, &command.presence.unwrap_or_default().channel),
            Method::PresenceStats => {
                self.presence_stats(id, &command.presence_stats.unwrap_or_default().channel)
            }
            Method::History => self.history(id, command.history.unwrap_or_default()),
            Method::Ping => {
                self.reply(id, "ping", &EmptyResult {});
                Ok(())
            }
            // Without a backend to proxy to, asynchronous messages have no receiver.
            Method::Send => Ok(()),
            Method::Rpc => self.rpc(id, command.rpc.unwrap_or_default()),
            Method::Refresh => self.refresh(id, command.refresh.unwrap_or_default()),
            Method::SubRefresh => self.sub_refresh(id, command.sub_refresh.unwrap_or_default()),
            Method::Unknown => {
                tracing::debug!(client = ?self.client_id(), "unknown command");
                self.error(id, ErrorCode::METHOD_NOT_FOUND);
                Ok(())
            }
            Method::Connect => unreachable!("handled above"),
        }
    }

    /// The claims of a token a command carried; `None` after answering 109 (the
    /// SDK fetches a fresh token), or a disconnect with 3500 for a bad token.
    fn claims<T>(
        &mut self,
        id: u32,
        verified: Result<T, TokenError>,
        command: &'static str,
    ) -> Result<Option<T>, Disconnect> {
        match verified {
            Ok(claims) => Ok(Some(claims)),
            Err(error) => {
                let code = token_error(error, command)?;
                self.error(id, code);
                Ok(None)
            }
        }
    }

    fn reply<T: serde::Serialize>(&mut self, id: u32, method: &'static str, result: &T) {
        self.replies.push(Reply::result(id, method, result));
    }

    fn error(&mut self, id: u32, error: ErrorCode) {
        metrics::count_error(error.code);
        self.replies.push(Reply::error(id, &error));
    }

    /// An error with its own message, such as a backend's refusal.
    fn error_detailed(&mut self, id: u32, error: &herald_protocol::DetailedError) {
        metrics::count_error(error.code);
        self.replies.push(Reply::error(id, error));
    }

    /// Queues the pending replies as one frame, so they precede any push that
    /// follows (a join after a subscribe reply, say).
    fn flush_replies(&mut self) {
        if self.replies.is_empty() {
            return;
        }
        let frame = pack_frame(&self.replies);
        self.replies.clear();
        let _ = self.outbox.push(frame);
    }

    fn connected(&mut self) -> &mut Connected {
        match &mut self.state {
            State::Connected(c) => c,
            _ => unreachable!("dispatch only reaches here once connected"),
        }
    }

    /// The next instant `on_timer` has work to do.
    pub fn next_deadline(&self) -> Instant {
        match &self.state {
            State::Connecting { stale_at } => *stale_at,
            State::Connected(c) => {
                let subscription_expiry = c
                    .subscriptions
                    .values()
                    .flat_map(|s| [s.expire_at, s.refresh_at])
                    .flatten();
                [
                    Some(c.next_ping),
                    c.pong_deadline,
                    c.expire_close_at,
                    c.refresh_at,
                ]
                .into_iter()
                .flatten()
                .chain(subscription_expiry)
                .min()
                .unwrap_or(c.next_ping)
            }
            State::Closed => Instant::now() + Duration::from_secs(3600),
        }
    }

    /// Runs the timers that are due: stale connect, ping and pong, expiry.
    pub fn on_timer(&mut self, now: Instant) -> Result<(), Disconnect> {
        let interval = self.node.limits.ping_interval;
        let pong_timeout = self.node.limits.pong_timeout;
        let expired_channels = match &mut self.state {
            State::Connecting { stale_at } if now >= *stale_at => return Err(Disconnect::STALE),
            State::Connected(c) => {
                if c.pong_deadline.is_some_and(|d| now >= d) {
                    return Err(Disconnect::NO_PONG);
                }
                if c.expire_close_at.is_some_and(|d| now >= d) {
                    return Err(Disconnect::EXPIRED);
                }
                if now >= c.next_ping {
                    let _ = c.handle.outbox.push(Reply::PING);
                    c.next_ping = now + interval;
                    c.pong_deadline.get_or_insert(now + pong_timeout);
                    for channel in c.subscriptions.keys() {
                        self.node.hub.touch_presence(channel, &c.handle.id);
                    }
                }
                self.refresh_due(now);
                let State::Connected(c) = &mut self.state else {
                    return Ok(());
                };
                c.subscriptions
                    .iter()
                    .filter(|(_, s)| s.expire_at.is_some_and(|d| now >= d))
                    .map(|(channel, _)| channel.clone())
                    .collect()
            }
            _ => Vec::new(),
        };
        for channel in expired_channels {
            self.remove_subscription(&channel, Some(Unsubscribe::EXPIRED));
        }
        Ok(())
    }

    /// Applies work handed over by the server API or the broker.
    pub fn handle_control(&mut self, control: Control) -> Result<Step, Disconnect> {
        if !matches!(self.state, State::Connected(_)) {
            return Ok(Step::Done);
        }
        match control {
            Control::Subscribe { channel, data } => match self.readiness([channel.as_str()]) {
                Readiness::Ready => self.server_subscribe(&channel, data.as_deref()),
                Readiness::Waiting => {
                    let control = Control::Subscribe { channel, data };
                    return Ok(self
                        .await_step(Resume::Control(control))
                        .unwrap_or(Step::Done));
                }
                Readiness::Unavailable => {
                    tracing::warn!(%channel, "server-side subscribe dropped: the broker is unavailable");
                }
            },
            Control::Unsubscribe { channel } => {
                self.remove_subscription(&channel, Some(Unsubscribe::SERVER));
            }
            Control::Resubscribe { channel } => {
                // The SDK cannot resubscribe to a personal channel (it is
                // server-side), and it has no history to recover: it stays, and
                // the next change brings the client current.
                if !self.connected().is_personal(&channel) {
                    self.remove_subscription(&channel, Some(Unsubscribe::INSUFFICIENT_STATE));
                }
            }
            Control::Proxied {
                kind,
                subject,
                answer,
            } => self.refreshed(kind, &subject, answer)?,
            Control::Refresh { expired, expire_at } => {
                if expired {
                    return Err(Disconnect::EXPIRED);
                }
                let grace = self.node.limits.expired_close_delay;
                let c = self.connected();
                let expiry = expiry(expire_at, grace);
                c.expire_close_at = expiry.deadline;
                let _ = c
                    .handle
                    .outbox
                    .push(push::refresh(expiry.expires, expiry.ttl));
            }
        }
        Ok(Step::Done)
    }

    /// Removes a subscription, tells others it left, and, when `notify` is given,
    /// tells the client with an `unsubscribe` push.
    fn remove_subscription(&mut self, channel: &str, notify: Option<Unsubscribe>) -> bool {
        let State::Connected(c) = &mut self.state else {
            return false;
        };
        let Some(subscription) = c.subscriptions.remove(channel) else {
            return false;
        };
        let presence = self.node.hub.unsubscribe(channel, &c.handle.id);
        if !c.is_personal(channel) {
            self.node
                .observe_subscription(channel, &subscription.info, false);
        }
        if let Some(unsubscribe) = notify {
            let _ = c
                .handle
                .outbox
                .push(push::unsubscribe(channel, &unsubscribe));
        }
        let leave = subscription
            .announces
            .then(|| push::leave(channel, &subscription.info));
        self.node
            .subscriber_left(channel, &c.handle.id, presence.is_some(), leave);
        true
    }

    /// Leaves every channel and unregisters the connection. Idempotent.
    pub fn close(&mut self) {
        let channels: Vec<String> = match &self.state {
            State::Connected(c) => c.subscriptions.keys().cloned().collect(),
            _ => Vec::new(),
        };
        for channel in channels {
            self.remove_subscription(&channel, None);
        }
        if let State::Connected(c) = std::mem::replace(&mut self.state, State::Closed) {
            self.node.disconnected(&c.handle);
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.close();
    }
}

/// How a failed token check is answered: 109 for an expired token, so the SDK
/// refreshes it, and a 3500 disconnect for anything else.
fn token_error(error: TokenError, command: &'static str) -> Result<ErrorCode, Disconnect> {
    match error {
        TokenError::Expired => Ok(ErrorCode::TOKEN_EXPIRED),
        TokenError::Invalid(why) => {
            tracing::info!(%why, command, "invalid token");
            Err(Disconnect::INVALID_TOKEN)
        }
    }
}

/// Raw JSON `null`, for payloads a client omitted.
fn json_null() -> &'static RawValue {
    static NULL: std::sync::OnceLock<Box<RawValue>> = std::sync::OnceLock::new();
    NULL.get_or_init(|| RawValue::from_string("null".into()).expect("null is JSON"))
}

#[cfg(test)]
mod tests;
