//! Compiles `proto/` into Rust without a system `protoc`.
//!
//! protox (pure Rust) parses the .proto files into a descriptor set. That one
//! descriptor set feeds everything generated from the contract, so they cannot
//! drift apart:
//! - prost messages and tonic client/server stubs (tonic-prost-build),
//! - proto3 JSON serde impls for the REST gateway (pbjson-build),
//! - the encoded set itself, which server reflection serves.

use std::{env, fs, path::PathBuf};

use prost::Message;

const PROTO_ROOT: &str = "proto";
const PROTO_FILES: &[&str] = &["scdemo/status/v1/status.proto"];
/// Our packages: pbjson generates serde impls for these only (well-known types
/// come from pbjson-types).
const JSON_PACKAGES: &[&str] = &[".scdemo"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);

    let descriptor_set = protox::compile(PROTO_FILES, [PROTO_ROOT])?;
    let descriptor_bytes = descriptor_set.encode_to_vec();
    fs::write(out_dir.join("descriptor_set.bin"), &descriptor_bytes)?;

    // Well-known types map to pbjson-types, which carry proto3 JSON impls
    // (Timestamp as RFC 3339, Duration as "1.5s").
    tonic_prost_build::configure()
        .compile_well_known_types(true)
        .extern_path(".google.protobuf", "::pbjson_types")
        .compile_fds(descriptor_set)?;

    // Keep proto field names (`cpu_percent`, as the original REST API had) and
    // emit fields at their default values, so `cpu_percent: 0` is not dropped.
    pbjson_build::Builder::new()
        .register_descriptors(&descriptor_bytes)?
        .preserve_proto_field_names()
        .emit_fields()
        .build(JSON_PACKAGES)?;
    Ok(())
}
