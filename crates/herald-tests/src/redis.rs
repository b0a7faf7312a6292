//! Real, ephemeral Redis servers for tests: standalone (restartable, optionally
//! with an append-only file), one master watched by a Sentinel, and a Cluster
//! (optionally with replicas, for a manual failover).
//!
//! Synchronous and std-only on purpose: the fixtures run `redis-server` and
//! `redis-cli` as child processes and speak RESP over a plain `TcpStream`, so
//! they work from sync and async tests alike and pin no Redis client crate.
//! Every wait polls against a deadline and panics with the server's log tail.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};
use tempfile::TempDir;

const HOST: &str = "127.0.0.1";
const WAIT: Duration = Duration::from_secs(10);
/// `redis-cli --cluster create` waits for gossip itself, with no limit of its own.
const CLUSTER_CREATE_WAIT: Duration = Duration::from_secs(30);
/// Longer than `WAIT` so a test can block a server with `DEBUG SLEEP`.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
const POLL: Duration = Duration::from_millis(20);
const CLUSTER_SLOTS: u16 = 16384;
const MASTER_NAME: &str = "herald";

/// The path of `name` (looked up on `PATH` unless it contains a `/`).
///
/// None when the binary is missing and CI is not set (prints "skipping: ..." to
/// stderr), so a developer without Redis still gets a green run; panics under
/// `CI=true` (env `CI` == "true") so a missing service fails the run.
pub fn require_binary(name: &str) -> Option<PathBuf> {
    if let Some(path) = find_binary(name) {
        return Some(path);
    }
    let why = format!("{name} is not on PATH (Debian: apt-get install redis-server redis-tools)");
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{why}; CI=true, so a missing service fails the run");
    }
    eprintln!("skipping: {why}");
    None
}

fn find_binary(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return Some(PathBuf::from(name)).filter(|path| path.is_file());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// How a standalone server keeps its data.
#[derive(Debug, Clone, Copy, Default)]
pub struct RedisOptions {
    /// `appendonly yes` with `appendfsync always`: every acknowledged write
    /// survives `kill`/`restart`. When false, a restart starts empty.
    pub appendonly: bool,
}

/// A `redis-server` child process (or a Sentinel) on its own port and temporary directory.
pub struct RedisServer {
    binary: PathBuf,
    /// Every argument after the binary, reused as is by `restart`.
    args: Vec<String>,
    child: Option<Child>,
    port: u16,
    dir: TempDir,
}

impl RedisServer {
    /// A standalone server without persistence (`appendonly no`, `--save ""`);
    /// None when `redis-server` is missing (see [`require_binary`]).
    pub fn start() -> Option<Self> {
        Self::start_with(RedisOptions::default())
    }

    /// A standalone server with these options; None when `redis-server` is missing.
    pub fn start_with(options: RedisOptions) -> Option<Self> {
        let persistence = match options.appendonly {
            true => "--appendonly yes --appendfsync always",
            false => "--appendonly no",
        };
        let binary = require_binary("redis-server")?;
        let port = free_port(false);
        Some(Self::launch(binary, port, temp_dir(), &[], persistence))
    }

    /// Starts `binary <first> <common options> <options>` and waits for PONG;
    /// `options` is split on whitespace.
    fn launch(binary: PathBuf, port: u16, dir: TempDir, first: &[&str], options: &str) -> Self {
        // Redis 7 refuses DEBUG by default; tests use DEBUG SLEEP to stall a server.
        let common = format!(
            "--port {port} --bind {HOST} --daemonize no --enable-debug-command local {options}"
        );
        let (dir_arg, log_arg) = (dir.path().display(), dir.path().join("redis.log"));
        let mut args: Vec<String> = first.iter().map(|arg| arg.to_string()).collect();
        args.extend(common.split_whitespace().map(String::from));
        args.extend([
            "--save".into(),
            String::new(),
            "--dir".into(),
            dir_arg.to_string(),
        ]);
        args.extend(["--logfile".into(), log_arg.display().to_string()]);
        let mut server = Self {
            binary,
            args,
            child: None,
            port,
            dir,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let mut command = Command::new(&self.binary);
        command.args(&self.args);
        self.child = Some(spawn_logged(command, self.dir.path()));
        let port = self.port;
        self.wait_until(
            "answering PING with PONG",
            || matches!(probe(port, &[b"PING"]), Some(Reply::Line(s)) if s == "PONG"),
        );
    }

    /// Polls `ready`; panics with the log tail on timeout or when the process exits first.
    fn wait_until(&mut self, what: &str, mut ready: impl FnMut() -> bool) {
        let child = self.child.as_mut().expect("the server was started");
        let outcome = poll(WAIT, || match ready() {
            true => Some(None),
            false => child.try_wait().ok().flatten().map(Some),
        });
        let (port, tail) = (self.port, log_tail(self.dir.path()));
        match outcome {
            Some(None) => {}
            Some(Some(status)) => {
                panic!("redis on port {port} exited ({status}) before {what}{tail}")
            }
            None => panic!("redis on port {port} not {what} within {WAIT:?}{tail}"),
        }
    }

    /// The port the server listens on (stable across `restart`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://{HOST}:{}", self.port)
    }

    /// SIGKILLs the server and reaps it; its port is closed when this returns.
    /// Leaves the data directory alone, so `restart` can reload it.
    pub fn kill(&mut self) {
        self.kill_child();
        let port = self.port;
        poll(WAIT, || {
            TcpStream::connect((HOST, port)).is_err().then_some(())
        })
        .unwrap_or_else(|| panic!("port {port} still accepts connections after SIGKILL"));
    }

    fn kill_child(&mut self) {
        if let Some(mut child) = self.child.take() {
            // An error only means the process has already exited.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server if it runs, starts it again on the same port and
    /// directory, and returns once PING answers PONG (after any AOF is loaded).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Sends one command on a fresh connection and returns the reply as text:
    /// simple strings, bulk strings and integers as themselves, errors as their
    /// message ("ERR ...", "MOVED ..."), nil as "(nil)", arrays joined by '\n'.
    /// Panics when the server cannot be reached or does not answer in 30 s.
    pub fn command(&self, args: &[&str]) -> String {
        let args: Vec<&[u8]> = args.iter().map(|arg| arg.as_bytes()).collect();
        call(self.port, &args).render()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill_child();
        if std::thread::panicking() {
            // The directory goes away with `self`; this is the last chance to see why.
            eprintln!("redis on port {}:{}", self.port, log_tail(self.dir.path()));
        }
    }
}

/// One master and one Sentinel monitoring it as "herald" (no replicas, so no failover).
pub struct RedisSentinel {
    // Declared first so it is dropped first and never sees its master go away.
    sentinel: RedisServer,
    master: RedisServer,
}

impl RedisSentinel {
    /// Starts the master, then `redis-server <conf> --sentinel`, and returns once
    /// `SENTINEL get-master-addr-by-name herald` answers with the master's port.
    /// None when `redis-server` is missing.
    pub fn start() -> Option<Self> {
        let master = RedisServer::start()?;
        let dir = temp_dir();
        // Sentinel rewrites its config file, so it gets its own writable copy.
        let conf = dir.path().join("sentinel.conf");
        let monitor = format!("sentinel monitor {MASTER_NAME} {HOST} {} 1\n", master.port);
        std::fs::write(&conf, monitor).expect("can write sentinel.conf");
        let conf = conf.display().to_string();
        let first = [conf.as_str(), "--sentinel"];
        let port = free_port(false);
        let mut sentinel = RedisServer::launch(master.binary.clone(), port, dir, &first, "");
        let query: &[&[u8]] = &[b"SENTINEL", b"get-master-addr-by-name", b"herald"];
        let expected = format!("{HOST}\n{}", master.port);
        sentinel.wait_until("reporting the master", || {
            probe(port, query).is_some_and(|reply| reply.render() == expected)
        });
        Some(Self { sentinel, master })
    }

    /// "herald".
    pub fn master_name(&self) -> &str {
        MASTER_NAME
    }

    /// `redis+sentinel://127.0.0.1:SENTINEL_PORT/herald`.
    pub fn url(&self) -> String {
        let port = self.sentinel.port;
        format!("redis+sentinel://{HOST}:{port}/{MASTER_NAME}")
    }

    /// The monitored master.
    pub fn master(&self) -> &RedisServer {
        &self.master
    }

    /// The Sentinel process itself: its port, and `command` to query it
    /// (`SENTINEL ...`).
    pub fn sentinel(&self) -> &RedisServer {
        &self.sentinel
    }
}

/// A Redis Cluster of masters only, each a [`RedisServer`] in cluster mode.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts `masters` (at least 3, as `redis-cli --cluster create` requires)
    /// nodes, joins them with `redis-cli --cluster create`, and returns once
    /// every node reports `cluster_state:ok`, all 16384 slots assigned and every
    /// other node known. None when `redis-server` or `redis-cli` is missing.
    pub fn start(masters: usize) -> Option<Self> {
        Self::start_with_replicas(masters, 0)
    }

    /// As [`RedisCluster::start`], with `replicas` replicas per master
    /// (`--cluster-replicas`), for failover tests; the replicas come after
    /// the masters in [`RedisCluster::nodes`].
    pub fn start_with_replicas(masters: usize, replicas: usize) -> Option<Self> {
        assert!(
            masters >= 3,
            "redis-cli --cluster create needs at least 3 masters, got {masters}"
        );
        let server = require_binary("redis-server")?;
        let cli = require_binary("redis-cli")?;
        let mut cluster = Self { nodes: Vec::new() };
        // The cluster config file is relative to --dir, the node's temporary directory.
        let options = "--appendonly no --cluster-enabled yes --cluster-config-file nodes.conf \
                       --cluster-node-timeout 2000";
        for _ in 0..masters * (1 + replicas) {
            let port = free_port(true);
            let node = RedisServer::launch(server.clone(), port, temp_dir(), &[], options);
            // Pushed one by one so a failed start still drops (kills) the earlier nodes.
            cluster.nodes.push(node);
        }
        cluster.create(&cli, replicas);
        cluster.wait_until_formed();
        Some(cluster)
    }

    fn create(&self, cli: &Path, replicas: usize) {
        let log_dir = self.nodes[0].dir.path();
        let mut command = Command::new(cli);
        command.args(["--cluster", "create"]);
        let addresses = self
            .nodes
            .iter()
            .map(|node| format!("{HOST}:{}", node.port));
        command.args(addresses);
        let replicas = replicas.to_string();
        command.args(["--cluster-replicas", &replicas, "--cluster-yes"]);
        let mut child = spawn_logged(command, log_dir);
        let status = poll(CLUSTER_CREATE_WAIT, || {
            child.try_wait().expect("can watch redis-cli")
        });
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if !status.is_some_and(|status| status.success()) {
            let output = std::fs::read_to_string(log_dir.join("stderr.log")).unwrap_or_default();
            panic!("redis-cli --cluster create failed or hung ({status:?}):\n{output}");
        }
    }

    fn wait_until_formed(&self) {
        let wanted = [
            "cluster_state:ok".to_string(),
            format!("cluster_slots_assigned:{CLUSTER_SLOTS}"),
            format!("cluster_known_nodes:{}", self.nodes.len()),
        ];
        for node in &self.nodes {
            let mut info = String::new();
            let formed = poll(WAIT, || {
                info = probe(node.port, &[b"CLUSTER", b"INFO"])?.render();
                let lines: Vec<&str> = info.lines().map(str::trim).collect();
                wanted
                    .iter()
                    .all(|want| lines.contains(&want.as_str()))
                    .then_some(())
            });
            let port = node.port;
            assert!(
                formed.is_some(),
                "node {port} not {wanted:?} within {WAIT:?}:\n{info}"
            );
        }
    }

    /// `redis://127.0.0.1:PORT` for every node, in start order.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The nodes, in start order.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// Moves one hash slot from the node that owns it to another node with
    /// CLUSTER SETSLOT IMPORTING/MIGRATING, MIGRATE of its keys (COUNT/KEYS
    /// loop), and SETSLOT NODE on all masters; returns (from_port, to_port).
    ///
    /// The new owner is the node after the old one in start order. Returns once
    /// every node's CLUSTER NODES shows the new owner serving the slot.
    pub fn move_slot(&self, slot: u16) -> (u16, u16) {
        assert!(slot < CLUSTER_SLOTS, "slot {slot} is out of range");
        let ids: Vec<String> = self.nodes.iter().map(|node| node_id(node.port)).collect();
        let from = (0..self.nodes.len())
            .find(|&i| owner_in_view(self.nodes[i].port, slot).as_ref() == Some(&ids[i]))
            .unwrap_or_else(|| panic!("no node claims slot {slot}"));
        let to = (from + 1) % self.nodes.len();
        let (source, target) = (self.nodes[from].port, self.nodes[to].port);
        let slot_arg = slot.to_string();
        let setslot = |node: usize, state: &str, id: &str| {
            let reply = self.nodes[node].command(&["CLUSTER", "SETSLOT", &slot_arg, state, id]);
            let port = self.nodes[node].port;
            assert_eq!(reply, "OK", "CLUSTER SETSLOT {slot} {state} {id} on {port}");
        };
        // Importing first, so the source never redirects to a node that would refuse.
        setslot(to, "IMPORTING", &ids[from]);
        setslot(from, "MIGRATING", &ids[to]);

        let deadline = Instant::now() + WAIT;
        let target_arg = target.to_string();
        let list_keys: &[&[u8]] = &[b"CLUSTER", b"GETKEYSINSLOT", slot_arg.as_bytes(), b"100"];
        loop {
            let Reply::Array(Some(keys)) = call(source, list_keys) else {
                panic!("CLUSTER GETKEYSINSLOT {slot} on {source} returned no list");
            };
            if keys.is_empty() {
                break;
            }
            let mut args: Vec<&[u8]> = vec![b"MIGRATE", HOST.as_bytes(), target_arg.as_bytes()];
            args.extend([&b""[..], b"0", b"5000", b"KEYS"]);
            args.extend(keys.iter().map(|key| match key {
                Reply::Bulk(Some(key)) => key.as_slice(),
                other => panic!("CLUSTER GETKEYSINSLOT returned a non-key: {other:?}"),
            }));
            let reply = call(source, &args);
            assert!(
                matches!(&reply, Reply::Line(s) if s == "OK" || s == "NOKEY"),
                "MIGRATE of slot {slot} from {source} to {target}: {reply:?}"
            );
            assert!(
                Instant::now() < deadline,
                "slot {slot} not emptied within {WAIT:?}"
            );
        }

        // Target, then source, then the rest, as the Redis docs advise: the new
        // owner bumps its config epoch before anyone else hears of the change.
        let others = (0..self.nodes.len()).filter(|&i| i != from && i != to);
        for node in [to, from].into_iter().chain(others) {
            setslot(node, "NODE", &ids[to]);
        }
        for node in &self.nodes {
            let moved = poll(WAIT, || {
                (owner_in_view(node.port, slot)? == ids[to]).then_some(())
            });
            let port = node.port;
            assert!(
                moved.is_some(),
                "node {port} does not see slot {slot} on {target}"
            );
        }
        (source, target)
    }

    /// A graceful manual failover of the master serving `slot`: `CLUSTER
    /// FAILOVER` on one of its replicas, which first catches up with the
    /// master, then takes over its slots. Returns (old master port, new master
    /// port) once every node's CLUSTER NODES shows the replica serving the slot.
    /// Panics when the master has no replica.
    pub fn failover(&self, slot: u16) -> (u16, u16) {
        let first = self.nodes[0].port;
        let master = owner_in_view(first, slot)
            .unwrap_or_else(|| panic!("node {first} knows no owner of slot {slot}"));
        let port_of = |address: &str| -> Option<u16> {
            address
                .split(['@', ','])
                .next()?
                .rsplit_once(':')?
                .1
                .parse()
                .ok()
        };
        // Replicas show in CLUSTER NODES once gossip has carried their role,
        // and can take over once their replication link is up.
        let mut nodes = String::new();
        let found = poll(CLUSTER_CREATE_WAIT, || {
            nodes = probe(first, &[b"CLUSTER", b"NODES"])?.render();
            let (mut master_port, mut replica) = (None, None);
            for line in nodes.lines() {
                // <id> <addr> <flags> <master> ...
                let fields: Vec<&str> = line.split_whitespace().collect();
                let [id, address, flags, of, ..] = fields[..] else {
                    continue;
                };
                if id == master {
                    master_port = port_of(address);
                } else if flags.contains("slave") && of == master {
                    replica = port_of(address).map(|port| (id.to_string(), port));
                }
            }
            let (id, port) = replica?;
            let info = probe(port, &[b"INFO", b"replication"])?.render();
            info.lines()
                .any(|line| line.trim() == "master_link_status:up")
                .then_some((master_port?, id, port))
        });
        let (master_port, replica_id, replica_port) = found.unwrap_or_else(|| {
            panic!("the master of slot {slot} has no replica in sync within {CLUSTER_CREATE_WAIT:?}:\n{nodes}")
        });
        let reply = call(replica_port, &[b"CLUSTER", b"FAILOVER"]).render();
        assert_eq!(reply, "OK", "CLUSTER FAILOVER on {replica_port}");
        for node in &self.nodes {
            let moved = poll(WAIT, || {
                (owner_in_view(node.port, slot)? == replica_id).then_some(())
            });
            let port = node.port;
            assert!(
                moved.is_some(),
                "node {port} does not see slot {slot} on {replica_port} after the failover"
            );
        }
        (master_port, replica_port)
    }

    /// The slot a key hashes to (CRC16 XMODEM mod 16384 with {hash tag} rules), computed locally.
    ///
    /// Only the part between the first `{` and the next `}` is hashed, when that
    /// part is not empty (so `{user}.a` and `{user}.b` share a slot).
    pub fn key_slot(key: &str) -> u16 {
        let key = key.as_bytes();
        let tag = key.iter().position(|&b| b == b'{').and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        });
        let crc = tag.unwrap_or(key).iter().fold(0u16, |crc, &byte| {
            (0..8).fold(crc ^ (u16::from(byte) << 8), |crc, _| match crc & 0x8000 {
                0 => crc << 1,
                _ => (crc << 1) ^ 0x1021,
            })
        });
        crc % CLUSTER_SLOTS
    }
}

fn node_id(port: u16) -> String {
    match call(port, &[b"CLUSTER", b"MYID"]) {
        Reply::Bulk(Some(id)) => String::from_utf8_lossy(&id).into_owned(),
        other => panic!("CLUSTER MYID on {port}: {other:?}"),
    }
}

/// The id of the master that `port` believes serves `slot`, from its CLUSTER NODES.
fn owner_in_view(port: u16, slot: u16) -> Option<String> {
    let nodes = probe(port, &[b"CLUSTER", b"NODES"])?.render();
    nodes.lines().find_map(|line| {
        // <id> <addr> <flags> <master> <ping> <pong> <epoch> <link> <slot>...
        let fields: Vec<&str> = line.split_whitespace().collect();
        let serves = fields.get(8..)?.iter().any(|range| {
            // "[slot->-id]" and "[slot-<-id]" mark a migration, not ownership: they don't parse.
            let (first, last) = range.split_once('-').unwrap_or((range, range));
            matches!((first.parse(), last.parse()), (Ok(a), Ok(b)) if (a..=b).contains(&slot))
        });
        serves.then(|| fields[0].to_string())
    })
}

/// A port nobody listens on; with `with_bus`, port+10000 (the cluster bus) too.
fn free_port(with_bus: bool) -> u16 {
    // The kernel may hand a just-released port out again before the server meant
    // to own it has bound it, so this process never hands a port out twice.
    static TAKEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    for _ in 0..1000 {
        let listener = TcpListener::bind((HOST, 0)).expect("can bind 127.0.0.1:0");
        let Ok(port) = listener.local_addr().map(|address| address.port()) else {
            continue;
        };
        let wanted = match port.checked_add(10000) {
            _ if !with_bus => vec![port],
            Some(bus) if TcpListener::bind((HOST, bus)).is_ok() => vec![port, bus],
            _ => continue,
        };
        let mut taken = TAKEN.lock().unwrap_or_else(PoisonError::into_inner);
        if !wanted.iter().any(|port| taken.contains(port)) {
            taken.extend(&wanted);
            return port;
        }
    }
    panic!("found no free port (with cluster bus port: {with_bus}) in 1000 tries");
}

fn temp_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("herald-redis-")
        .tempdir()
        .expect("can create a temporary directory")
}

/// Starts `command` with stdout and stderr appended to `<dir>/stderr.log`, where
/// errors that come before Redis opens its logfile (bad arguments) end up.
fn spawn_logged(mut command: Command, dir: &Path) -> Child {
    let path = dir.join("stderr.log");
    let log = File::create(&path).unwrap_or_else(|e| panic!("cannot create {path:?}: {e}"));
    let stdout = log.try_clone().expect("can duplicate a file handle");
    command.stdin(Stdio::null()).stdout(stdout).stderr(log);
    command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", command.get_program()))
}

/// Calls `attempt` every few milliseconds until it returns Some, or None after `timeout`.
fn poll<T>(timeout: Duration, mut attempt: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = attempt() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

fn log_tail(dir: &Path) -> String {
    let mut tail = String::new();
    for path in [dir.join("redis.log"), dir.join("stderr.log")] {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let last = lines[lines.len().saturating_sub(20)..].join("\n");
        tail += &format!("\n--- end of {} ---\n{last}", path.display());
    }
    tail
}

/// A RESP2 reply. Status, error and integer replies are all one line of text.
#[derive(Debug)]
enum Reply {
    Line(String),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    fn render(&self) -> String {
        match self {
            Reply::Line(text) => text.clone(),
            Reply::Bulk(Some(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
            Reply::Bulk(None) | Reply::Array(None) => "(nil)".into(),
            Reply::Array(Some(items)) => {
                let items: Vec<String> = items.iter().map(Reply::render).collect();
                items.join("\n")
            }
        }
    }
}

fn call(port: u16, args: &[&[u8]]) -> Reply {
    request(port, args, COMMAND_TIMEOUT).unwrap_or_else(|e| {
        let shown: Vec<_> = args.iter().map(|a| String::from_utf8_lossy(a)).collect();
        panic!("redis command {shown:?} on port {port} failed: {e}")
    })
}

/// One short-timeout attempt, for polling: None on any I/O error.
fn probe(port: u16, args: &[&[u8]]) -> Option<Reply> {
    request(port, args, PROBE_TIMEOUT).ok()
}

fn request(port: u16, args: &[&[u8]], timeout: Duration) -> io::Result<Reply> {
    let stream =
        TcpStream::connect_timeout(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)), timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut frame = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        frame.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        frame.extend_from_slice(arg);
        frame.extend_from_slice(b"\r\n");
    }
    (&stream).write_all(&frame)?;
    read_reply(&mut BufReader::new(&stream))
}

fn read_reply(reader: &mut impl BufRead) -> io::Result<Reply> {
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line)?;
    let text = String::from_utf8_lossy(line.get(1..).unwrap_or_default())
        .trim_end()
        .to_string();
    let length = || text.parse::<i64>().ok().map(usize::try_from);
    Ok(match (line.first(), length()) {
        _ if !line.ends_with(b"\r\n") => return Err(io::ErrorKind::UnexpectedEof.into()),
        (Some(b'+' | b'-' | b':'), _) => Reply::Line(text),
        (Some(b'$'), Some(Err(_))) => Reply::Bulk(None),
        (Some(b'*'), Some(Err(_))) => Reply::Array(None),
        (Some(b'$'), Some(Ok(len))) => {
            let mut bytes = vec![0; len + 2];
            reader.read_exact(&mut bytes)?;
            bytes.truncate(len);
            Reply::Bulk(Some(bytes))
        }
        (Some(b'*'), Some(Ok(len))) => {
            let items = (0..len).map(|_| read_reply(reader));
            Reply::Array(Some(items.collect::<io::Result<_>>()?))
        }
        _ => return Err(io::Error::new(io::ErrorKind::InvalidData, text)),
    })
}
