//! The herald under soak: the release binary as its own process, with durable
//! SQLite storage in a temp dir, the inbox and chat on (their defaults), and
//! one namespace per kind of traffic; and what `/proc` and `/metrics` say
//! about it once a minute.

use crate::Result;
use crate::load::{API_KEY, SECRET};
use crate::procs::{self, Process};
use crate::report::gauge;
use herald_core::metrics::{CONNECTIONS, SUBSCRIPTIONS};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Publications kept per `hist:` channel: far more than a client misses while
/// away (a few seconds at a few per second), so every recovery must succeed.
pub const HISTORY_SIZE: u64 = 1_000;

fn config(data: &Path) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:0"
allowed_origins = []
shutdown_grace = "2s"

[auth]
hmac_secret = "{SECRET}"

[api]
key = "{API_KEY}"

# The load generator opens thousands of connections from a few loopback
# addresses: the per-IP connect limit would throttle the measurement.
[client.rate_limit.connect]
enabled = false

[storage]
durable = true
path = "{data}"

# Fan-out: plain publications, no history.
[[channel.namespaces]]
name = "bench"
allow_subscribe_for_client = true

# Recovering subscribers: every subscription recovers from durable history.
[[channel.namespaces]]
name = "hist"
history_size = {HISTORY_SIZE}
history_ttl = "10m"
force_recovery = true
allow_subscribe_for_client = true

# Presence churn: joins and leaves pushed to every subscriber.
[[channel.namespaces]]
name = "room"
presence = true
join_leave = true
force_push_join_leave = true
allow_subscribe_for_client = true
allow_presence_for_subscriber = true
"#,
        data = data.display()
    )
}

/// Starts `binary` with the soak's config, written into `dir` with its data.
pub async fn start(binary: &Path, dir: &Path) -> Result<(Process, SocketAddr)> {
    if !binary.exists() {
        return Err(format!(
            "{} is missing: build it with `cargo build --release -p herald-server --bin herald` \
             (scripts/soak.sh does)",
            binary.display()
        )
        .into());
    }
    let file = dir.join("herald.toml");
    std::fs::write(&file, config(&dir.join("data")))?;
    let mut cmd = Command::new(binary);
    cmd.arg("serve").arg("--config").arg(&file).current_dir(dir);
    let log = dir.join("herald.log");
    let (process, addr) =
        procs::spawn_listening("herald", cmd, &log, Duration::from_secs(20)).await?;
    let addr = crate::peers::parse_addr("herald", &addr)?;
    Ok((process, addr))
}

/// One look at the server process.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    pub rss_kib: u64,
    pub fds: u64,
    pub threads: u64,
    pub cpu_ticks: u64,
    /// Herald's own gauges from `/metrics`, when it answered.
    pub connections: Option<u64>,
    pub subscriptions: Option<u64>,
}

pub async fn sample(process: &Process, http: &reqwest::Client, addr: SocketAddr) -> Sample {
    let (connections, subscriptions) = match gauges(http, addr).await {
        Ok(gauges) => gauges,
        Err(e) => {
            eprintln!("  /metrics: {e}");
            (None, None)
        }
    };
    Sample {
        rss_kib: process.rss_kib(),
        fds: open_fds(process.pid),
        threads: threads(process.pid),
        cpu_ticks: process.cpu_ticks(),
        connections,
        subscriptions,
    }
}

/// Entries of `/proc/<pid>/fd`: every socket, file and epoll/event fd it holds.
fn open_fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |dir| dir.count() as u64)
}

fn threads(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// `herald_connections` and `herald_subscriptions` from `/metrics`.
async fn gauges(http: &reqwest::Client, addr: SocketAddr) -> Result<(Option<u64>, Option<u64>)> {
    let text = tokio::time::timeout(Duration::from_secs(10), async {
        http.get(format!("http://{addr}/metrics"))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await
    })
    .await
    .map_err(|_| "no answer within 10 s")??;
    Ok((gauge(&text, CONNECTIONS), gauge(&text, SUBSCRIPTIONS)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_are_read_from_the_exposition() {
        let text = "# TYPE herald_connections gauge\nherald_connections 412\n\
                    herald_connections_total 9\nherald_subscriptions 1203.0\n";
        assert_eq!(gauge(text, "herald_connections"), Some(412));
        assert_eq!(gauge(text, "herald_subscriptions"), Some(1203));
        assert_eq!(gauge(text, "herald_missing"), None);
    }
}
