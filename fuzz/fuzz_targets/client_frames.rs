//! Client frames into a session: the newline-delimited splitter, the command
//! decoder and every command's path through the core. Frames are separated by
//! 0xFF, a byte valid UTF-8 never holds; an odd first byte connects the
//! session first with a valid token, so commands after connect are reached.
//! Whatever the input, every frame the server queues must be JSON lines.
#![no_main]

#[path = "common.rs"]
mod common;

use herald_core::{Node, Outbox, Session, session::Step};
use herald_protocol::Disconnect;
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};

/// A connection token for user `fuzzer`.
fn token() -> &'static str {
    static TOKEN: OnceLock<String> = OnceLock::new();
    TOKEN.get_or_init(|| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &serde_json::json!({"sub": "fuzzer"}),
            &jsonwebtoken::EncodingKey::from_secret(common::SECRET.as_bytes()),
        )
        .expect("a token")
    })
}

async fn drive(session: &mut Session, node: &Node, frame: &[u8]) -> Result<(), Disconnect> {
    let mut step = session.handle_frame(frame);
    loop {
        let Step::Await(wait) = step? else {
            return Ok(());
        };
        step = session.resume(frame, node.prepare(wait).await);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, frames)) = data.split_first() else {
        return;
    };
    let fixture = common::fixture();
    let node = fixture.server.app.node.clone();
    let outbox = Arc::new(Outbox::new(node.limits.outbox));
    let mut session = Session::new(node.clone(), outbox.clone(), Default::default());
    fixture.runtime.block_on(async {
        if flags & 1 == 1 {
            let connect = format!(r#"{{"id":1,"connect":{{"token":"{}"}}}}"#, token());
            drive(&mut session, &node, connect.as_bytes())
                .await
                .expect("a valid connect is accepted");
        }
        for frame in frames.split(|&b| b == 0xFF) {
            if drive(&mut session, &node, frame).await.is_err() {
                break;
            }
        }
        session.close();
        outbox.close(Disconnect::CONNECTION_CLOSED);
        let mut written = Vec::new();
        outbox.drain(&mut written).await;
        for frame in written {
            let text = std::str::from_utf8(&frame).expect("frames are UTF-8");
            for line in text.split('\n') {
                serde_json::from_str::<serde_json::Value>(line)
                    .unwrap_or_else(|e| panic!("a queued line is not JSON ({e}): {line}"));
            }
        }
    });
});
