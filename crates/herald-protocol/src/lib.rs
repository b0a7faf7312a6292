//! Sans-IO implementation of the Centrifugo client protocol v2, JSON encoding.
//!
//! Bytes in, typed commands out; typed replies in, bytes out. Nothing here knows
//! about sockets, tasks or time, so every rule is testable with plain byte slices.
//!
//! # Layout
//! - [`codes`]: the protocol's error, unsubscribe and disconnect code tables.
//! - [`command`]: what a client sends (`connect`, `subscribe`, ...), decoded from JSON.
//! - [`frame`]: splitting a newline-delimited WebSocket frame into commands, and
//!   packing several encoded replies back into one frame.
//! - [`reply`]: replies and results, encoded to JSON.
//! - [`push`]: server-initiated pushes (`pub`, `join`, `leave`, ...), encoded once
//!   so their bytes can be shared by every subscriber.
#![forbid(unsafe_code)]

pub mod codes;
pub mod command;
pub mod frame;
pub mod push;
pub mod reply;

pub use codes::{DetailedError, Disconnect, ErrorCode, Unsubscribe};
pub use command::{Command, Method};
pub use frame::{FrameDecoder, pack_frame};
pub use push::ClientInfo;
pub use reply::Reply;

#[cfg(test)]
mod tests;
