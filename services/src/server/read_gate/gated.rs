//! A connection's IO at the read gate: its reads wait at the gate once
//! its first request has begun, unless one of its request bodies is still
//! coming; its writes are never held.

use std::{
    io::{self, IoSlice},
    pin::Pin,
    sync::{Arc, atomic::Ordering},
    task::{Context, Poll},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{Parked, ReadGate};
use crate::server::activity::Activity;

/// A connection's IO whose reads wait at the gate once its first request
/// has begun (`activity`).
#[derive(Debug)]
pub(crate) struct Gated<T> {
    inner: T,
    gate: Arc<ReadGate>,
    activity: Arc<Activity>,
    parked: Option<Arc<Parked>>,
}

impl<T> Gated<T> {
    pub(crate) fn new(inner: T, gate: Arc<ReadGate>, activity: Arc<Activity>) -> Self {
        Self {
            inner,
            gate,
            activity,
            parked: None,
        }
    }
}

impl<T> Drop for Gated<T> {
    fn drop(&mut self) {
        if let Some(parked) = self.parked.take() {
            self.gate.leave(&parked);
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Gated<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let was_granted = this.parked.is_some();
        // A body still coming finishes work admitted: never held back.
        let gated = this.activity.requests_begun() && !this.activity.reading_bodies();
        if !gated {
            if let Some(parked) = this.parked.take() {
                this.gate.leave(&parked);
            }
        } else if this.gate.poll_pass(&mut this.parked, cx).is_pending() {
            return Poll::Pending;
        }
        let filled = buf.filled().len();
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        // Let through but nothing to read: the turn goes to the next.
        if was_granted
            && (read.is_pending() || buf.filled().len() == filled)
            && this.gate.open()
            && this.gate.parked_now.load(Ordering::Acquire) > 0
        {
            this.gate.let_one_through(false);
        }
        read
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Gated<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    use super::{
        super::testing::{connection, read_once, settle},
        *,
    };

    #[tokio::test(start_paused = true)]
    async fn a_connection_is_not_gated_before_its_first_request() {
        let gate = ReadGate::new("test", 1);
        let _held = gate.begin();
        let (server, mut client) = duplex(1024);
        let mut server = Gated::new(server, Arc::clone(&gate), Arc::new(Activity::new()));
        client.write_all(b"GET /healthcheck").await.expect("write");
        let mut buffer = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_millis(10), server.read(&mut buffer))
            .await
            .expect("not parked")
            .expect("read");
        assert_eq!(&buffer[..n], b"GET /healthcheck");
        assert_eq!(gate.parked_total(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn writes_go_on_while_reads_are_parked() {
        let gate = ReadGate::new("test", 1);
        let _held = gate.begin();
        let (server, mut client) = duplex(1024);
        let activity = Arc::new(Activity::new());
        drop(activity.begin());
        let mut server = Gated::new(server, Arc::clone(&gate), activity);
        client.write_all(b"request").await.expect("write");
        let mut buffer = [0u8; 64];
        let parked =
            tokio::time::timeout(Duration::from_millis(50), server.read(&mut buffer)).await;
        assert!(parked.is_err(), "read past the limit");
        server.write_all(b"answer").await.expect("write");
        let n = client.read(&mut buffer).await.expect("read");
        assert_eq!(&buffer[..n], b"answer");
    }

    #[tokio::test(start_paused = true)]
    async fn a_parked_connection_that_closes_gives_its_turn_to_the_next() {
        let gate = ReadGate::new("test", 1);
        let held = gate.begin();
        let (first, _first_client) = connection(&gate);
        let (second, mut second_client) = connection(&gate);
        second_client.write_all(b"next").await.expect("write");
        let first = read_once(first);
        settle().await;
        let second = read_once(second);
        settle().await;
        first.abort();
        settle().await;
        drop(held);
        let (read, _second) = tokio::time::timeout(Duration::from_millis(10), second)
            .await
            .expect("woken by the release, not a tick")
            .expect("task");
        assert_eq!(read, b"next");
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_still_receiving_a_request_body_reads_past_the_gate() {
        let gate = ReadGate::new("test", 1);
        let _held = gate.begin();
        let (server, mut client) = duplex(1024);
        let activity = Arc::new(Activity::new());
        drop(activity.begin());
        let body = activity.body_pending();
        let mut server = Gated::new(server, Arc::clone(&gate), Arc::clone(&activity));
        client.write_all(b"DATA").await.expect("write");
        let mut buffer = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_millis(10), server.read(&mut buffer))
            .await
            .expect("not parked")
            .expect("read");
        assert_eq!(&buffer[..n], b"DATA");
        // Once the body is in, the next read waits.
        drop(body);
        client.write_all(b"HEADERS").await.expect("write");
        let parked =
            tokio::time::timeout(Duration::from_millis(50), server.read(&mut buffer)).await;
        assert!(parked.is_err(), "read past the limit");
    }
}
