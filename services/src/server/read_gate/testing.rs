//! Helpers of the read gate's tests: gated connections over in-memory
//! pipes, reads in tasks, and a settle for paused time.

use std::sync::Arc;

use tokio::{
    io::{AsyncReadExt, DuplexStream, duplex},
    task::JoinHandle,
};

use super::{Gated, ReadGate};
use crate::server::activity::Activity;

/// A gated connection that has served a request, and its client's end.
pub(super) fn connection(gate: &Arc<ReadGate>) -> (Gated<DuplexStream>, DuplexStream) {
    let (server, client) = duplex(1024);
    let activity = Arc::new(Activity::new());
    drop(activity.begin());
    (Gated::new(server, Arc::clone(gate), activity), client)
}

/// Reads once in a task; the task ends with what it read.
pub(super) fn read_once(
    mut server: Gated<DuplexStream>,
) -> JoinHandle<(Vec<u8>, Gated<DuplexStream>)> {
    tokio::spawn(async move {
        let mut buffer = [0u8; 64];
        let n = server.read(&mut buffer).await.expect("read");
        (buffer[..n].to_vec(), server)
    })
}

/// Lets spawned tasks run (time is paused: nothing else moves).
pub(super) async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}
