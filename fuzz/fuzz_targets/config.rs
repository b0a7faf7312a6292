//! The config loader: any text as a config file, with no environment.
//! Loading either fails with messages or yields a config whose warnings
//! can be listed; it never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match herald_server::config::parse(text, "fuzz.toml", &HashMap::new()) {
        Ok(config) => {
            let _ = config.warnings();
        }
        Err(errors) => assert!(!errors.is_empty(), "a failed load says why"),
    }
});
