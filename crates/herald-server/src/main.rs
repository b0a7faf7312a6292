use clap::Parser;
use herald_server::cli::{Cli, Command};
use herald_server::{config, dev, genconfig, server, shutdown, tokens};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// After a burst over many channels, glibc's malloc keeps the peak resident
/// for good (200 MiB after a 10,000-channel churn that should leave nothing).
/// jemalloc's background thread purges what was freed once it has been idle
/// for its decay time (10 s), even when the node does nothing else, so an
/// idle node shrinks back; mimalloc kept twice the baseline in the same run.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let env: HashMap<String, String> = std::env::vars().collect();
    match cli.command {
        Command::Version => {
            println!("herald {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Checkconfig { file } => match config::load(Some(&file), &env) {
            Ok(config) => {
                let warnings = config.warnings();
                for warning in &warnings {
                    eprintln!("warning: {warning}");
                }
                match warnings.len() {
                    0 => println!("{}: ok", file.display()),
                    n => println!("{}: ok, with {n} warning(s)", file.display()),
                }
                ExitCode::SUCCESS
            }
            Err(errors) => report(&errors),
        },
        Command::Genconfig { output, force } => {
            if output.exists() && !force {
                eprintln!(
                    "error: {} exists; pass --force to overwrite it",
                    output.display()
                );
                return ExitCode::FAILURE;
            }
            match std::fs::write(&output, genconfig::render()) {
                Ok(()) => {
                    println!(
                        "wrote {} with fresh secrets; run: herald serve --config {}",
                        output.display(),
                        output.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: cannot write {}: {e}", output.display());
                    ExitCode::FAILURE
                }
            }
        }
        Command::Gentoken {
            user,
            ttl,
            info,
            channel,
            config,
        } => gentoken(
            &env,
            config.as_deref(),
            &user,
            &ttl,
            info.as_deref(),
            channel.as_deref(),
        ),
        Command::Serve {
            config,
            listen,
            dev_allow_remote,
        } => serve(&env, config.as_deref(), listen, dev_allow_remote),
    }
}

fn report(errors: &[String]) -> ExitCode {
    for error in errors {
        eprintln!("error: {error}");
    }
    eprintln!("{} problem(s) found", errors.len());
    ExitCode::FAILURE
}

fn gentoken(
    env: &HashMap<String, String>,
    path: Option<&Path>,
    user: &str,
    ttl: &str,
    info: Option<&str>,
    channel: Option<&str>,
) -> ExitCode {
    let config = match config::load(path, env) {
        Ok(config) => config,
        Err(errors) => return report(&errors),
    };
    let ttl = match ttl {
        "0" | "none" => None,
        ttl => match config::parse_duration("--ttl", ttl) {
            Ok(ttl) => Some(ttl),
            Err(e) => return report(&[e]),
        },
    };
    match tokens::mint(&config.auth.hmac_secret, user, ttl, info, channel) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => report(&[e.to_string()]),
    }
}

fn serve(
    env: &HashMap<String, String>,
    path: Option<&Path>,
    listen: Option<String>,
    dev_allow_remote: bool,
) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HERALD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let (mut config, dev_mode) = match path {
        Some(path) => match config::load(Some(path), env) {
            Ok(config) => (config, false),
            Err(errors) => return report(&errors),
        },
        None => {
            let mut config = dev::config();
            // The few keys worth pinning while trying things out (say, to keep
            // a Django app's secrets across restarts); a config file takes all.
            for (variable, value) in [
                ("HERALD_SERVER_LISTEN", &mut config.server.listen),
                ("HERALD_AUTH_HMAC_SECRET", &mut config.auth.hmac_secret),
                ("HERALD_API_KEY", &mut config.api.key),
                ("HERALD_ADMIN_PASSWORD", &mut config.admin.password),
            ] {
                if let Some(given) = env.get(variable) {
                    *value = given.clone();
                }
            }
            (config, true)
        }
    };
    if let Some(listen) = listen {
        config.server.listen = listen;
    }
    if dev_mode {
        match dev::check_listen(&config.server.listen, dev_allow_remote) {
            Ok(None) => {}
            Ok(Some(warning)) => {
                eprintln!("{warning}");
                tracing::warn!(listen = %config.server.listen, "dev defaults exposed beyond loopback");
            }
            Err(refusal) => return report(&[refusal]),
        }
    }
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return report(&[format!("cannot start the runtime: {e}")]),
    };
    runtime.block_on(async move {
        let running = match server::start(&config).await {
            Ok(running) => running,
            Err(e) => return report(&[e.to_string()]),
        };
        let url = format!("http://{}", running.addr);
        let mut stdout = std::io::stdout();
        let _ = writeln!(stdout, "herald listening on {url}");
        if dev_mode {
            let _ = writeln!(stdout, "{}", dev::banner(&config, &url));
        }
        let _ = stdout.flush();
        shutdown::os_signal().await;
        running.shutdown().await;
        ExitCode::SUCCESS
    })
}
