//! Herald's rules, independent of any transport.
//!
//! A command's path runs decode → authorize → apply → fan out → encode, and each
//! step has one home here; the server crate only moves bytes and calls in.
//!
//! # Layout
//! - [`channel`]: channel names, namespaces and their options (who may do what).
//! - [`token`]: connection and subscription JWTs.
//! - [`outbox`]: the bounded per-connection queue that fan-out writes into.
//! - [`control`]: server-API work queued for one connection's task.
//! - [`hub`]: the sharded subscription registry, presence and fan-out.
//! - [`history`]: per-channel streams: offsets, epochs, retention, recovery.
//! - [`engine`]: publishing: offsets, idempotency, fan-out under the stream lock.
//! - [`broker`]: the trait a scale-out broker implements, and commands between nodes.
//! - [`mirror`]: applying what the broker delivers to the local streams, in order.
//! - [`extension`]: the hooks the inbox and chat plug into a node through.
//! - [`proxy`]: asking the application's backend (Centrifugo's proxy format).
//! - [`ratelimit`]: command rate limits per connection and per user.
//! - [`durable`]: the group-commit writer and the trait durable stores implement.
//! - [`session`]: one client's state machine: commands in, replies out.
//! - [`status`]: online status per user, across tabs and nodes.
//! - [`node`]: the shared state of one server and the server-API operations.
//! - [`metrics`]: metric names, so transports and core report the same series.
#![forbid(unsafe_code)]

pub mod broker;
pub mod channel;
pub mod control;
pub mod durable;
pub mod engine;
pub mod extension;
pub mod history;
pub mod hub;
pub mod metrics;
pub mod mirror;
pub mod node;
pub mod outbox;
pub mod proxy;
pub mod ratelimit;
pub mod session;
pub mod status;
pub mod token;

pub use channel::{ChannelOptions, Namespaces};
pub use hub::{ClientHandle, Control, Emulated, Emulation, Hub, SubscriberOptions};
pub use node::{ClientLimits, Node, NodeConfig};
pub use outbox::{Outbox, OutboxLimits};
pub use session::Session;
pub use token::{TokenError, TokenVerifier, VerifierKeys};

/// Seconds since the Unix epoch, the unit of JWT `exp`.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
