//! Django Channels (`bench/peers/django`, built separately): `run.sh PORT
//! REDIS_URL` runs daphne; `ws://.../ws/GROUP/` joins a group and receives each
//! group message as one text frame; `POST /publish/GROUP/` does `group_send`.
//! The channel layer needs Redis: the suite starts its own, on a free port.

use super::{Endpoint, Kind, Paths, free_port, spawn_endpoint};
use crate::Result;
use crate::procs::{self, Process};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub fn dir(paths: &Paths) -> PathBuf {
    paths.root.join("bench/peers/django")
}

/// Why Django cannot run here, if it cannot.
pub fn unavailable(paths: &Paths) -> Option<String> {
    let run = dir(paths).join("run.sh");
    if !run.exists() {
        return Some(format!(
            "{} does not exist (the Django peer is not built yet)",
            run.display()
        ));
    }
    let redis = Command::new("redis-server").arg("--version").output();
    if redis.is_err() {
        return Some("redis-server is not installed".into());
    }
    None
}

pub async fn start(paths: &Paths, tmp: &Path) -> Result<(Process, Vec<Process>, Endpoint)> {
    let redis_port = free_port()?;
    let mut redis = Command::new("redis-server");
    redis.args(["--port", &redis_port.to_string(), "--bind", "127.0.0.1"]);
    redis.args(["--save", "", "--appendonly", "no"]);
    let redis = procs::spawn_quiet("redis", redis, &tmp.join("redis.log"))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", redis_port)).is_err() {
        if Instant::now() > deadline {
            let tail = redis.log_tail();
            redis.stop().await;
            return Err(format!("redis-server did not listen on {redis_port}:\n{tail}").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let port = free_port()?;
    let mut cmd = Command::new("bash");
    cmd.arg(dir(paths).join("run.sh"))
        .arg(port.to_string())
        .arg(format!("redis://127.0.0.1:{redis_port}/0"))
        .current_dir(dir(paths));
    // The first run builds the peer's virtualenv.
    let started = spawn_endpoint(
        Kind::Django,
        cmd,
        tmp,
        Duration::from_secs(900),
        String::new(),
    )
    .await;
    match started {
        Ok((process, endpoint)) => Ok((process, vec![redis], endpoint)),
        Err(e) => {
            redis.stop().await;
            Err(e)
        }
    }
}

/// The pinned Django, Channels and Daphne versions from requirements.txt.
pub fn version(paths: &Paths) -> String {
    let text = std::fs::read_to_string(dir(paths).join("requirements.txt")).unwrap_or_default();
    let pins: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            [
                "django==",
                "channels==",
                "channels-redis==",
                "channels_redis==",
                "daphne==",
            ]
            .iter()
            .any(|p| l.starts_with(p))
        })
        .collect();
    if pins.is_empty() {
        "versions unknown".into()
    } else {
        pins.join(", ")
    }
}

pub fn path(rooms: &[String]) -> Result<String> {
    match rooms {
        [room] => Ok(format!("/ws/{room}/")),
        _ => Err(format!(
            "a Django Channels connection joins exactly one group, not {}",
            rooms.len()
        )
        .into()),
    }
}
