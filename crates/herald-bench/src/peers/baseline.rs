//! The minimal Rust baseline (`bench/peers/rust-baseline`): `GET /ws` receives
//! every body posted to `POST /publish`, one text frame each. No handshake, no
//! rooms, no auth: the floor a real-time server is measured against.

use super::{Endpoint, Kind, Paths, spawn_endpoint};
use crate::Result;
use crate::procs::Process;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

pub fn binary(paths: &Paths) -> std::path::PathBuf {
    paths.target.join("release/rust-baseline")
}

pub async fn start(paths: &Paths, dir: &Path) -> Result<(Process, Vec<Process>, Endpoint)> {
    let mut cmd = Command::new(binary(paths));
    cmd.arg("127.0.0.1:0");
    let (process, endpoint) = spawn_endpoint(
        Kind::Baseline,
        cmd,
        dir,
        Duration::from_secs(20),
        String::new(),
    )
    .await?;
    Ok((process, Vec::new(), endpoint))
}
