//! Opens many concurrent `WatchStatus` streams to one service, waits until
//! every stream has its first message, holds them, and reports how many
//! lasted. run.sh samples the service's RSS while they are held.
//!
//!     stream-holder ADDRESS STREAMS HOLD_SECONDS [STREAMS_PER_CONNECTION]
//!
//! Streams share connections, STREAMS_PER_CONNECTION (default 100) on each:
//! the server (tonic, hence hyper) advertises no stream limit, but 100 stays
//! under the usual defaults of proxies and other servers. Prints
//! `open: N of M ...` once all are open (run.sh waits for that line), then
//! `held: ...`; exits 1 when a stream failed to open or ended early.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark tool stops on the first error

use std::{
    collections::BTreeMap,
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use status_api::v1::{WatchStatusRequest, status_service_client::StatusServiceClient};
use tokio::sync::mpsc;
use tonic::transport::{Channel, Endpoint};

/// Interval between the messages of each stream.
const INTERVAL: Duration = Duration::from_secs(1);
/// How long all streams may take to open, on top of 1 s per 100 streams.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

fn usage() -> ExitCode {
    eprintln!("usage: stream-holder ADDRESS STREAMS HOLD_SECONDS [STREAMS_PER_CONNECTION]");
    ExitCode::from(2)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize, default: Option<u64>| {
        args.get(i)
            .map_or(default, |a| a.parse::<u64>().ok().filter(|n| *n > 0))
    };
    let (Some(address), Some(streams), Some(hold), Some(per_connection)) = (
        args.first(),
        number(1, None),
        number(2, None),
        number(3, Some(100)),
    ) else {
        return usage();
    };
    match run(address, streams, Duration::from_secs(hold), per_connection).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            println!("failed: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(
    address: &str,
    streams: u64,
    hold: Duration,
    per_connection: u64,
) -> Result<(), String> {
    let endpoint = Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| format!("bad address {address}: {e}"))?
        .connect_timeout(Duration::from_secs(5));
    let connections = streams.div_ceil(per_connection);
    let mut channels = Vec::new();
    for _ in 0..connections {
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| format!("cannot connect to {address}: {e}"))?;
        channels.push(channel);
    }

    let started = Instant::now();
    let messages = Arc::new(AtomicU64::new(0));
    let (opened_tx, mut opened) = mpsc::unbounded_channel();
    let holders: Vec<_> = (0..streams)
        .map(|i| {
            let channel = channels[(i / per_connection) as usize].clone();
            tokio::spawn(watch(channel, opened_tx.clone(), Arc::clone(&messages)))
        })
        .collect();
    drop(opened_tx);

    // Wait for every stream's first message (or its failure).
    let deadline = tokio::time::Instant::now() + OPEN_TIMEOUT + Duration::from_millis(10 * streams);
    let (mut open, mut errors) = (0, BTreeMap::<String, u64>::new());
    while open + errors.values().sum::<u64>() < streams {
        match tokio::time::timeout_at(deadline, opened.recv()).await {
            Ok(Some(Ok(()))) => open += 1,
            Ok(Some(Err(error))) => *errors.entry(error).or_default() += 1,
            Ok(None) => break,
            Err(_) => {
                *errors.entry("timed out opening".into()).or_default() +=
                    streams - open - errors.values().sum::<u64>();
                break;
            }
        }
    }
    println!(
        "open: {open} of {streams} streams on {connections} connections in {} ms",
        started.elapsed().as_millis()
    );
    if open < streams {
        return Err(format!(
            "{} streams did not open: {errors:?}",
            streams - open
        ));
    }

    tokio::time::sleep(hold).await;
    let mut ended = BTreeMap::<String, u64>::new();
    for holder in holders {
        if holder.is_finished() {
            let reason = holder.await.unwrap_or_else(|e| e.to_string());
            *ended.entry(reason).or_default() += 1;
        }
    }
    let lasted = streams - ended.values().sum::<u64>();
    println!(
        "held: {lasted} of {streams} streams for {} s, {} messages received",
        hold.as_secs(),
        messages.load(Ordering::Relaxed)
    );
    if lasted < streams {
        return Err(format!(
            "{} streams ended early: {ended:?}",
            streams - lasted
        ));
    }
    Ok(())
}

/// One stream: reports its opening (first message) on `opened`, then counts
/// messages until the stream ends. Returns why it ended.
async fn watch(
    channel: Channel,
    opened: mpsc::UnboundedSender<Result<(), String>>,
    messages: Arc<AtomicU64>,
) -> String {
    let request = WatchStatusRequest {
        interval: Some(pbjson_types::Duration {
            seconds: INTERVAL.as_secs() as i64,
            nanos: 0,
        }),
    };
    let first = match StatusServiceClient::new(channel)
        .watch_status(request)
        .await
    {
        Ok(response) => {
            let mut stream = response.into_inner();
            match stream.message().await {
                Ok(Some(_)) => Ok(stream),
                Ok(None) => Err("ended before its first message".to_owned()),
                Err(status) => Err(status.to_string()),
            }
        }
        Err(status) => Err(status.to_string()),
    };
    let mut stream = match first {
        Ok(stream) => {
            let _ = opened.send(Ok(()));
            stream
        }
        Err(error) => {
            let _ = opened.send(Err(error.clone()));
            return error;
        }
    };
    loop {
        match stream.message().await {
            Ok(Some(_)) => messages.fetch_add(1, Ordering::Relaxed),
            Ok(None) => return "ended by the server".to_owned(),
            Err(status) => return status.to_string(),
        };
    }
}
