//! One Herald server per fuzzing process, on dev defaults with in-memory
//! history and the inbox and chat on SQLite in a temporary directory.
//! Targets call into it directly (no sockets); it listens on loopback only
//! because building it binds a port.

use herald_server::server::RunningServer;
use std::sync::OnceLock;

pub const SECRET: &str = "herald-fuzz-secret";

pub struct Fixture {
    pub runtime: tokio::runtime::Runtime,
    pub server: RunningServer,
    _dir: tempfile::TempDir,
}

pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut config = herald_server::dev::config();
        config.server.listen = "127.0.0.1:0".into();
        config.auth.hmac_secret = SECRET.into();
        config.storage.durable = false;
        config.storage.path = dir.path().to_path_buf();
        // Background tasks (expiry, presence) keep running between inputs.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let server = runtime
            .block_on(herald_server::server::start(&config))
            .expect("the server starts");
        Fixture {
            runtime,
            server,
            _dir: dir,
        }
    })
}
