//! Django Channels (`bench/peers/django`, built separately): `run.sh PORT
//! REDIS_URL` runs daphne; `ws://.../ws/GROUP/` joins a group and receives each
//! group message as one text frame; `POST /publish/GROUP/` does `group_send`.
//! The channel layer needs Redis: the suite starts its own, on a free port.

use super::{Endpoint, Kind, Paths, free_port, spawn_endpoint};
use crate::Result;
use crate::procs::{self, Process};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

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
    procs::redis_missing()
}

pub async fn start(paths: &Paths, tmp: &Path) -> Result<(Process, Vec<Process>, Endpoint)> {
    let (redis, redis_port) = procs::start_redis(tmp).await?;
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
