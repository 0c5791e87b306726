//! The one connection to the peer outlives callers that give up. A call
//! that ends early resets its stream while the peer's answer may already be
//! on the way; h2 used to count every late frame for a stream it no longer
//! remembered toward a limit that never goes down, and closed the shared
//! connection under every caller once 1,024 were seen. The peer here is a
//! raw HTTP/2 server that answers each RST_STREAM with the frames a real
//! peer could have had in flight, so the late frames are certain, not a race.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

mod common;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use common::{bind, config, frozen_metrics, start_on};
use status_api::v1::GetPeerStatusRequest;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tonic::Code;

/// Calls given up at once per round: the peer calls' default limit, all of
/// them in flight when their deadline passes.
const CALLS_PER_ROUND: usize = 100;
/// With h2's defaults (50 reset streams remembered for 1 s) each round
/// leaves 50 to 100 streams forgotten, each answered by [`LATE_FRAMES`]
/// frames: past the old limit of 1,024 within eight rounds.
const ROUNDS: usize = 16;
const LATE_FRAMES: usize = 3;

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PING: u8 = 6;
const WINDOW_UPDATE: u8 = 8;
const ACK: u8 = 1;
const END_STREAM: u8 = 1;
const END_HEADERS: u8 = 4;
/// HPACK: `:status: 200`, the static table's entry 8.
const STATUS_200: &[u8] = &[0x88];
/// HPACK: `grpc-status: 0`, a literal without indexing.
const GRPC_STATUS_0: &[u8] = b"\x00\x0bgrpc-status\x010";
/// An empty protobuf message in a gRPC frame.
const EMPTY_MESSAGE: &[u8] = &[0; 5];

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let length = u32::try_from(payload.len())
        .expect("small frame")
        .to_be_bytes();
    let mut frame = vec![length[1], length[2], length[3], kind, flags];
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// What the raw peer saw.
#[derive(Default)]
struct PeerCounts {
    connections: AtomicUsize,
    resets: AtomicUsize,
}

/// A peer that never answers a request, and answers every RST_STREAM with
/// a whole gRPC answer on that stream (HEADERS, DATA, trailers): what a
/// peer sends when its answer crosses the reset on the wire.
async fn late_answering_peer() -> (SocketAddr, Arc<PeerCounts>) {
    let listener = bind().await;
    let address = listener.local_addr().expect("bound");
    let counts = Arc::new(PeerCounts::default());
    let seen = Arc::clone(&counts);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            seen.connections.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve_raw(stream, Arc::clone(&seen)));
        }
    });
    (address, counts)
}

async fn serve_raw(stream: TcpStream, counts: Arc<PeerCounts>) -> std::io::Result<()> {
    let (mut read, mut write) = stream.into_split();
    let mut preface = [0; 24];
    read.read_exact(&mut preface).await?;
    write.write_all(&frame(SETTINGS, 0, 0, &[])).await?;
    let mut answered = std::collections::HashSet::new();
    loop {
        let mut head = [0; 9];
        read.read_exact(&mut head).await?;
        let length = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let (kind, flags) = (head[3], head[4]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0; length];
        read.read_exact(&mut payload).await?;
        let answer = match kind {
            SETTINGS if flags & ACK == 0 => frame(SETTINGS, ACK, 0, &[]),
            PING if flags & ACK == 0 => frame(PING, ACK, 0, &payload),
            DATA if length > 0 => {
                let window = u32::try_from(length).expect("small frame").to_be_bytes();
                frame(WINDOW_UPDATE, 0, 0, &window)
            }
            // Once per stream: service-a answers a late frame for a stream
            // it forgot with a RST_STREAM of its own.
            RST_STREAM if answered.insert(stream) => {
                counts.resets.fetch_add(1, Ordering::SeqCst);
                let mut late = frame(HEADERS, END_HEADERS, stream, STATUS_200);
                late.extend(frame(DATA, 0, stream, EMPTY_MESSAGE));
                late.extend(frame(
                    HEADERS,
                    END_HEADERS | END_STREAM,
                    stream,
                    GRPC_STATUS_0,
                ));
                late
            }
            _ => continue,
        };
        write.write_all(&answer).await?;
    }
}

#[tokio::test]
async fn calls_given_up_in_bulk_never_close_the_peer_connection() {
    let (peer, counts) = late_answering_peer().await;
    let mut a_config = config("service-a", peer);
    a_config.peer.max_calls = CALLS_PER_ROUND as u32;
    let a = start_on(bind().await, a_config, frozen_metrics()).await;
    let client = a.grpc().await;

    for round in 0..=ROUNDS {
        // The last round is one call: after a teardown it would reconnect.
        let calls = if round == ROUNDS { 1 } else { CALLS_PER_ROUND };
        let answers: Vec<_> = (0..calls)
            .map(|_| {
                let mut client = client.clone();
                tokio::spawn(async move {
                    let mut request = tonic::Request::new(GetPeerStatusRequest {});
                    request.set_timeout(Duration::from_millis(200));
                    client.get_peer_status(request).await
                })
            })
            .collect();
        for answer in answers {
            let status = answer
                .await
                .expect("call task")
                .expect_err("the peer never answers");
            // service-a's DEADLINE_EXCEEDED, or this client's own timer
            // first (tonic's CANCELLED "Timeout expired").
            assert!(
                matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
                "{status:?}"
            );
        }
        // Time for service-a to read the late frames before the next round.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let resets = counts.resets.load(Ordering::SeqCst);
    // Half at least (on a loaded machine a call may be given up before it
    // was sent): 800 resets bring 2,400 late frames, of which h2's defaults
    // remember at most 50 streams' a second: past 1,024 before the fix.
    assert!(
        resets >= ROUNDS * CALLS_PER_ROUND / 2,
        "the calls given up were reset on the wire: {resets} streams"
    );
    assert_eq!(
        counts.connections.load(Ordering::SeqCst),
        1,
        "service-a kept its one connection to the peer through {resets} resets, \
         each answered by {LATE_FRAMES} late frames"
    );
    a.stop().await;
}
