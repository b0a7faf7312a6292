//! `reconnect-100`: 100 subscribers on one node lose their connections at
//! once (TCP reset, no WebSocket close) mid-stream, reconnect and recover;
//! each must answer `recovered: true` and end with every publication once,
//! in order.

use super::fleet::{self, Fleet, RECOVERY_WAIT};
use super::node::{Broker, Spec, Storage};
use super::{Ctx, Row, failed};
use crate::Result;
use std::time::Instant;

pub const ABOUT: &str = "**`reconnect-100`**: one node on the embedded default (SQLite \
history), 100 subscribers on one channel, publishes through the API. Mid-stream every \
subscriber's TCP connection is reset at once (`SO_LINGER` 0, then closed: an RST, no WebSocket \
close), as when a phone loses its network; each reconnects with backoff and subscribes with \
`recover: true` from the last offset it saw while publishing goes on. *Lost* = acknowledged \
publications a subscriber never received (live or in its recovery). Pass: lost 0, every \
subscriber's recovery answered `recovered: true`, no publication twice or out of order, and \
/health 200 throughout. *Recovery time* = from the reset until the last subscriber's recovering \
subscribe was answered.";

const SUBSCRIBERS: usize = 100;

pub async fn run(ctx: &Ctx<'_>) -> Result<Row> {
    let spec = Spec {
        name: "reconnect-100".into(),
        storage: Storage::Sqlite(ctx.dir.join("data")),
        broker: Broker::Memory,
        client: "",
        fd_limit: None,
    };
    let mut fleet = Fleet::start(ctx, vec![spec]).await?;
    let outcome = drive(ctx, &mut fleet).await;
    fleet.stop(failed(&outcome)).await;
    outcome
}

async fn drive(ctx: &Ctx<'_>, fleet: &mut Fleet) -> Result<Row> {
    let mut row = Row {
        scenario: "reconnect-100",
        ..Row::default()
    };
    fleet.load(ctx, SUBSCRIBERS).await?;
    let acked = fleet.acked();
    eprintln!("  {acked} acknowledged; resetting {SUBSCRIBERS} connections");
    let dropped = Instant::now();
    fleet.drop_connections();
    let recoveries = fleet
        .recoveries_after(dropped, dropped + RECOVERY_WAIT)
        .await;
    let unhealthy = fleet.watches[0].failures_between(dropped, Instant::now());
    row.health = format!("n/a (no dependency lost; {unhealthy} polls not 200 meanwhile)");
    row.require(unhealthy == 0, || {
        format!("/health not 200 {unhealthy} times while clients reconnected")
    });
    let recovered = recoveries
        .iter()
        .filter(|r| matches!(r, Some((_, true))))
        .count();
    row.require(recovered == SUBSCRIBERS, || {
        format!("{recovered} of {SUBSCRIBERS} subscribers recovered with recovered: true")
    });
    let last = fleet::latest(
        &recoveries
            .iter()
            .map(|r| r.map(|(at, _)| at))
            .collect::<Vec<_>>(),
    );
    let subscribers = fleet.subscribers();
    let finished = fleet.finish(ctx, &mut row, acked, dropped).await?;
    row.recovery = fleet::recovery_cell(dropped, &[last], &finished, subscribers);
    Ok(row)
}
