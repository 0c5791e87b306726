//! The service with another log pipeline, for the A/B cases of the
//! hand-written logging parts: the same library and app as
//! `status-service serve` (same environment), only the subscriber differs.
//! Production code has no switch for this; this binary is the bench's.
//!
//!     BENCH_LOGS=VARIANT service-ab serve
//!
//! | VARIANT | formatter | writer |
//! |---|---|---|
//! | `ours` | our `JsonLines` | our line queue (`logging::stdout_sink`: batches, what `status-service` does) |
//! | `fmt-json` | tracing-subscriber's JSON formatter, fields flattened | the same writer |
//! | `appender` | our `JsonLines` | tracing-appender's non-blocking writer at the same function: lossy, 16,384 lines, its thread writing through a 64 KiB buffer to its own copy of the stdout descriptor (what `status-service` did before the line queue) |
//!
//! Access lines are written by the service's own `AccessLines` in every
//! variant (they do not go through a formatter), so `fmt-json` differs from
//! `ours` only in the other lines, and `appender` measures the writer: the
//! project keeps its own writer only while it beats this one
//! (bench/findings.md).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark tool stops on the first error

use std::{
    fs::File,
    io::{self, BufWriter},
    os::fd::AsFd,
};

use clap::Parser;
use status_services::{
    config::{Cli, Command, LogFormat},
    emf,
    logging::{self, AccessLines, JsonLines},
    metrics::Metrics,
    server,
};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::{EnvFilter, fmt, layer::SubscriberExt};

/// What must live until exit for the chosen pipeline to write everything.
enum Guard {
    Ours(#[allow(dead_code)] logging::LogGuard),
    Appender(#[allow(dead_code)] tracing_appender::non_blocking::WorkerGuard),
}

fn filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

fn install(variant: &str) -> Guard {
    match variant {
        "ours" => {
            let (writer, guard) = logging::init(LogFormat::Json).expect("RUST_LOG");
            emf::set_output(writer);
            Guard::Ours(guard)
        }
        "fmt-json" => {
            let (writer, guard) = logging::stdout_sink().expect("log writer thread");
            emf::set_output(writer.clone());
            let subscriber = fmt()
                .with_env_filter(filter())
                .with_writer(writer.clone())
                .json()
                .flatten_event(true)
                .finish()
                .with(AccessLines::new(LogFormat::Json, false, writer));
            tracing::subscriber::set_global_default(subscriber).expect("one subscriber");
            Guard::Ours(guard)
        }
        "appender" => {
            let stdout = File::from(io::stdout().as_fd().try_clone_to_owned().expect("stdout"));
            let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
                .lossy(true)
                .buffered_lines_limit(logging::MAX_QUEUED_LINES)
                .thread_name("log-writer")
                .finish(BufWriter::with_capacity(64 * 1024, stdout));
            let subscriber = fmt()
                .with_env_filter(filter())
                .with_writer(writer.clone())
                .event_format(JsonLines)
                .finish()
                .with(AccessLines::new(LogFormat::Json, false, writer));
            tracing::subscriber::set_global_default(subscriber).expect("one subscriber");
            Guard::Appender(guard)
        }
        other => {
            eprintln!("service-ab: unknown BENCH_LOGS '{other}' (ours, fmt-json, appender)");
            std::process::exit(2);
        }
    }
}

pub(crate) fn main() {
    let Ok(Cli {
        command: Some(Command::Serve(args)),
        ..
    }) = Cli::try_parse()
    else {
        eprintln!("usage: BENCH_LOGS=ours|fmt-json|appender service-ab serve");
        std::process::exit(2);
    };
    let guard = install(&std::env::var("BENCH_LOGS").unwrap_or_else(|_| "ours".into()));
    let config = args.service_config().expect("configuration");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let metrics = Metrics::start(args.runtime.metrics_interval).expect("metrics");
        let shutdown = CancellationToken::new();
        let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let stop = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            stop.cancel();
        });
        let listener = tokio::net::TcpListener::bind(config.listen_address)
            .await
            .expect("cannot listen");
        server::serve(config, listener, metrics, shutdown)
            .await
            .expect("server failed");
    });
    drop(runtime);
    drop(guard);
}
