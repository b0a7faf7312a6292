//! The `herald` command line.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "herald",
    version,
    about = "Herald: a self-hosted real-time messaging server",
    long_about = "Herald: a self-hosted real-time messaging server.\n\n\
Backends publish with one HTTP call (POST /api/publish); browsers and apps receive the events \
live over WebSocket, speaking the Centrifugo client protocol v2 so the published centrifuge SDKs \
work unchanged.\n\nRun `herald serve` with no config for dev defaults."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (dev defaults when no --config is given).
    Serve {
        /// TOML config file; HERALD_<SECTION>_<KEY> environment variables override it.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Address to listen on, overriding server.listen (e.g. 0.0.0.0:8000).
        /// Dev defaults serve loopback addresses only, unless --dev-allow-remote.
        #[arg(long)]
        listen: Option<String>,
        /// Serve dev defaults on a non-loopback address anyway. Anyone who can
        /// reach it may then mint tokens for any user and publish through the
        /// demo: for a throwaway machine only.
        #[arg(long, conflicts_with = "config")]
        dev_allow_remote: bool,
    },
    /// Write a commented config file with fresh random secrets.
    Genconfig {
        /// Where to write it.
        #[arg(long, short, default_value = "herald.toml")]
        output: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Check a config file and print every problem, each naming its key.
    Checkconfig {
        /// The config file to check.
        file: PathBuf,
    },
    /// Print a connection token (or a subscription token with --channel).
    Gentoken {
        /// The user id (the `sub` claim).
        #[arg(long)]
        user: String,
        /// Lifetime, e.g. 1h or 30m; no expiry when omitted.
        #[arg(long, default_value = "1h")]
        ttl: String,
        /// JSON attached as `info` (shown in presence and publications).
        #[arg(long)]
        info: Option<String>,
        /// Make a subscription token for this channel.
        #[arg(long)]
        channel: Option<String>,
        /// Read auth.hmac_secret from this config (or set HERALD_AUTH_HMAC_SECRET).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Print the version.
    Version,
}
