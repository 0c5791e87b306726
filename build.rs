//! Compiles `proto/` into Rust without a system `protoc`.
//!
//! protox (pure Rust) parses the .proto files into descriptors. Everything
//! generated from the contract comes from them, so nothing can drift apart:
//! - prost messages and tonic client/server stubs (tonic-prost-build),
//! - proto3 JSON serde impls for the REST gateway (pbjson-build),
//! - the encoded descriptor set, which server reflection serves,
//! - the REST mapping the contract declares (`google.api.http` options and
//!   the google.api.Service rules of health), as a table for the gateway,
//! - the OpenAPI 3 document of the REST face, which each service serves.

use std::{env, fs, path::PathBuf};

#[path = "build/openapi.rs"]
mod openapi;
#[path = "build/rest_routes.rs"]
mod rest_routes;

const PROTO_ROOT: &str = "proto";
/// Our API. Its descriptor set (with imports) is what reflection serves
/// beside tonic-health's own, and what Rust code is generated from.
const API_FILE: &str = "scdemo/status/v1/status.proto";
/// The health protocol (vendored unmodified): tonic-health brings its code
/// and reflection descriptors; here it is read for its REST mapping only.
const HEALTH_FILE: &str = "grpc/health/v1/health.proto";
/// Files that are only read, never turned into Rust: google.api only
/// declares the `http` option.
const NOT_GENERATED: &[&str] = &["google/api/"];
/// Our package: its methods' `google.api.http` options are the REST face.
const API_PACKAGE: &str = "scdemo.status.v1";
/// REST rules for services whose .proto we must not edit (google.api.Service
/// `http.rules`, as grpc-gateway's grpc_api_configuration reads them).
const SERVICE_CONFIGS: &[&str] = &["scdemo/status/v1/health_http.yaml"];
/// Our packages: pbjson generates serde impls for these only (well-known types
/// come from pbjson-types, Timestamp from `crate::Timestamp`).
const JSON_PACKAGES: &[&str] = &[".scdemo"];

fn compile(files: &[&str]) -> Result<protox::Compiler, protox::Error> {
    let mut compiler = protox::Compiler::new([PROTO_ROOT])?;
    compiler
        .include_source_info(true)
        .include_imports(true)
        .open_files(files)?;
    Ok(compiler)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);

    let api = compile(&[API_FILE])?;
    // Encoded from the pool, so option extensions (google.api.http) are kept;
    // prost_types' copy drops them.
    let descriptor_bytes = api.encode_file_descriptor_set();
    fs::write(out_dir.join("descriptor_set.bin"), &descriptor_bytes)?;

    let mut generated = api.file_descriptor_set();
    generated
        .file
        .retain(|file| !NOT_GENERATED.iter().any(|dir| file.name().starts_with(dir)));
    // Well-known types map to pbjson-types, which carry proto3 JSON impls
    // (Duration as "1.5s"), except Timestamp: pbjson-types writes "+00:00",
    // proto3 JSON requires "Z" (src/timestamp.rs). The more specific extern
    // path wins.
    tonic_prost_build::configure()
        .compile_well_known_types(true)
        .extern_path(".google.protobuf.Timestamp", "crate::Timestamp")
        .extern_path(".google.protobuf", "::pbjson_types")
        .compile_fds(generated)?;

    // Keep proto field names (`cpu_percent`, as the original REST API had) and
    // emit fields at their default values, so `cpu_percent: 0` is not dropped.
    pbjson_build::Builder::new()
        .register_descriptors(&descriptor_bytes)?
        .preserve_proto_field_names()
        .emit_fields()
        .build(JSON_PACKAGES)?;

    // The REST face: our annotations plus health's rules, over both files.
    let pool = compile(&[API_FILE, HEALTH_FILE])?.descriptor_pool();
    let mut routes = rest_routes::from_service_config_files(PROTO_ROOT, SERVICE_CONFIGS)?;
    routes.extend(rest_routes::from_annotations(&pool, API_PACKAGE)?);
    fs::write(
        out_dir.join("rest_routes.rs"),
        rest_routes::to_rust(&routes),
    )?;
    let document = openapi::document(&pool, &routes, env!("CARGO_PKG_VERSION"))?;
    fs::write(out_dir.join("openapi.json"), document)?;
    Ok(())
}
