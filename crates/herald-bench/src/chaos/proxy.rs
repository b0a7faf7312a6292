//! A TCP proxy between a node and Redis that can stop forwarding while
//! keeping every socket open (a blackhole: a dead switch, a paused VM) or
//! hold every chunk for a while before passing it on (a latency spike).

use crate::Result;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    Forward,
    /// Nothing passes in either direction; sockets stay open.
    Blackhole,
    /// Each chunk passes this long after it arrived, in each direction.
    Delay(Duration),
}

/// Chunks read ahead per direction; when full, reading stops and TCP's own
/// flow control pushes back on the sender.
const BUFFERED_CHUNKS: usize = 1024;

pub struct Proxy {
    pub port: u16,
    mode: Arc<watch::Sender<Mode>>,
    tasks: JoinSet<()>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards every connection to `upstream`.
    pub async fn start(upstream: u16) -> Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let mode = Arc::new(watch::channel(Mode::Forward).0);
        let mut tasks = JoinSet::new();
        let accepting = mode.clone();
        tasks.spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let mode = accepting.clone();
                connections.spawn(async move {
                    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                        return;
                    };
                    let _ = (client.set_nodelay(true), server.set_nodelay(true));
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    let up = pipe(client_read, server_write, mode.subscribe());
                    let down = pipe(server_read, client_write, mode.subscribe());
                    // Either side closing ends the pair, as a real hop would.
                    tokio::select! { _ = up => {}, _ = down => {} }
                });
                // Reap finished connections so the set does not grow forever.
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(Proxy { port, mode, tasks })
    }

    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}

/// Copies one direction: a reader that stamps each chunk with its arrival,
/// and a writer that passes it on when the mode allows.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(BUFFERED_CHUNKS);
    let reader = async move {
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            match from.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx
                        .send((Instant::now(), buffer[..n].to_vec()))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    };
    let writer = async move {
        while let Some((arrived, chunk)) = rx.recv().await {
            loop {
                let current = *mode.borrow_and_update();
                match current {
                    Mode::Forward => break,
                    Mode::Delay(delay) => {
                        // A mode change cuts the wait short and is looked at again.
                        tokio::select! {
                            _ = tokio::time::sleep_until((arrived + delay).into()) => break,
                            changed = mode.changed() => if changed.is_err() { return },
                        }
                    }
                    Mode::Blackhole => {
                        if mode.changed().await.is_err() {
                            return;
                        }
                    }
                }
            }
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
    };
    // The writer drains what the reader read before the end of the stream.
    tokio::join!(reader, writer);
}
