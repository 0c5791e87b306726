//! The allocator A/B: `service-ab` (the service's own app and log
//! pipeline, same environment; `BENCH_LOGS=ours` is what `status-service`
//! does) with mimalloc as the global allocator instead of glibc's malloc.
//! Compared with `service-ab` itself, built in the same crate with the same
//! features, so the allocator is the only difference
//! (bench/allocator-ab.sh).
//!
//!     service-mimalloc serve

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "service-ab.rs"]
mod service_ab;

fn main() {
    service_ab::main();
}
