//! `herald-bench`: benchmark programs that start herald servers in-process and
//! drive them over real sockets, the way clients and backends do.
//!
//! Where things live:
//! - `main.rs`: the command line; one subcommand per benchmark.
//! - `history.rs`: `history`, durable (SQLite) against in-memory history: API
//!   publish throughput and latency, and the time to recover 1,000 missed
//!   publications over a raw WebSocket.
//! - `load.rs`: what benchmarks share: servers on `127.0.0.1:0`, concurrent API
//!   publishers with latency histograms, the offset check, a minimal WebSocket
//!   client, tokens.
//! - `suite.rs`, `suite_doc.rs`: `suite`, herald side by side with other stacks,
//!   each its own process (`peers/`), through the scenarios in `scenarios/`,
//!   driven by the WebSocket load generator (`loadgen.rs`) and HTTP publishers
//!   (`publishers.rs`); `procs.rs` starts processes and reads `/proc`; `svg.rs`
//!   draws the charts.
//! - `nodes.rs`: `nodes`, fan-out on 1, 2 and 3 herald nodes sharing a Redis
//!   broker against the in-memory engine, every delivery checked by `order.rs`.
//! - `apps.rs`: `apps`, the inbox (`notify` through the API, delivered live)
//!   and chat (`chat.send`, end to end) on SQLite and on PostgreSQL, against
//!   plain publishes with no storage, every delivery checked; `apps/wire.rs`
//!   is its client side, `apps/doc.rs` its tables and section.
//! - `transports.rs`: `transports`, fan-out to subscribers over WebSocket, HTTP
//!   streaming and SSE on one in-process server, latency and connects/s against
//!   the WebSocket row, every delivery checked; `transports/client.rs` is its
//!   subscriber side, `transports/doc.rs` its table and section.
//! - `soak.rs`: `soak` (run by `scripts/soak.sh MINUTES`), the release herald
//!   under paced mixed traffic (fan-out, recovery, presence, inbox, chat,
//!   reconnect storms) for many minutes, sampled every minute for leaks;
//!   `soak/` holds each kind of traffic, the trend rule and the `## Soak`
//!   section of `docs/reliability.md`.
//! - `chaos.rs`: `chaos`, failures injected under steady load (kill -9, Redis
//!   and PostgreSQL restarts), one row each in `docs/reliability.md` counting
//!   what was acknowledged, delivered, kept in history and lost; `chaos/` holds
//!   its node control, traffic, recovering subscriber and one file per scenario.
//! - `backend.rs`: `backend`, the release herald asking a minimal in-process
//!   backend about each connect (connect proxy) against JWT connects, and
//!   PostgreSQL outbox rows from commit to delivery against plain API
//!   publishes, every delivery checked; `backend/` holds the connect storm,
//!   the outbox workload and the section.
//! - `report.rs`: machine facts, the date, and replacing a section of
//!   `docs/benchmarks.md`.
//!
//! Run `cargo run --release -p herald-bench -- history`; progress goes to
//! stderr, the result table to stdout and into `docs/benchmarks.md`.

mod apps;
mod backend;
mod chaos;
mod history;
mod load;
mod loadgen;
mod nodes;
mod order;
mod peers;
mod procs;
mod publishers;
mod report;
mod scenarios;
mod soak;
mod suite;
mod suite_doc;
mod svg;
mod transports;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Errors end the run with a message; a benchmark that cannot trust its
/// numbers must not print a table.
pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[derive(Parser)]
#[command(name = "herald-bench", about = "Benchmarks for herald, run in-process")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Durable (SQLite) history against in-memory history, side by side.
    History(history::Args),
    /// Herald side by side with the Rust baseline, sockudo, Socket.IO 4 and Django Channels,
    /// each as its own process, driven by a WebSocket load generator.
    Suite(suite::Args),
    /// Fan-out on 1, 2 and 3 herald nodes sharing a Redis broker, against the
    /// in-memory engine on 1 node, every delivery checked for loss and order.
    Nodes(nodes::Args),
    /// Inbox notifications and chat messages per second, stored in SQLite and in
    /// PostgreSQL, against plain publishes with no storage; every delivery checked.
    Apps(apps::Args),
    /// Fan-out over WebSocket, HTTP streaming and SSE on one server: deliveries,
    /// latency and connects/s of each fallback against WebSocket; every delivery checked.
    Transports(transports::Args),
    /// Connect-proxy connects/s against JWT connects, and outbox rows from commit
    /// to delivery against API publishes, on the release herald; every delivery checked.
    Backend(backend::Args),
    /// Mixed, paced traffic against the release herald for many minutes, sampled
    /// every minute; fails on any error or on memory, fd or thread growth.
    Soak(soak::Args),
    /// Failures injected under load (kill -9, Redis and PostgreSQL restarts);
    /// every acknowledged message must survive. Writes docs/reliability.md.
    Chaos(chaos::Args),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::History(args) => history::run(args).await,
        Command::Suite(args) => suite::run(args).await,
        Command::Nodes(args) => nodes::run(args).await,
        Command::Apps(args) => apps::run(args).await,
        Command::Transports(args) => transports::run(args).await,
        Command::Backend(args) => backend::run(args).await,
        Command::Chaos(args) => chaos::run(args).await,
        Command::Soak(args) => soak::run(args).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("herald-bench: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
