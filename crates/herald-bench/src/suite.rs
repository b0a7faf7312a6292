//! `suite`: herald side by side with the stacks people use today: the minimal
//! Rust broadcast baseline, sockudo (a Rust Pusher-protocol server), Socket.IO 4
//! on Node, and Django Channels. Every
//! system runs as its own process, fresh for each scenario; the load generator
//! is this process. Scenarios run one after another, each for every system in
//! turn, so a noisy neighbour affects the systems of one scenario alike.

use crate::peers::{self, Kind, Paths};
use crate::scenarios::{Ctx, Scale, channels, fanout, idle, publish};
use crate::{Result, procs, report, suite_doc};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(clap::Args)]
pub struct Args {
    /// smoke (~1 minute), small (~2 minutes) or full (writes the docs).
    #[arg(long, default_value = "smoke")]
    scale: String,
    /// Systems to run, comma-separated: herald,baseline,sockudo,socketio,django.
    /// sockudo is built by bench/peers/sockudo/install.sh (slow); only `full`
    /// builds it, smaller scales skip it unless it is installed.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Write docs/benchmarks.md and docs/img/bench-*.svg (the default with --scale full).
    #[arg(long, conflicts_with = "no_doc")]
    doc: bool,
    /// Print the tables only.
    #[arg(long)]
    no_doc: bool,
    /// Scenarios to run, comma-separated: fanout,idle,publish,channels (default all).
    #[arg(long, value_delimiter = ',')]
    scenarios: Vec<String>,
    /// HTTP publishers for the publish API and fixed rates (default 8).
    #[arg(long)]
    publishers: Option<usize>,
    /// HTTP publishers saturating fan-out (default 32).
    #[arg(long)]
    fanout_publishers: Option<usize>,
    /// Skip `cargo build --release -p herald-server -p rust-baseline` before running.
    #[arg(long)]
    no_build: bool,
    /// The document to write.
    #[arg(long, default_value_os_t = report::default_doc_path())]
    doc_path: PathBuf,
}

pub type Outcomes<T> = Vec<(Kind, std::result::Result<T, String>)>;

pub struct Results {
    pub scale: Scale,
    pub command: String,
    pub versions: Vec<(Kind, String)>,
    pub nofile: u64,
    pub fanout: Outcomes<fanout::Fanout>,
    pub idle: Outcomes<idle::Idle>,
    pub publish: Outcomes<publish::Publish>,
    pub channels: Outcomes<channels::Channels>,
}

pub async fn run(args: Args) -> Result<()> {
    let mut scale = Scale::named(&args.scale)
        .ok_or_else(|| format!("--scale must be smoke, small or full, not {}", args.scale))?;
    if let Some(n) = args.publishers {
        scale.publishers = n.max(1);
    }
    if let Some(n) = args.fanout_publishers {
        scale.fanout_publishers = n.max(1);
    }
    const SCENARIOS: [&str; 4] = ["fanout", "idle", "publish", "channels"];
    if let Some(bad) = args
        .scenarios
        .iter()
        .find(|s| !SCENARIOS.contains(&s.as_str()))
    {
        return Err(format!("--scenarios: unknown scenario {bad}").into());
    }
    let wanted = |name: &str| args.scenarios.is_empty() || args.scenarios.iter().any(|s| s == name);
    let mut kinds = Vec::new();
    for id in &args.only {
        let kind = Kind::parse(id).ok_or_else(|| format!("--only: unknown system {id}"))?;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    if kinds.is_empty() {
        kinds = Kind::ALL.to_vec();
    }
    kinds.sort_by_key(|k| Kind::ALL.iter().position(|a| a == k));
    let nofile = procs::raise_nofile();
    let paths = workspace_paths();
    eprintln!(
        "herald-bench suite --scale {}: open files limit {nofile}",
        scale.name
    );
    if !args.no_build {
        build(&paths.root, &["herald-server", "rust-baseline"])?;
    }
    let mut skipped: Vec<(Kind, String)> = Vec::new();
    for &kind in &kinds {
        if let Some(why) = unavailable(kind, &paths, scale.name) {
            eprintln!("{}: skipped: {why}", kind.id());
            skipped.push((kind, format!("skipped: {why}")));
        }
    }
    let runnable: Vec<Kind> = kinds
        .iter()
        .copied()
        .filter(|k| !skipped.iter().any(|(s, _)| s == k))
        .collect();
    let versions = kinds.iter().map(|&k| (k, version(k, &paths))).collect();
    let ctx = Ctx {
        paths: &paths,
        scale: &scale,
    };
    let started = std::time::Instant::now();

    let mut fanout = Vec::new();
    let mut idle = Vec::new();
    let mut publish = Vec::new();
    let mut channels = Vec::new();
    eprintln!(
        "== fan-out: 1 channel, {} subscribers ==",
        scale.fanout_subscribers
    );
    for &kind in runnable.iter().filter(|_| wanted("fanout")) {
        fanout.push((
            kind,
            fanout::run(kind, &ctx).await.map_err(|e| e.to_string()),
        ));
    }
    eprintln!(
        "== idle memory and connect storm: {:?} connections ==",
        scale.idle_steps
    );
    for &kind in runnable.iter().filter(|_| wanted("idle")) {
        idle.push((kind, idle::run(kind, &ctx).await.map_err(|e| e.to_string())));
    }
    eprintln!("== publish API ==");
    for &kind in runnable.iter().filter(|_| wanted("publish")) {
        publish.push((
            kind,
            publish::run(kind, &ctx).await.map_err(|e| e.to_string()),
        ));
    }
    eprintln!("== many channels: {} connections ==", scale.channels.0);
    for &kind in runnable.iter().filter(|_| wanted("channels")) {
        channels.push((
            kind,
            channels::run(kind, &ctx).await.map_err(|e| e.to_string()),
        ));
    }
    eprintln!("suite finished in {:.0?}", started.elapsed());
    for (kind, why) in &skipped {
        fanout.push((*kind, Err(why.clone())));
        idle.push((*kind, Err(why.clone())));
        publish.push((*kind, Err(why.clone())));
        channels.push((*kind, Err(why.clone())));
    }
    for outcomes in [
        &mut fanout as &mut dyn SortByKind,
        &mut idle,
        &mut publish,
        &mut channels,
    ] {
        outcomes.sort_by_kind();
    }

    let mut command = format!(
        "cargo run --release -p herald-bench -- suite --scale {}",
        scale.name
    );
    if !args.only.is_empty() {
        command.push_str(&format!(" --only {}", args.only.join(",")));
    }
    if !args.scenarios.is_empty() {
        command.push_str(&format!(" --scenarios {}", args.scenarios.join(",")));
    }
    if let Some(n) = args.publishers {
        command.push_str(&format!(" --publishers {n}"));
    }
    if let Some(n) = args.fanout_publishers {
        command.push_str(&format!(" --fanout-publishers {n}"));
    }
    let results = Results {
        scale,
        command,
        versions,
        nofile,
        fanout,
        idle,
        publish,
        channels,
    };
    println!("{}", suite_doc::tables(&results));
    println!("{}", suite_doc::targets(&results));
    let write = args.doc || (results.scale.name == "full" && !args.no_doc);
    if write {
        suite_doc::write(&results, &args.doc_path)?;
        eprintln!("wrote {} and its charts", args.doc_path.display());
    }
    failures(&results, &skipped)
}

trait SortByKind {
    fn sort_by_kind(&mut self);
}

impl<T> SortByKind for Outcomes<T> {
    fn sort_by_kind(&mut self) {
        self.sort_by_key(|(k, _)| Kind::ALL.iter().position(|a| a == k));
    }
}

/// A scenario that failed for a system that could run is a failed suite.
fn failures(results: &Results, skipped: &[(Kind, String)]) -> Result<()> {
    let mut failed = Vec::new();
    let mut check = |scenario: &str, errors: Vec<(Kind, &String)>| {
        for (kind, e) in errors {
            let is_skip = skipped.iter().any(|(k, _)| *k == kind);
            if !is_skip && !e.starts_with("n/a") {
                failed.push(format!("{scenario} / {}: {e}", kind.id()));
            }
        }
    };
    check("fan-out", errors(&results.fanout));
    check("idle", errors(&results.idle));
    check("publish", errors(&results.publish));
    check("channels", errors(&results.channels));
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("\n").into())
    }
}

fn errors<T>(outcomes: &Outcomes<T>) -> Vec<(Kind, &String)> {
    outcomes
        .iter()
        .filter_map(|(k, r)| r.as_ref().err().map(|e| (*k, e)))
        .collect()
}

pub fn workspace_paths() -> Paths {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = crate_dir
        .ancestors()
        .nth(2)
        .unwrap_or(crate_dir)
        .to_path_buf();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| if t.is_absolute() { t } else { root.join(t) })
        .unwrap_or_else(|| root.join("target"));
    Paths { root, target }
}

/// Builds the release binaries of `packages` that a benchmark starts, so it
/// never runs stale ones.
pub fn build(root: &Path, packages: &[&str]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let args: Vec<&str> = packages.iter().flat_map(|p| ["-p", p]).collect();
    eprintln!("building: cargo build --release {}", args.join(" "));
    let status = Command::new(cargo)
        .args(["build", "--release", "--quiet"])
        .args(&args)
        .current_dir(root)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("cargo build failed: {status}").into());
    }
    Ok(())
}

fn unavailable(kind: Kind, paths: &Paths, scale: &str) -> Option<String> {
    match kind {
        Kind::Herald => {
            let bin = peers::herald::binary(paths);
            (!bin.exists()).then(|| format!("{} missing", bin.display()))
        }
        Kind::Baseline => {
            let bin = peers::baseline::binary(paths);
            (!bin.exists()).then(|| format!("{} missing", bin.display()))
        }
        Kind::Sockudo => peers::sockudo::unavailable(paths, scale),
        Kind::SocketIo => peers::socketio::prepare(paths).err().map(|e| e.to_string()),
        Kind::Django => peers::django::unavailable(paths),
    }
}

fn version(kind: Kind, paths: &Paths) -> String {
    match kind {
        Kind::Herald => peers::herald::version(paths),
        Kind::Baseline => {
            let lock = std::fs::read_to_string(paths.root.join("Cargo.lock")).unwrap_or_default();
            let axum = lock
                .split("[[package]]")
                .find(|p| p.contains("name = \"axum\"\n"))
                .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = ")))
                .map_or("unknown".into(), |v| v.trim_matches('"').to_string());
            format!(
                "rust-baseline {} (axum {axum}, tokio broadcast)",
                env!("CARGO_PKG_VERSION")
            )
        }
        Kind::Sockudo => peers::sockudo::version(paths),
        Kind::SocketIo => peers::socketio::version(paths),
        Kind::Django => peers::django::version(paths),
    }
}
