//! Is the PostgreSQL server there? A check for `/health`.
//!
//! The probe keeps a connection of its own rather than borrowing from the
//! stores' pools: a pool busy with a burst of commits would make a healthy
//! server look unreachable, and an unreachable one would only show after the
//! pool's acquire timeout, slower than a load balancer should wait.

use crate::{StoreError, check_url};
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use std::time::Duration;

pub struct Probe {
    options: PgConnectOptions,
    connection: Option<PgConnection>,
}

impl Probe {
    pub fn new(url: &str) -> Result<Self, StoreError> {
        Ok(Self {
            options: check_url(url)?,
            connection: None,
        })
    }

    /// One round trip (connecting first when needed), bounded by `limit`.
    /// A failed or late check drops the connection, so the next one starts
    /// afresh instead of waiting on a socket a dead server never answers.
    pub async fn check(&mut self, limit: Duration) -> Result<(), String> {
        let outcome = tokio::time::timeout(limit, self.round_trip()).await;
        let result = match outcome {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(error)) => Err(format!("PostgreSQL: {error}")),
            Err(_) => Err(format!(
                "PostgreSQL did not answer within {} ms",
                limit.as_millis()
            )),
        };
        self.connection = None;
        result
    }

    async fn round_trip(&mut self) -> Result<(), sqlx::Error> {
        if self.connection.is_none() {
            self.connection = Some(PgConnection::connect_with(&self.options).await?);
        }
        let connection = self.connection.as_mut().expect("connected just above");
        connection.ping().await
    }
}
