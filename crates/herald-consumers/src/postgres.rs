//! The PostgreSQL outbox table consumer: one task per partition, plus one
//! that `LISTEN`s and wakes the partitions a `NOTIFY` names.
//!
//! A partition's pass is one transaction:
//!
//! 1. `pg_try_advisory_xact_lock(hashtext(<table>), <partition>)`: one node
//!    at a time works a partition, so its rows are applied in `id` order
//!    even with several nodes on the table. A node that does not get the
//!    lock skips the pass; the lock goes with the transaction, so a node
//!    that dies hands the partition over as soon as its connection closes.
//! 2. Select up to `partition_select_limit` rows in `id` order,
//!    `FOR UPDATE SKIP LOCKED`.
//! 3. Apply them in order. A rejected row counts as done.
//! 4. Delete the rows done and commit.
//!
//! When a row answers retry, the rows before it are still deleted and
//! committed (they were applied; rolling them back would apply them twice)
//! and the pass stops, so the row keeps its place at the head of the
//! partition and is tried again after the backoff. A database error rolls
//! the whole transaction back: its rows are applied again on the next pass,
//! which is the "at least once".
//!
//! Each partition keeps a connection of its own rather than sharing a pool,
//! so an unreachable server is reported with its real cause ("connection
//! refused", "password authentication failed") rather than a pool timeout.

use crate::PostgresSettings;
use crate::worker::{Backoff, Outcome, Stop, Worker};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// A wrong host should show as unreachable promptly, not hang the pass.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A server that stopped answering mid-query (a cut cable sends no reset)
/// must not stall a partition forever.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

const LOCK_PARTITION: &str = "SELECT pg_try_advisory_xact_lock(hashtext($1), $2)";

#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("PostgreSQL: {0}")]
    Database(#[from] sqlx::Error),
    #[error("PostgreSQL did not answer within {}s", .0.as_secs())]
    Timeout(Duration),
    #[error("row {id}: {reason}")]
    Retry { id: i64, reason: String },
}

/// How a pass ended.
enum Pass {
    /// As many rows as the limit: there are probably more, go on at once.
    Full,
    /// Fewer rows than the limit: wait for the next poll or notification.
    Drained,
    /// Another node works this partition.
    Busy,
}

/// The statements, with the table name (checked by `is_plain_identifier`)
/// spliced in once.
struct Statements {
    select: String,
    delete: String,
}

pub(crate) fn spawn(
    worker: Arc<Worker>,
    settings: PostgresSettings,
    stop: Stop,
) -> Vec<JoinHandle<()>> {
    let options = settings
        .connect_options()
        .expect("crate::spawn checks the settings first");
    let table = settings.outbox_table_name.as_str();
    let statements = Arc::new(Statements {
        select: format!(
            "SELECT id, method, payload::text FROM {table} WHERE partition = $1 \
             ORDER BY id ASC LIMIT $2 FOR UPDATE SKIP LOCKED"
        ),
        delete: format!("DELETE FROM {table} WHERE id = ANY($1)"),
    });
    let table: Arc<str> = table.into();
    let wakes: Arc<[Arc<Notify>]> = (0..settings.num_partitions)
        .map(|_| Arc::new(Notify::new()))
        .collect();
    let mut tasks: Vec<JoinHandle<()>> = wakes
        .iter()
        .enumerate()
        .map(|(number, wake)| {
            let partition = Partition {
                worker: worker.clone(),
                number: number as i32,
                table: table.clone(),
                limit: i64::from(settings.partition_select_limit),
                poll: settings.partition_poll_interval,
                options: options.clone(),
                statements: statements.clone(),
                wake: wake.clone(),
                stop: stop.clone(),
            };
            tokio::spawn(partition.run())
        })
        .collect();
    if let Some(channel) = settings.partition_notification_channel {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_lazy_with(options);
        tasks.push(tokio::spawn(listen(worker, pool, channel, wakes, stop)));
    }
    tasks
}

struct Partition {
    worker: Arc<Worker>,
    number: i32,
    table: Arc<str>,
    limit: i64,
    poll: Duration,
    options: PgConnectOptions,
    statements: Arc<Statements>,
    wake: Arc<Notify>,
    stop: Stop,
}

impl Partition {
    async fn run(mut self) {
        let mut connection = None;
        let mut backoff = Backoff::new();
        while !self.stop.is_stopped() {
            match self.pass(&mut connection).await {
                Ok(Pass::Full) => backoff.reset(),
                Ok(Pass::Drained | Pass::Busy) => {
                    backoff.reset();
                    self.idle().await;
                }
                Err(Failure::Retry { id, reason }) => {
                    let wait = backoff.next_wait();
                    self.worker.retrying(&id.to_string(), &reason, wait);
                    self.stop.sleep(wait).await;
                }
                Err(failure) => {
                    // The connection's state is unknown: start afresh.
                    connection = None;
                    self.worker.unreachable(failure.to_string());
                    self.stop.sleep(backoff.next_wait()).await;
                }
            }
        }
        if let Some(connection) = connection {
            let _ = connection.close().await;
        }
    }

    /// Until the poll interval is over, a notification names this
    /// partition, or the consumer stops.
    async fn idle(&mut self) {
        tokio::select! {
            _ = tokio::time::sleep(self.poll) => {}
            _ = self.wake.notified() => {}
            _ = self.stop.stopped() => {}
        }
    }

    async fn pass(&self, slot: &mut Option<PgConnection>) -> Result<Pass, Failure> {
        let connection = match slot {
            Some(connection) => connection,
            None => slot
                .insert(within(CONNECT_TIMEOUT, PgConnection::connect_with(&self.options)).await?),
        };
        let mut transaction = within(QUERY_TIMEOUT, connection.begin()).await?;
        let locked: bool = within(
            QUERY_TIMEOUT,
            sqlx::query_scalar(LOCK_PARTITION)
                .bind(&*self.table)
                .bind(self.number)
                .fetch_one(&mut *transaction),
        )
        .await?;
        if !locked {
            within(QUERY_TIMEOUT, transaction.rollback()).await?;
            self.worker.reachable();
            return Ok(Pass::Busy);
        }
        let rows: Vec<(i64, String, String)> = within(
            QUERY_TIMEOUT,
            sqlx::query_as(AssertSqlSafe(self.statements.select.as_str()))
                .bind(self.number)
                .bind(self.limit)
                .fetch_all(&mut *transaction),
        )
        .await?;
        self.worker.reachable();
        let mut done = Vec::with_capacity(rows.len());
        let mut retry = None;
        for (id, method, payload) in &rows {
            match self.worker.apply(&id.to_string(), method, payload).await {
                Outcome::Done => done.push(*id),
                Outcome::Retry(reason) => {
                    retry = Some(Failure::Retry { id: *id, reason });
                    break;
                }
            }
        }
        if !done.is_empty() {
            within(
                QUERY_TIMEOUT,
                sqlx::query(AssertSqlSafe(self.statements.delete.as_str()))
                    .bind(&done)
                    .execute(&mut *transaction),
            )
            .await?;
        }
        within(QUERY_TIMEOUT, transaction.commit()).await?;
        match retry {
            Some(retry) => Err(retry),
            None if rows.len() as i64 == self.limit => Ok(Pass::Full),
            None => Ok(Pass::Drained),
        }
    }
}

async fn within<T>(
    limit: Duration,
    operation: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(limit, operation).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(Failure::Timeout(limit)),
    }
}

/// `LISTEN`s on `channel` and wakes the partition a notification names (its
/// payload is the partition number, as Centrifugo's trigger sends it), or
/// every partition when the payload names none. Polling goes on regardless,
/// so a lost notification only delays a row until the next poll.
async fn listen(
    worker: Arc<Worker>,
    pool: PgPool,
    channel: String,
    wakes: Arc<[Arc<Notify>]>,
    mut stop: Stop,
) {
    let what = format!("LISTEN {channel} failed; rows wait for the poll until it is back");
    let mut backoff = Backoff::new();
    let mut failures_in_a_row = 0;
    while !stop.is_stopped() {
        let (error, listened) = tokio::select! {
            failed = listen_until_error(&pool, &channel, &wakes) => failed,
            _ = stop.stopped() => break,
        };
        if listened {
            backoff.reset();
            failures_in_a_row = 0;
        }
        failures_in_a_row += 1;
        let wait = backoff.next_wait();
        worker.side_failure(&what, &error.to_string(), wait, failures_in_a_row == 1);
        stop.sleep(wait).await;
    }
}

/// Listens until the connection fails; the error, and whether `LISTEN` had
/// taken effect before it.
async fn listen_until_error(
    pool: &PgPool,
    channel: &str,
    wakes: &[Arc<Notify>],
) -> (sqlx::Error, bool) {
    let mut listener = match PgListener::connect_with(pool).await {
        Ok(listener) => listener,
        Err(error) => return (error, false),
    };
    if let Err(error) = listener.listen(channel).await {
        return (error, false);
    }
    // A row notified before LISTEN took effect would otherwise wait for the poll.
    wake_all(wakes);
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) => match notification.payload().trim().parse::<usize>() {
                Ok(partition) if partition < wakes.len() => wakes[partition].notify_one(),
                _ => wake_all(wakes),
            },
            // Reconnected: notifications sent in between are lost.
            Ok(None) => wake_all(wakes),
            Err(error) => return (error, true),
        }
    }
}

fn wake_all(wakes: &[Arc<Notify>]) {
    for wake in wakes {
        wake.notify_one();
    }
}
