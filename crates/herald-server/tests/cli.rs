//! The `herald` binary as a user runs it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn herald() -> Command {
    Command::new(env!("CARGO_BIN_EXE_herald"))
}

#[test]
fn version_and_help() {
    let out = herald().arg("version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("herald "));
    let help = herald().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    for command in ["serve", "genconfig", "checkconfig", "gentoken", "version"] {
        assert!(text.contains(command), "--help lists {command}");
    }
}

#[test]
fn genconfig_writes_a_config_that_checkconfig_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("herald.toml");
    let out = herald()
        .args(["genconfig", "--output"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let again = herald()
        .args(["genconfig", "--output"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        !again.status.success(),
        "refuses to overwrite without --force"
    );
    let check = herald().arg("checkconfig").arg(&path).output().unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

/// Runs `herald checkconfig` on a file holding `text`: the exit code and stderr.
fn checkconfig(text: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("herald.toml");
    std::fs::write(&path, text).unwrap();
    let out = herald().arg("checkconfig").arg(&path).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn checkconfig_names_each_bad_key() {
    let (code, stderr) = checkconfig("[server]\nlisten = 5\n[client]\npong_timeout = \"later\"\n");
    assert_eq!(code, Some(1));
    assert!(stderr.contains("server"), "{stderr}");
    assert!(stderr.contains("client.pong_timeout"), "{stderr}");
    assert!(stderr.contains("2 problem(s) found"), "{stderr}");
}

#[test]
fn checkconfig_rejects_a_storage_url_that_is_not_postgres_without_showing_its_password() {
    let (code, stderr) =
        checkconfig("[storage]\nurl = \"mysql://herald:topsecret@db:3306/herald\"\n");
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("error: storage.url: `mysql://herald:***@db:3306/herald` must start with postgres:// or postgresql://"),
        "{stderr}"
    );
    assert!(!stderr.contains("topsecret"), "{stderr}");
    assert!(stderr.contains("1 problem(s) found"), "{stderr}");
    let (code, stderr) =
        checkconfig("[storage]\nurl = \"postgres://herald:topsecret@db:5432/herald\"\n");
    assert_eq!(
        code,
        Some(0),
        "a PostgreSQL url passes without connecting: {stderr}"
    );
}

#[test]
fn gentoken_signs_with_the_configured_secret() {
    let out = herald()
        .args([
            "gentoken",
            "--user",
            "42",
            "--ttl",
            "10m",
            "--info",
            "{\"name\":\"Ann\"}",
            "--channel",
            "orders:1",
        ])
        .env("HERALD_AUTH_HMAC_SECRET", "cli-secret")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<serde_json::Value>(
        token.trim(),
        &jsonwebtoken::DecodingKey::from_secret(b"cli-secret"),
        &validation,
    )
    .unwrap()
    .claims;
    assert_eq!(claims["sub"], "42");
    assert_eq!(claims["channel"], "orders:1");
    assert_eq!(claims["info"]["name"], "Ann");
    let ttl = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
    assert_eq!(ttl, 600);
    let no_secret = herald()
        .args(["gentoken", "--user", "1"])
        .env_remove("HERALD_AUTH_HMAC_SECRET")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&no_secret.stderr).contains("auth.hmac_secret"));
}

#[test]
fn serve_with_dev_defaults_prints_where_to_look_and_stops_on_sigterm() {
    // Dev defaults keep durable history in ./herald-data: run where that is harmless.
    let dir = tempfile::tempdir().unwrap();
    let mut child = herald()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(
        first.starts_with("herald listening on http://127.0.0.1:"),
        "{first}"
    );
    let banner: Vec<String> = lines.by_ref().take(16).map(Result::unwrap).collect();
    let banner = banner.join("\n");
    for expected in [
        "API key:",
        "HMAC secret:",
        "curl -s -X POST",
        "Token (user \"demo\"",
        "Demo:",
        "Admin:",
    ] {
        assert!(
            banner.contains(expected),
            "banner shows {expected}:\n{banner}"
        );
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(Instant::now() < deadline, "herald did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        dir.path().join("herald-data/herald.db").is_file(),
        "dev defaults keep history in SQLite"
    );
}

#[test]
fn checkconfig_rejects_a_redis_broker_that_is_ambiguous_tls_or_without_a_master() {
    let cases = [
        (
            "sentinel_urls = [\"redis://s:26379\"]\nsentinel_master = \"m\"\n\
             cluster_urls = [\"redis://c:7000\"]",
            "error: broker.sentinel_urls / broker.cluster_urls: set one of them, not both",
        ),
        (
            "redis_url = \"rediss://:topsecret@r:6380\"",
            "error: broker.redis_url: `rediss://***@r:6380` must start with redis://",
        ),
        (
            "sentinel_urls = [\"redis://s:26379\"]",
            "error: broker.sentinel_master: name the master the sentinels watch",
        ),
    ];
    for (broker, problem) in cases {
        let (code, stderr) = checkconfig(&format!("[broker]\nkind = \"redis\"\n{broker}\n"));
        assert_eq!(code, Some(1), "{broker}: {stderr}");
        assert!(stderr.contains(problem), "{broker}: {stderr}");
        assert!(stderr.contains("1 problem(s) found"), "{broker}: {stderr}");
        assert!(!stderr.contains("topsecret"), "{stderr}");
    }
    let (code, stderr) = checkconfig(
        "[broker]\nkind = \"redis\"\nsentinel_urls = [\"redis://s:26379\"]\nsentinel_master = \"m\"\n",
    );
    assert_eq!(
        code,
        Some(0),
        "a complete Sentinel setup passes without connecting: {stderr}"
    );
}

#[test]
fn dev_defaults_refuse_a_network_address_without_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let out = herald()
        .args(["serve", "--listen", "0.0.0.0:0"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refusing to serve dev defaults on 0.0.0.0:0"),
        "{stderr}"
    );
    assert!(stderr.contains("herald genconfig"), "{stderr}");
    assert!(
        !dir.path().join("herald-data").exists(),
        "refused before opening storage"
    );
    let env_listen = herald()
        .args(["serve"])
        .env("HERALD_SERVER_LISTEN", "0.0.0.0:0")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(
        env_listen.status.code(),
        Some(1),
        "the variable is checked too"
    );
}

#[test]
fn dev_allow_remote_serves_with_a_loud_warning() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = herald()
        .args(["serve", "--listen", "0.0.0.0:0", "--dev-allow-remote"])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let warning = stderr
        .by_ref()
        .take(3)
        .map(Result::unwrap)
        .collect::<Vec<_>>()
        .join("\n");
    let first = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .next()
        .unwrap()
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        warning.contains("WARNING: dev defaults on 0.0.0.0:0"),
        "{warning}"
    );
    assert!(
        first.starts_with("herald listening on http://0.0.0.0:"),
        "{first}"
    );
    let with_config = herald()
        .args(["serve", "--config", "x.toml", "--dev-allow-remote"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&with_config.stderr).contains("cannot be used with"),
        "the flag is for dev defaults only"
    );
}

#[test]
fn checkconfig_warns_about_the_demo_on_a_network_address() {
    let (code, stderr) =
        checkconfig("[server]\nlisten = \"0.0.0.0:8000\"\n[demo]\nenabled = true\n");
    assert_eq!(code, Some(0), "a warning, not an error: {stderr}");
    assert!(stderr.contains("warning: demo.enabled"), "{stderr}");
    let (_, quiet) = checkconfig("[server]\nlisten = \"127.0.0.1:8000\"\n[demo]\nenabled = true\n");
    assert!(!quiet.contains("warning"), "{quiet}");
}
