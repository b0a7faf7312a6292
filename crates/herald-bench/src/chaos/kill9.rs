//! `kill9-sqlite` and `kill9-postgres`: one node with durable history under
//! steady publishing, `kill -9` mid-stream, restarted at once on the same
//! data; every acknowledged publication must be in history after the restart
//! and reach the subscribers, who recover across the restart.

use super::fleet::{self, Fleet, RECOVERY_WAIT};
use super::node::{self, Broker, Spec, Storage};
use super::{Ctx, Row, failed, secs};
use crate::Result;
use herald_postgres::testing::TestDatabase;
use std::time::Instant;

pub const ABOUT_SQLITE: &str = "**`kill9-sqlite`**: one node on the embedded default \
(SQLite history, `[storage] path`, `sync = \"normal\"`), two subscribers, publishes to one \
channel with history. Mid-stream the node's process group gets SIGKILL (no shutdown, no \
flush) and is started again at once on the same port and data directory. *Lost* = \
acknowledged publications not in history after the restart at the offset and epoch they were \
answered with, or not received by a subscriber (live or through recovery). History must hold \
offsets 1..=top with no gap or duplicate, and each subscriber's recovery after the restart \
must answer `recovered: true`. *Recovery time* = from the kill until the restarted node \
answers /health 200 and both subscribers have recovered.";

pub const ABOUT_POSTGRES: &str = "**`kill9-postgres`**: the same on `[storage] url = \
\"postgres://...\"`, a fresh database on the local PostgreSQL per run; *lost* and the pass \
criteria are the same.";

const SUBSCRIBERS: usize = 2;

pub async fn sqlite(ctx: &Ctx<'_>) -> Result<Row> {
    let storage = Storage::Sqlite(ctx.dir.join("data"));
    kill9(ctx, "kill9-sqlite", storage).await
}

pub async fn postgres(ctx: &Ctx<'_>) -> Result<Row> {
    // `create` panics under CI=true when PostgreSQL is unreachable.
    let db = match tokio::spawn(TestDatabase::create()).await {
        Ok(Some(db)) => db,
        _ => return Err("PostgreSQL not reachable (set HERALD_TEST_POSTGRES_URL)".into()),
    };
    let outcome = kill9(ctx, "kill9-postgres", Storage::Postgres(db.url().into())).await;
    drop(db);
    outcome
}

async fn kill9(ctx: &Ctx<'_>, scenario: &'static str, storage: Storage) -> Result<Row> {
    let spec = Spec {
        name: scenario.into(),
        storage,
        broker: Broker::Memory,
        client: "",
        fd_limit: None,
    };
    let mut fleet = Fleet::start(ctx, vec![spec]).await?;
    let outcome = drive(ctx, scenario, &mut fleet).await;
    fleet.stop(failed(&outcome)).await;
    outcome
}

async fn drive(ctx: &Ctx<'_>, scenario: &'static str, fleet: &mut Fleet) -> Result<Row> {
    let mut row = Row {
        scenario,
        ..Row::default()
    };
    fleet.load(ctx, SUBSCRIBERS).await?;
    let acked_before = fleet.acked();
    eprintln!(
        "  {acked_before} acknowledged; kill -9 pid {:?}",
        fleet.nodes[0].pid()
    );
    let killed = Instant::now();
    fleet.nodes[0].kill9().await;
    fleet.nodes[0].restart().await?;
    let healthy = fleet.health_after(killed, RECOVERY_WAIT, node::is_ok).await;
    let recoveries = fleet.recoveries_after(killed, killed + RECOVERY_WAIT).await;
    row.health = match healthy[0] {
        Some(at) => format!(
            "n/a (no dependency lost; the node itself: {} polls unanswered, 200 again {} after the kill)",
            fleet.watches[0].failures_between(killed, at),
            secs(at - killed)
        ),
        None => "**not 200 again**".into(),
    };
    row.require(healthy[0].is_some(), || {
        format!("/health not 200 within {RECOVERY_WAIT:?} of the restart")
    });
    for (i, recovery) in recoveries.iter().enumerate() {
        match recovery {
            Some((_, true)) => {}
            Some((_, false)) => row.failures.push(format!(
                "subscriber {i}: recovered: false after the restart"
            )),
            None => row.failures.push(format!(
                "subscriber {i}: did not resubscribe within {RECOVERY_WAIT:?}"
            )),
        }
    }
    let subscribers = fleet.subscribers();
    let finished = fleet.finish(ctx, &mut row, acked_before, killed).await?;
    row.recovery = fleet::recovery_cell(killed, &healthy, &finished, subscribers);
    Ok(row)
}
