//! The API contract of service-a and service-b, generated from `proto/` by
//! `build.rs`: prost messages, tonic client and server stubs, proto3 JSON
//! (serde) impls, and the descriptor set for server reflection.
//!
//! Other languages generate their clients from the same `proto/` directory.

/// `scdemo.status.v1`: the Status service and its messages.
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/scdemo.status.v1.rs"));
    include!(concat!(env!("OUT_DIR"), "/scdemo.status.v1.serde.rs"));
}

/// Encoded `FileDescriptorSet` of `proto/` and its imports, for server
/// reflection (`grpcurl list` / `describe` without .proto files).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/descriptor_set.bin"));
