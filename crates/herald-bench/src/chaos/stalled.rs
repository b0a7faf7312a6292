//! `stalled-reader`: fan-out to many subscribers at half of the node's
//! measured maximum, first with every subscriber reading, then with one more
//! that subscribes and stops reading its socket. The others' p99 must stay
//! within 2× of the first phase, and the stalled one must be disconnected
//! with the "slow" code 3008.

use super::node::{Broker, Node, Spec, Storage, token};
use super::{Ctx, Row, secs};
use crate::loadgen::{self, Pool, Stats};
use crate::peers::{Endpoint, Kind, herald};
use crate::{Result, publishers, report, scenarios};
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

pub const ABOUT: &str = "**`stalled-reader`**: one node (no history), N subscribers on one \
channel through the load generator (1,000 at full scale), 100-byte publications carrying their \
send time. First 3 s of publishing flat out measure the node's maximum deliveries/s; then \
publishing runs at half of it for the scale's phase length twice: once with every subscriber \
reading, once with one more subscriber that connects with a 4 KiB receive buffer, subscribes, and \
stops reading; after that phase, publishing goes on at the same rate until the node gives up \
on the stalled one. The node runs with `[client] queue_max_messages = 256` so the stalled queue \
overflows sooner (the default 4,096 only takes longer), and `ping_interval = \"5m\"`: a client \
that reads nothing cannot answer pings either, and at the default 25 s the no-pong disconnect \
comes first at full scale (seen in a run: the kernel buffers on both ends hold about 4 MB, \
over a minute of this channel). The stalled \
connection keeps still until `/metrics` counts a `herald_disconnects_total{code=\"3008\"}`, \
then reads again and must find a Close frame with code 3008 (the server's writer is blocked on \
the full socket until then, and gives it 2 s to drain). *Lost* = deliveries the reading \
subscribers never got (publications answered × readers, minus deliveries, over all phases). Pass: lost 0, p99 of \
the readers with the stall ≤ 2× without it, the stalled one closed with 3008.";

/// Publications in flight per subscriber while measuring the maximum.
const WINDOW: u64 = 4;
const PUBLISHERS: usize = 8;
const ROOM: &str = "stall";
/// Longest the stalled subscriber may stay connected.
const STALL_WAIT: Duration = Duration::from_secs(180);

pub async fn run(ctx: &Ctx<'_>) -> Result<Row> {
    let spec = Spec {
        name: "stalled-reader".into(),
        storage: Storage::None,
        broker: Broker::Memory,
        // Pings far apart: a client that reads nothing cannot answer them, and
        // the no-pong disconnect would otherwise win at low rates.
        client: "queue_max_messages = 256\nping_interval = \"5m\"",
        fd_limit: None,
    };
    let node = Node::start(ctx.binary, &ctx.dir, spec).await?;
    let outcome = drive(ctx, &node).await;
    node.finish(outcome).await
}

fn endpoint(node: &Node) -> Arc<Endpoint> {
    Arc::new(Endpoint {
        kind: Kind::Herald,
        addr: ([127, 0, 0, 1], node.port).into(),
        api_key: super::node::API_KEY.into(),
    })
}

async fn drive(ctx: &Ctx<'_>, node: &Node) -> Result<Row> {
    let s = ctx.scale;
    let readers = if s.name == "full" { 1_000 } else { 200 };
    let phase = s.before;
    let mut row = Row {
        scenario: "stalled-reader",
        in_history: "n/a (no history)".into(),
        health: "n/a (no dependency lost)".into(),
        ..Row::default()
    };
    let endpoints = [endpoint(node)];
    let stats = Stats::new();
    let mut pool = Pool::default();
    let rooms: Arc<dyn Fn(usize) -> Vec<String> + Send + Sync> = Arc::new(|_| vec![ROOM.into()]);
    let tokens = scenarios::tokens(Kind::Herald, readers)?;
    loadgen::connect(
        &mut pool, &endpoints, 0, readers, 50, rooms, tokens, &stats, "readers",
    )
    .await;
    if pool.failed > 0 {
        return Err(format!(
            "{} readers failed to connect: {:?}",
            pool.failed, pool.first_error
        )
        .into());
    }

    let d0 = stats.delivered();
    let started = Instant::now();
    let flat_out =
        publishers::saturating(&endpoints, ROOM, readers as u64, WINDOW, &stats, PUBLISHERS);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let max = (stats.delivered() - d0) as f64 / started.elapsed().as_secs_f64();
    flat_out.stop().await;
    settle(&stats).await;
    let rate = 0.5 * max / readers as f64;
    eprintln!("  maximum {max:.0} deliveries/s; half: {rate:.1} publications/s to {readers}");

    let (calm_p99, calm) = at_rate(&endpoints, &stats, rate, phase, readers).await;
    let mut stalled = Stalled::connect(node).await?;
    let (stalled_p99, with_stall) = at_rate(&endpoints, &stats, rate, phase, readers).await;
    // Publishing goes on at the same rate until the server gives up on the
    // stalled one: its socket buffers and queue fill only as messages come.
    let rooms = Arc::new(vec![ROOM.to_string()]);
    let d_filler = stats.delivered();
    let filler = publishers::fixed_rate(&endpoints, rooms, rate, STALL_WAIT, PUBLISHERS, None);
    let code = stalled.close_code(node, STALL_WAIT).await;
    let answered = filler.published.clone();
    filler.stop().await;
    let filled = answered.load(std::sync::atomic::Ordering::Relaxed);
    let expected = d_filler + filled * readers as u64;
    scenarios::drain(
        &stats,
        Some(expected),
        Duration::from_secs(2),
        Duration::from_secs(30),
    )
    .await;
    let filler = (filled, stats.delivered() - d_filler);
    eprintln!("  {filled} more publications until the stalled one was closed");

    row.acknowledged = calm.0 + with_stall.0 + filler.0;
    let expected = row.acknowledged * readers as u64;
    let delivered = calm.1 + with_stall.1 + filler.1;
    row.lost = expected.saturating_sub(delivered);
    row.duplicates = delivered.saturating_sub(expected);
    row.delivered = format!(
        "{} of {} to {readers} readers; p99 {} without the stall, {} with it",
        report::grouped(delivered),
        report::grouped(expected),
        ms(calm_p99),
        ms(stalled_p99)
    );
    row.recovery = match code {
        Ok((code, after)) => format!(
            "stalled one closed with {code}, {} after it stopped reading",
            secs(after)
        ),
        Err(ref e) => format!("**{e}**"),
    };
    let lost = row.lost;
    row.require(lost == 0, || format!("{lost} deliveries lost"));
    row.require(stalled_p99 <= 2 * calm_p99.max(1), || {
        format!(
            "readers' p99 {} with the stall, more than 2× {} without",
            ms(stalled_p99),
            ms(calm_p99)
        )
    });
    match code {
        Ok((3008, _)) => {}
        Ok((other, _)) => row.failures.push(format!(
            "the stalled subscriber was closed with {other}, not 3008"
        )),
        Err(e) => row.failures.push(format!("the stalled subscriber: {e}")),
    }
    let closed = stats.closed.load(std::sync::atomic::Ordering::Relaxed);
    row.require(closed == 0, || {
        format!("{closed} reading subscribers were disconnected")
    });
    drop(pool);
    Ok(row)
}

fn ms(us: u64) -> String {
    format!("{:.1} ms", us as f64 / 1000.0)
}

/// Waits until deliveries stop arriving (the previous phase's are in).
async fn settle(stats: &Stats) {
    scenarios::drain(
        stats,
        None,
        Duration::from_millis(500),
        Duration::from_secs(30),
    )
    .await;
}

/// Publishes `rate`/s for `span`, waits for the deliveries; returns the p99
/// in µs and (publications answered, deliveries counted).
async fn at_rate(
    endpoints: &[Arc<Endpoint>],
    stats: &Arc<Stats>,
    rate: f64,
    span: Duration,
    readers: usize,
) -> (u64, (u64, u64)) {
    stats.reset_latency();
    let d0 = stats.delivered();
    let rooms = Arc::new(vec![ROOM.to_string()]);
    let driver = publishers::fixed_rate(endpoints, rooms, rate, span, PUBLISHERS, None);
    while !driver.finished() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let published = driver.published();
    driver.stop().await;
    let expected = d0 + published * readers as u64;
    scenarios::drain(
        stats,
        Some(expected),
        Duration::from_secs(2),
        Duration::from_secs(30),
    )
    .await;
    (
        stats.latency().value_at_quantile(0.99),
        (published, stats.delivered() - d0),
    )
}

/// The subscriber that stops reading.
struct Stalled {
    ws: loadgen::Ws,
    since: Instant,
}

impl Stalled {
    async fn connect(node: &Node) -> Result<Stalled> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        // A small receive buffer, so the server's side fills soon.
        socket.set_recv_buffer_size(4096)?;
        let tcp = socket.connect(([127, 0, 0, 1], node.port).into()).await?;
        let (mut ws, _) = tokio_tungstenite::client_async(node.ws_url(), tcp).await?;
        herald::handshake(&mut ws, &[ROOM.to_string()], Some(&token("stalled")?)).await?;
        Ok(Stalled {
            ws,
            since: Instant::now(),
        })
    }

    /// Once `/metrics` counts a 3008, reads again until the Close frame;
    /// returns its code and when the server gave up, after the stall began.
    async fn close_code(&mut self, node: &Node, within: Duration) -> Result<(u16, Duration)> {
        let http = super::traffic::http_client();
        let deadline = Instant::now() + within;
        let disconnected = loop {
            if slow_disconnects(&http, &node.base()).await? > 0 {
                break Instant::now();
            }
            if Instant::now() > deadline {
                return Err(format!("no 3008 disconnect counted within {within:?}").into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let read = async {
            while let Some(message) = self.ws.next().await {
                match message {
                    Ok(Message::Close(frame)) => return Ok(frame.map_or(0, |f| u16::from(f.code))),
                    Ok(_) => continue,
                    Err(e) => return Err(format!("ended without a Close frame: {e}")),
                }
            }
            Err("ended without a Close frame".to_string())
        };
        let code = tokio::time::timeout(within, read)
            .await
            .map_err(|_| "no Close frame after the disconnect")??;
        Ok((code, disconnected - self.since))
    }
}

/// `herald_disconnects_total{code="3008"}` from `/metrics`.
async fn slow_disconnects(http: &reqwest::Client, base: &str) -> Result<u64> {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .filter(|line| {
            line.starts_with("herald_disconnects_total") && line.contains("code=\"3008\"")
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64)
}
