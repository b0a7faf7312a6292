//! The floor every real-time server is measured against: a WebSocket server that
//! broadcasts each published body to every connected client, one frame per
//! message, with no protocol, auth, history or batching.
//!
//! `rust-baseline [ADDR]` (default 127.0.0.1:9100) serves:
//! - `GET /ws`: a WebSocket that receives every publication;
//! - `POST /publish`: the body is broadcast as one text frame to every client.
//!
//! It prints `listening on http://ADDR` once bound, like herald.
#![forbid(unsafe_code)]

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::{get, post};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::broadcast;

/// Messages a slow client may lag behind before it skips ahead.
const LAG: usize = 4096;

#[tokio::main]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9100".into());
    let (sender, _) = broadcast::channel::<Utf8Bytes>(LAG);
    let app = Router::new()
        .route("/ws", get(upgrade))
        .route("/publish", post(publish))
        .with_state(sender);
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    println!(
        "listening on http://{}",
        listener.local_addr().expect("bound")
    );
    axum::serve(listener, app).await.expect("serve");
}

async fn publish(State(sender): State<broadcast::Sender<Utf8Bytes>>, body: Bytes) -> String {
    let delivered = match Utf8Bytes::try_from(body) {
        Ok(text) => sender.send(text).unwrap_or(0),
        Err(_) => 0,
    };
    delivered.to_string()
}

async fn upgrade(
    ws: WebSocketUpgrade,
    State(sender): State<broadcast::Sender<Utf8Bytes>>,
) -> Response {
    ws.on_upgrade(move |socket| forward(socket, sender.subscribe()))
}

async fn forward(socket: WebSocket, mut messages: broadcast::Receiver<Utf8Bytes>) {
    let (mut sink, mut stream) = socket.split();
    loop {
        tokio::select! {
            message = messages.recv() => match message {
                Ok(text) => {
                    if sink.send(Message::Text(text)).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            },
            incoming = stream.next() => match incoming {
                Some(Ok(_)) => {}
                _ => return,
            },
        }
    }
}
