//! A backend's answers to Herald's proxy requests, judged as the core judges
//! them: the first byte picks the event (connect, refresh, subscribe,
//! publish, sub_refresh, rpc), the rest is the answer's body. Whatever the
//! body, judging must not panic, and a disconnect it yields must carry a
//! code in 3000-4999 (the range the WebSocket close frame may carry).
#![no_main]

use herald_core::proxy::{self, ProxyKind, Verdict};
use libfuzzer_sys::fuzz_target;

fn check<T: serde::de::DeserializeOwned>(kind: ProxyKind, body: &[u8]) {
    let answer = Ok(bytes::Bytes::copy_from_slice(body));
    if let Ok(Verdict::Disconnect(disconnect)) = proxy::judge::<T>(kind, answer) {
        assert!(
            (3000..5000).contains(&disconnect.code),
            "disconnect code {} outside 3000-4999",
            disconnect.code
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let kind = ProxyKind::ALL[selector as usize % ProxyKind::ALL.len()];
    match kind {
        ProxyKind::Connect => check::<proxy::ConnectResult>(kind, body),
        ProxyKind::Refresh | ProxyKind::SubRefresh => check::<proxy::RefreshResult>(kind, body),
        ProxyKind::Subscribe => check::<proxy::SubscribeResult>(kind, body),
        ProxyKind::Publish => check::<proxy::PublishResult>(kind, body),
        ProxyKind::Rpc => check::<proxy::RpcResult>(kind, body),
    }
});
