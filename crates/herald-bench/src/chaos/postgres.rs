//! A PostgreSQL server of the scenario's own, so it can be crashed and
//! restarted without touching the machine's shared one: `initdb` into a
//! temporary directory and `pg_ctl` on a free loopback port, run as the
//! `postgres` user when this process is root (initdb refuses root).

use crate::Result;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct OwnPostgres {
    bin: PathBuf,
    data: PathBuf,
    log: PathBuf,
    socket_dir: PathBuf,
    pub port: u16,
    /// Owns the directories; removed when the server is dropped.
    _dir: tempfile::TempDir,
}

/// The newest `/usr/lib/postgresql/<version>/bin` holding `pg_ctl`.
fn binaries() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_ctl").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// Whether this process runs as root (asked of `id -u`: the crate links no libc).
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl OwnPostgres {
    /// Creates a cluster (trust auth, user `postgres`) and starts it.
    pub async fn start() -> Result<OwnPostgres> {
        let bin =
            binaries().ok_or("no /usr/lib/postgresql/*/bin/pg_ctl: PostgreSQL is not installed")?;
        let dir = tempfile::Builder::new()
            .prefix("herald-chaos-pg-")
            .tempdir()?;
        let server = OwnPostgres {
            bin,
            data: dir.path().join("data"),
            log: dir.path().join("postgres.log"),
            socket_dir: dir.path().to_path_buf(),
            port: crate::peers::free_port()?,
            _dir: dir,
        };
        if is_root() {
            let owner = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(server.socket_dir.as_path())
                .status()?;
            if !owner.success() {
                return Err("cannot hand the PostgreSQL directory to user postgres".into());
            }
        }
        let data = server.data.display().to_string();
        server.run(
            "initdb",
            &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"],
        )?;
        server.start_server().await?;
        Ok(server)
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server and returns once it accepts connections (`pg_ctl -w`).
    pub async fn start_server(&self) -> Result<()> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.socket_dir.display()
        );
        let (data, log) = (
            self.data.display().to_string(),
            self.log.display().to_string(),
        );
        let args = [
            "-D", &data, "-l", &log, "-o", &options, "-w", "-t", "30", "start",
        ];
        self.run_async("pg_ctl", &args).await
    }

    /// `pg_ctl stop -m immediate`: every backend is killed at once, no
    /// checkpoint, as in a crash; the next start replays the WAL.
    pub async fn crash(&self) -> Result<()> {
        let data = self.data.display().to_string();
        self.run_async("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"])
            .await
    }

    async fn run_async(&self, tool: &str, args: &[&str]) -> Result<()> {
        let command = self.command(tool, args);
        let log = self.log.clone();
        tokio::task::spawn_blocking(move || finish(command, &log)).await?
    }

    fn run(&self, tool: &str, args: &[&str]) -> Result<()> {
        finish(self.command(tool, args), &self.log)
    }

    fn command(&self, tool: &str, args: &[&str]) -> Command {
        let program = self.bin.join(tool);
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        command.args(args).current_dir(&self.socket_dir);
        command
    }
}

fn finish(mut command: Command, log: &Path) -> Result<()> {
    let output = command.output()?;
    if output.status.success() {
        return Ok(());
    }
    let tail = std::fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = tail.lines().rev().take(10).collect();
    Err(format!(
        "{command:?} failed ({}): {}{}\nserver log ends:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    )
    .into())
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let data = self.data.display().to_string();
        let _ = self
            .command("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"])
            .output();
    }
}
