//! The Redis Streams consumer: entries carry a `method` and a `payload`
//! field (a JSON string), read through a consumer group.
//!
//! The choices, and why:
//! - A missing group is created at `0` with `MKSTREAM`, not at `$`: an
//!   outbox's entries written before Herald first started are owed to it
//!   too. A group that exists keeps its position, so a restart neither skips
//!   nor replays anything.
//! - An entry is acknowledged (`XACK`) once applied or rejected, and not
//!   deleted: other groups may read the same stream. Keep the stream short
//!   from the writing side (`XADD ... MAXLEN ~ 100000` or `MINID`).
//! - Each process reads under a name of its own (its node name and id). An
//!   entry delivered to a process that died stays pending under that name;
//!   every process sweeps with `XAUTOCLAIM` every half `visibility_timeout`
//!   and takes over entries idle for longer than `visibility_timeout`. Names
//!   that have had nothing pending for an hour are removed from the group,
//!   since every restart leaves one behind.
//! - An entry that answers retry is retried in place, in order, with
//!   backoff. Before each attempt the consumer re-claims the entry, but only
//!   while it is still pending under its own name, so the sweep of another
//!   process never sees it idle and applies it alongside.
//! - On shutdown a consumer finishes the entry in hand; anything still
//!   pending is reclaimed after `visibility_timeout`.
//!
//! Order holds per stream within one process. With several processes in a
//! group, Redis hands each entry to one of them, so entries of one stream
//! may be applied concurrently on different nodes.

use crate::RedisStreamSettings;
use crate::worker::{Backoff, Outcome, Stop, Worker};
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamAutoClaimOptions, StreamId, StreamReadOptions};
use redis::{AsyncConnectionConfig, AsyncTypedCommands, RedisResult};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long one `XREADGROUP` waits for entries; also the longest a stop or
/// a due sweep waits for an idle consumer.
const BLOCK: Duration = Duration::from_secs(1);
/// How much longer than `BLOCK` a reply may take before the connection
/// counts as lost.
const RESPONSE_MARGIN: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Entries per `XREADGROUP` and per `XAUTOCLAIM` round.
const BATCH: usize = 100;
/// A group member with nothing pending and this idle is a process that is
/// gone; live ones read at least every `BLOCK`.
const STALE_CONSUMER_IDLE: Duration = Duration::from_secs(3600);

/// Resets the entry's idle time, only while it is pending under this
/// consumer: one round trip, atomic, so it can never take an entry that
/// another consumer has reclaimed meanwhile.
const KEEP_CLAIM: &str = r"
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2])
if #pending == 0 then return 0 end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
return 1
";

pub(crate) async fn run(worker: Arc<Worker>, settings: RedisStreamSettings, stop: Stop) {
    let client = settings
        .client()
        .expect("crate::spawn checks the settings first");
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(BLOCK + RESPONSE_MARGIN));
    let mut consumer = Consumer {
        worker,
        settings,
        stop,
    };
    let mut backoff = Backoff::new();
    while !consumer.stop.is_stopped() {
        let connected = tokio::select! {
            connected = client.get_multiplexed_async_connection_with_config(&config) => connected,
            _ = consumer.stop.stopped() => break,
        };
        let outcome = match connected {
            Ok(mut connection) => consumer.consume(&mut connection, &mut backoff).await,
            Err(error) => Err(error),
        };
        match outcome {
            Ok(()) => break,
            Err(error) => {
                consumer.worker.unreachable(format!("Redis: {error}"));
                consumer.stop.sleep(backoff.next_wait()).await;
            }
        }
    }
}

struct Consumer {
    worker: Arc<Worker>,
    settings: RedisStreamSettings,
    stop: Stop,
}

/// Whether to go on after an entry.
enum Next {
    Continue,
    Stop,
}

impl Consumer {
    /// Reads and applies until stopped (`Ok`) or Redis fails (`Err`).
    async fn consume(
        &mut self,
        connection: &mut MultiplexedConnection,
        backoff: &mut Backoff,
    ) -> RedisResult<()> {
        for stream in &self.settings.streams {
            create_group(connection, stream, &self.settings.consumer_group).await?;
        }
        self.worker.reachable();
        backoff.reset();
        let sweep_every = self.settings.visibility_timeout / 2;
        let mut next_sweep = Instant::now();
        let streams = self.settings.streams.clone();
        let only_new = vec![">"; streams.len()];
        let read = StreamReadOptions::default()
            .group(&self.settings.consumer_group, &self.settings.consumer_name)
            .count(BATCH)
            .block(BLOCK.as_millis() as usize);
        while !self.stop.is_stopped() {
            if Instant::now() >= next_sweep {
                for stream in &streams {
                    if let Next::Stop = self.reclaim(connection, stream).await? {
                        return Ok(());
                    }
                    self.forget_stale_consumers(connection, stream).await?;
                }
                next_sweep = Instant::now() + sweep_every;
            }
            let reply = connection.xread_options(&streams, &only_new, &read).await?;
            for key in reply.map(|reply| reply.keys).unwrap_or_default() {
                for entry in key.ids {
                    if let Next::Stop = self.handle(connection, &key.key, entry).await? {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    /// Takes over and applies the entries idle in the group for longer
    /// than `visibility_timeout`, whoever they were delivered to.
    async fn reclaim(
        &mut self,
        connection: &mut MultiplexedConnection,
        stream: &str,
    ) -> RedisResult<Next> {
        let min_idle = self.settings.visibility_timeout.as_millis() as u64;
        let mut start = "0-0".to_string();
        loop {
            let reply = connection
                .xautoclaim_options(
                    stream,
                    &self.settings.consumer_group,
                    &self.settings.consumer_name,
                    min_idle,
                    &start,
                    StreamAutoClaimOptions::default().count(BATCH),
                )
                .await?;
            for entry in reply.claimed {
                tracing::info!(consumer = %self.worker.name, %stream, id = %entry.id, "reclaimed an entry left pending");
                if let Next::Stop = self.handle(connection, stream, entry).await? {
                    return Ok(Next::Stop);
                }
            }
            if reply.next_stream_id == "0-0" {
                return Ok(Next::Continue);
            }
            start = reply.next_stream_id;
        }
    }

    /// Applies one entry and acknowledges it, retrying in place while the
    /// apply answers retry.
    async fn handle(
        &mut self,
        connection: &mut MultiplexedConnection,
        stream: &str,
        entry: StreamId,
    ) -> RedisResult<Next> {
        let id = format!("{stream}/{}", entry.id);
        let method: Option<String> = entry.get(&self.settings.method_value);
        let payload: Option<String> = entry.get(&self.settings.payload_value);
        let (Some(method), Some(payload)) = (method, payload) else {
            let reason = format!(
                "the entry needs the string fields `{}` and `{}`",
                self.settings.method_value, self.settings.payload_value
            );
            self.worker.reject(&id, "", &reason);
            self.acknowledge(connection, stream, &entry.id).await?;
            return Ok(Next::Continue);
        };
        let mut backoff = Backoff::new();
        loop {
            match self.worker.apply(&id, &method, &payload).await {
                Outcome::Done => {
                    self.acknowledge(connection, stream, &entry.id).await?;
                    return Ok(Next::Continue);
                }
                Outcome::Retry(reason) => {
                    // Sleeping past the visibility timeout would let another
                    // consumer reclaim the entry before it is re-claimed.
                    let wait = backoff
                        .next_wait()
                        .min(self.settings.visibility_timeout / 2);
                    self.worker.retrying(&id, &reason, wait);
                    if !self.stop.sleep(wait).await {
                        return Ok(Next::Stop);
                    }
                    if !self.keep_claim(connection, stream, &entry.id).await? {
                        tracing::info!(consumer = %self.worker.name, %id, "entry taken over or removed while retrying; leaving it");
                        return Ok(Next::Continue);
                    }
                }
            }
        }
    }

    async fn acknowledge(
        &self,
        connection: &mut MultiplexedConnection,
        stream: &str,
        id: &str,
    ) -> RedisResult<()> {
        connection
            .xack(stream, &self.settings.consumer_group, &[id])
            .await?;
        Ok(())
    }

    /// True while the entry is still pending under this consumer.
    async fn keep_claim(
        &self,
        connection: &mut MultiplexedConnection,
        stream: &str,
        id: &str,
    ) -> RedisResult<bool> {
        let kept: i64 = redis::cmd("EVAL")
            .arg(KEEP_CLAIM)
            .arg(1)
            .arg(stream)
            .arg(&self.settings.consumer_group)
            .arg(&self.settings.consumer_name)
            .arg(id)
            .query_async(connection)
            .await?;
        Ok(kept == 1)
    }

    /// Removes group members that have nothing pending and have not read
    /// for [`STALE_CONSUMER_IDLE`]: processes that are gone.
    async fn forget_stale_consumers(
        &self,
        connection: &mut MultiplexedConnection,
        stream: &str,
    ) -> RedisResult<()> {
        let group = &self.settings.consumer_group;
        let members = connection.xinfo_consumers(stream, group).await?;
        for member in members.consumers {
            let idle = Duration::from_millis(member.idle as u64);
            if member.pending == 0
                && idle >= STALE_CONSUMER_IDLE
                && member.name != self.settings.consumer_name
            {
                connection
                    .xgroup_delconsumer(stream, group, &member.name)
                    .await?;
                tracing::info!(consumer = %self.worker.name, %stream, member = %member.name, "removed a group member that is gone");
            }
        }
        Ok(())
    }
}

/// Creates the group at the stream's start when it does not exist yet.
async fn create_group(
    connection: &mut MultiplexedConnection,
    stream: &str,
    group: &str,
) -> RedisResult<()> {
    match connection.xgroup_create_mkstream(stream, group, "0").await {
        Ok(()) => {
            tracing::info!(%stream, %group, "created the consumer group at the stream's start");
            Ok(())
        }
        Err(error) if error.code() == Some("BUSYGROUP") => Ok(()),
        Err(error) => Err(error),
    }
}
