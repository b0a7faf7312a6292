//! The `herald` server: transports, the server API, config, CLI and metrics around
//! the rules in `herald-core`.
//!
//! # Layout
//! - [`cli`]: the command line; `main.rs` runs it.
//! - [`config`]: the TOML file, environment overrides and `checkconfig` validation.
//! - [`server`]: builds the node, routes HTTP, serves and drains on shutdown.
//! - [`storage`]: picks and opens the durable history store (SQLite or PostgreSQL),
//!   and the database of the inbox, chat and webhook outbox.
//! - [`features`]: starts the inbox, chat and webhooks and plugs them into the node.
//! - [`consumers`]: runs outbox rows (PostgreSQL, Redis Streams) as server API calls.
//! - [`health`]: what `/health` answers, and the PostgreSQL probe behind it.
//! - [`limits`]: connects per client IP and server API calls, refused with 429.
//! - [`transport`]: the WebSocket transport (`/connection/websocket`).
//! - [`api`]: the server HTTP API (`POST /api/<method>`).
//! - [`web`]: embedded assets, the demo at `/` and the admin page at `/admin`.
//! - [`app`]: state shared by all handlers.
//! - [`metrics`]: the Prometheus recorder behind `/metrics`.
//! - [`shutdown`]: the shutdown signal every task listens to.
//! - [`dev`], [`genconfig`], [`tokens`]: dev defaults, config generation, token minting.
#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod cli;
pub mod config;
pub mod consumers;
pub mod dev;
pub mod features;
pub mod genconfig;
pub mod health;
pub mod limits;
pub mod metrics;
pub mod server;
pub mod shutdown;
pub mod storage;
pub mod tokens;
pub mod transport;
pub mod web;

pub use config::Config;
pub use server::{RunningServer, start};
