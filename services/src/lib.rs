//! service-a and service-b: one codebase, one binary, configured by
//! environment. Each instance serves gRPC (Status, Health, reflection) and
//! the REST gateway on one port and calls its peer over gRPC.
//!
//! `main.rs` only parses the command line and calls into this library, so
//! tests run the real thing in-process.

pub mod client;
pub mod config;
pub mod ecs;
pub mod emf;
pub mod fd_limit;
pub mod http;
pub mod local;
pub mod logging;
pub mod metrics;
pub mod peer;
pub mod server;
pub mod shutdown;
pub mod status;
mod telemetry;
mod throttle;
pub mod topology;
