//! Transports: how bytes reach a [`herald_core::Session`].
//!
//! - `websocket.rs`: `/connection/websocket`, one reader loop and one writer task
//!   per connection.

pub mod websocket;
