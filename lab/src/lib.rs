//! bmc-lab: simulators that bmc-rotate's tests, benchmarks and demo run against.
//!
//! This first layer is the transport every simulator shares: real TLS on loopback with a
//! certificate made at start-up, whose SHA-256 clients pin.

pub mod https;
pub mod tls;

pub use https::HttpsServer;
pub use tls::TlsIdentity;
