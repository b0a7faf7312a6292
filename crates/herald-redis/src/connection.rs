//! Connecting to standalone Redis, to a master found through Sentinel, or to a
//! Cluster, as one connection type the rest of the crate uses.
//!
//! All three speak RESP3, so subscription messages arrive as pushes on one
//! queue, and a lost connection shows up on it as a `Disconnection` push. A
//! node keeps subscriptions and commands on separate connections: Redis sends
//! unrequested `sunsubscribe` pushes when a Cluster slot moves, and the client
//! library would take such a push for the reply of a command in flight on the
//! same connection.

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Cmd, IntoConnectionInfo, Pipeline, ProtocolVersion, PushInfo,
    RedisConnectionInfo, RedisFuture, RedisResult, Value,
};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;

/// Where Redis is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topology {
    /// `redis://host:port/db`
    Standalone(String),
    /// Sentinels to ask for the current master of `master`.
    Sentinel {
        sentinels: Vec<String>,
        master: String,
    },
    /// Any subset of the Cluster's nodes; the rest are discovered.
    Cluster(Vec<String>),
}

impl Topology {
    pub fn describe(&self) -> String {
        match self {
            Self::Standalone(url) => format!("redis {}", redact(url)),
            Self::Sentinel { sentinels, master } => {
                format!("redis master {master:?} via sentinels {}", sentinels.len())
            }
            Self::Cluster(nodes) => format!("redis cluster ({} seed nodes)", nodes.len()),
        }
    }
}

/// A URL without its password, for logs and errors.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

#[derive(Clone)]
pub(crate) enum Conn {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

/// A connection for commands, or, with `pushes`, for subscriptions.
pub(crate) async fn connect(
    topology: &Topology,
    timeout: Duration,
    pushes: Option<UnboundedSender<PushInfo>>,
) -> RedisResult<Conn> {
    let mut config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    if let Some(pushes) = &pushes {
        config = config.set_push_sender(pushes.clone());
    }
    match topology {
        Topology::Standalone(url) => {
            let info = url.as_str().into_connection_info()?;
            let resp3 = info
                .redis_settings()
                .clone()
                .set_protocol(ProtocolVersion::RESP3);
            let client = redis::Client::open(info.set_redis_settings(resp3))?;
            let connection = client
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            Ok(Conn::Single(connection))
        }
        Topology::Sentinel { sentinels, master } => {
            let node = SentinelNodeConnectionInfo::default().set_redis_connection_info(
                RedisConnectionInfo::default().set_protocol(ProtocolVersion::RESP3),
            );
            let mut client = SentinelClient::build(
                sentinels.clone(),
                master.clone(),
                Some(node),
                SentinelServerType::Master,
            )?;
            let connection = client.get_async_connection_with_config(&config).await?;
            Ok(Conn::Single(connection))
        }
        Topology::Cluster(nodes) => {
            let mut builder = redis::cluster::ClusterClientBuilder::new(nodes.clone())
                .use_protocol(ProtocolVersion::RESP3)
                .connection_timeout(timeout)
                .response_timeout(timeout);
            if let Some(pushes) = pushes {
                builder = builder.push_sender(pushes);
            }
            let client = builder.build()?;
            Ok(Conn::Cluster(client.get_async_connection().await?))
        }
    }
}

impl Conn {
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// The command scripts publish channel messages with: sharded in a
    /// Cluster, so a message only travels to the nodes of its shard.
    pub fn publish_command(&self) -> &'static str {
        if self.is_cluster() {
            "SPUBLISH"
        } else {
            "PUBLISH"
        }
    }

    /// Subscribes to channels' pub/sub channels (sharded in a Cluster).
    pub async fn subscribe_channels(&mut self, names: &[String]) -> RedisResult<()> {
        match self {
            Self::Single(c) => c.subscribe(names).await,
            Self::Cluster(c) => {
                // One call per name: sharded subscribes of one call must share a slot.
                for name in names {
                    c.ssubscribe(name).await?;
                }
                Ok(())
            }
        }
    }

    pub async fn unsubscribe_channels(&mut self, names: &[String]) -> RedisResult<()> {
        match self {
            Self::Single(c) => c.unsubscribe(names).await,
            Self::Cluster(c) => {
                for name in names {
                    c.sunsubscribe(name).await?;
                }
                Ok(())
            }
        }
    }

    /// Subscribes to the (unsharded) channel nodes talk on.
    pub async fn subscribe_nodes(&mut self, name: &str) -> RedisResult<()> {
        match self {
            Self::Single(c) => c.subscribe(name).await,
            Self::Cluster(c) => c.subscribe(name).await,
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}
