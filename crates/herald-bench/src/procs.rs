//! Processes the suite starts (each system under test runs as its own process
//! group), and what `/proc` says about them: resident memory and CPU time.

use crate::Result;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `/proc` reports CPU time in USER_HZ ticks, 100 per second on Linux.
const TICKS_PER_SEC: f64 = 100.0;

/// A started process, leader of its own process group; stopping it stops the group.
pub struct Process {
    pub name: String,
    pub pid: u32,
    child: Child,
    log: PathBuf,
}

/// Starts `cmd` in a new process group with stdout piped and stderr going to
/// `log`, and waits until it prints a line containing `listening on http://`;
/// returns the process and the address after that prefix.
pub async fn spawn_listening(
    name: &str,
    mut cmd: Command,
    log: &Path,
    wait: Duration,
) -> Result<(Process, String)> {
    let log_file = std::fs::File::create(log)?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file)
        .process_group(0);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("{name}: cannot start {cmd:?}: {e}"))?;
    let stdout = child.stdout.take().ok_or("stdout is piped")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some((_, addr)) = line.split_once("listening on http://")
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(addr.trim().trim_end_matches('/').to_string());
            }
        }
    });
    let process = Process {
        name: name.into(),
        pid: child.id(),
        child,
        log: log.to_path_buf(),
    };
    let ready = tokio::task::spawn_blocking(move || rx.recv_timeout(wait)).await?;
    match ready {
        Ok(addr) => Ok((process, addr)),
        Err(_) => {
            let tail = process.log_tail();
            process.stop().await;
            Err(format!(
                "{name} did not print `listening on` within {wait:?}; its log ends:\n{tail}"
            )
            .into())
        }
    }
}

/// Starts `cmd` in a new process group, output to `log`, without waiting.
pub fn spawn_quiet(name: &str, mut cmd: Command, log: &Path) -> Result<Process> {
    let log_file = std::fs::File::create(log)?;
    cmd.stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .process_group(0);
    let child = cmd
        .spawn()
        .map_err(|e| format!("{name}: cannot start {cmd:?}: {e}"))?;
    Ok(Process {
        name: name.into(),
        pid: child.id(),
        child,
        log: log.to_path_buf(),
    })
}

/// Why `redis-server` cannot run here, if it cannot.
pub fn redis_missing() -> Option<String> {
    Command::new("redis-server")
        .arg("--version")
        .output()
        .is_err()
        .then(|| "redis-server is not installed (on Debian: apt-get install redis-server)".into())
}

/// Starts a throwaway `redis-server` on a free loopback port, working in
/// `dir`, with persistence off so nothing outlives the run; returns once it
/// accepts connections.
pub async fn start_redis(dir: &Path) -> Result<(Process, u16)> {
    if let Some(why) = redis_missing() {
        return Err(why.into());
    }
    let port = crate::peers::free_port()?;
    let mut cmd = Command::new("redis-server");
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir);
    let redis = spawn_quiet("redis", cmd, &dir.join("redis.log"))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            let tail = redis.log_tail();
            redis.stop().await;
            return Err(format!("redis-server did not listen on {port}:\n{tail}").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok((redis, port))
}

impl Process {
    /// The last lines of the process's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Resident memory of every process in the group, in KiB.
    pub fn rss_kib(&self) -> u64 {
        group_members(self.pid)
            .iter()
            .map(|&pid| rss_kib(pid))
            .sum()
    }

    /// CPU ticks (user + system) of every process in the group.
    pub fn cpu_ticks(&self) -> u64 {
        group_members(self.pid)
            .iter()
            .map(|&pid| cpu_ticks(&format!("/proc/{pid}/stat")))
            .sum()
    }

    /// SIGTERM to the group, SIGKILL after 3 s.
    pub async fn stop(mut self) {
        signal_group(self.pid, "-TERM");
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) && group_members(self.pid).is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        signal_group(self.pid, "-KILL");
        let _ = self.child.wait();
        eprintln!("  {} needed SIGKILL", self.name);
    }
}

fn signal_group(pgid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
}

/// Live processes whose process group is `pgid`.
fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // Fields after the command: state ppid pgrp ...
            let fields = after_comm(&stat);
            fields.first() != Some(&"Z") && fields.get(2) == Some(&pgid.to_string().as_str())
        })
        .collect()
}

fn after_comm(stat: &str) -> Vec<&str> {
    stat.rsplit_once(')')
        .map_or_else(Vec::new, |(_, rest)| rest.split_whitespace().collect())
}

pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// utime + stime from a `/proc/.../stat` file.
pub fn cpu_ticks(path: &str) -> u64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    let fields = after_comm(&stat);
    // After the command: state(0) ppid(1) ... utime(11) stime(12).
    let get = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    get(11) + get(12)
}

/// CPU used over a span of wall time by this process (the load generator) and
/// by the systems under test, each as a fraction of one core.
pub struct CpuWindow {
    started: Instant,
    own: u64,
    server: Ticks,
}

/// CPU ticks of the server processes, and of a helper (Redis) counted apart.
#[derive(Clone, Copy, Default)]
pub struct Ticks {
    pub server: u64,
    pub helper: u64,
}

impl From<u64> for Ticks {
    fn from(server: u64) -> Self {
        Ticks { server, helper: 0 }
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct CpuUse {
    /// The load generator, in cores (1.0 = one core busy all the time).
    pub loadgen: f64,
    /// The server processes, in cores.
    pub server: f64,
    /// The helper counted apart (the Redis of a scale-out run), in cores.
    pub helper: f64,
}

impl CpuUse {
    /// The brief's rule: the load generator saturates when it uses 95 % of a core.
    pub fn loadgen_saturated(&self) -> bool {
        self.loadgen >= 0.95
    }
}

impl CpuWindow {
    pub fn start(server_ticks: impl Into<Ticks>) -> Self {
        Self {
            started: Instant::now(),
            own: cpu_ticks("/proc/self/stat"),
            server: server_ticks.into(),
        }
    }

    pub fn finish(&self, server_ticks: impl Into<Ticks>) -> CpuUse {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let cores = |ticks: u64| ticks as f64 / TICKS_PER_SEC / secs;
        let now = server_ticks.into();
        CpuUse {
            loadgen: cores(cpu_ticks("/proc/self/stat").saturating_sub(self.own)),
            server: cores(now.server.saturating_sub(self.server.server)),
            helper: cores(now.helper.saturating_sub(self.server.helper)),
        }
    }
}

/// Raises this process's soft open-files limit to the hard limit; returns it.
pub fn raise_nofile() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            eprintln!("herald-bench: cannot raise RLIMIT_NOFILE: {e}");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(0, |(soft, _)| soft)
        }
    }
}
