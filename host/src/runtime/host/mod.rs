//! The host side of the plugin contract's imports, one file per interface, written once against
//! host types: the per-version bindings in [`super::wit`] only convert and delegate.
//!
//! Each interface has a small context of its own that lives in the job's store
//! ([`super::job::JobState`]) and a view that borrows it together with the shared pieces it
//! needs (the resource table that holds secret handles, the job's redactor). The views are plain
//! Rust, so the tests below call the imports directly, without any wasm, and the HTTP tests put
//! a scripted BMC behind [`crate::gateway::Outbound`] instead of a TLS server.

pub mod clock;
pub mod guard;
pub mod http;
pub mod log;
pub mod secrets;
