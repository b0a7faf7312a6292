//! The pages Herald serves besides its endpoints: embedded assets, the demo
//! and the admin page.
//!
//! - `web/assets.rs`: every file under `assets/`, compiled in by `build.rs`.
//! - `web/demo.rs`: `/` and the demo's stand-in backend (`[demo] enabled`).
//! - `web/admin.rs`: `/admin` behind HTTP Basic auth (`[admin] password`).
//! - `web/throttle.rs`: per-IP throttling of wrong admin passwords.

pub mod admin;
pub mod assets;
pub mod demo;
pub mod throttle;
