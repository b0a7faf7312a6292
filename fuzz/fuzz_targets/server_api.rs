//! Server-API request bodies, run as `POST /api/<method>` runs them (after
//! the key check): the first byte picks the method among the core's, the
//! inbox's and chat's, and an unknown one; the rest is the body. The answer
//! must be 200, 400 or 404, with a JSON body.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let methods: Vec<&str> = herald_server::api::KNOWN_METHODS
        .iter()
        .chain(herald_apps::api::METHODS.iter())
        .copied()
        .chain(["no_such_method"])
        .collect();
    let method = methods[usize::from(pick) % methods.len()];
    let fixture = common::fixture();
    fixture.runtime.block_on(async {
        let response = herald_server::api::answer(&fixture.server.app, method, body).await;
        let status = response.status().as_u16();
        assert!(
            matches!(status, 200 | 400 | 404),
            "{method} answered {status}"
        );
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("the body is in memory");
        serde_json::from_slice::<serde_json::Value>(&bytes)
            .unwrap_or_else(|e| panic!("{method}: the answer is not JSON ({e})"));
    });
});
