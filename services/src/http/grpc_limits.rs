//! What one gRPC caller can make the server hold.
//!
//! - **Messages**: every request message this port serves is a few bytes
//!   (empty requests, a WatchStatus interval, a health service name, a
//!   reflection question naming a symbol or file), so a message over
//!   [`MAX_REQUEST_MESSAGE_BYTES`] is refused with RESOURCE_EXHAUSTED as
//!   soon as its 5-byte frame header arrives, before tonic buffers any of
//!   it ([`MessageLimit`]); the generated servers decode (and decompress,
//!   gzip or zstd) at most as much too. tonic's default (4 MiB) let ten
//!   streams each sending a 4 MB message minus its last byte hold 40 MB.
//! - **Streams**: Health/Watch and reflection streams live as long as
//!   their clients like, as WatchStatus does; they share its
//!   `MAX_WATCH_STREAMS` slots and end with UNAVAILABLE when the server
//!   stops ([`StreamLimit`]), so a client holding one does not make every
//!   stop wait out `SHUTDOWN_TIMEOUT`.

use std::{
    convert::Infallible,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use bytes::{Buf, Bytes};
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::WaitForCancellationFutureOwned;
use tonic::server::NamedService;
use tower::Service;

use crate::status::Lifecycle;

/// Largest gRPC request message, compressed or not, in bytes. The largest
/// real one, a reflection request naming a symbol, is under 300 bytes;
/// 4 KiB leaves room for any name a client may ask about and bounds what
/// `HTTP2_MAX_CONCURRENT_STREAMS` streams of one connection can make the
/// server hold to 400 KiB.
pub const MAX_REQUEST_MESSAGE_BYTES: usize = 4096;

/// Length of a gRPC message frame's header: a flag byte, a u32 length.
const FRAME_HEADER_BYTES: usize = 5;

pin_project! {
    /// A gRPC request body that fails with RESOURCE_EXHAUSTED at the header
    /// of a message over [`MAX_REQUEST_MESSAGE_BYTES`] (tonic answers the
    /// call with that status). Reads gRPC framing only: for native gRPC and
    /// binary gRPC-Web, not base64 gRPC-Web text.
    pub(crate) struct MessageLimit<B> {
        #[pin]
        inner: B,
        // Bytes of the current frame's header seen so far, and the header.
        header_seen: usize,
        header: [u8; FRAME_HEADER_BYTES],
        // Payload bytes of the current message still to come.
        payload_left: usize,
    }
}

impl<B> MessageLimit<B> {
    pub(crate) fn new(inner: B) -> Self {
        Self {
            inner,
            header_seen: 0,
            header: [0; FRAME_HEADER_BYTES],
            payload_left: 0,
        }
    }
}

/// Walks the gRPC framing of one chunk of a request body; Err at the
/// header of a message over the limit.
fn check_frames(
    mut chunk: &[u8],
    header_seen: &mut usize,
    header: &mut [u8; FRAME_HEADER_BYTES],
    payload_left: &mut usize,
) -> Result<(), tonic::Status> {
    while !chunk.is_empty() {
        if *payload_left > 0 {
            let skipped = (*payload_left).min(chunk.len());
            *payload_left -= skipped;
            chunk = &chunk[skipped..];
            continue;
        }
        let take = (FRAME_HEADER_BYTES - *header_seen).min(chunk.len());
        header[*header_seen..*header_seen + take].copy_from_slice(&chunk[..take]);
        *header_seen += take;
        chunk = &chunk[take..];
        if *header_seen == FRAME_HEADER_BYTES {
            *header_seen = 0;
            let length = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
            let length = usize::try_from(length).unwrap_or(usize::MAX);
            if length > MAX_REQUEST_MESSAGE_BYTES {
                return Err(tonic::Status::resource_exhausted(format!(
                    "request message of {length} bytes: at most {MAX_REQUEST_MESSAGE_BYTES} are accepted"
                )));
            }
            *payload_left = length;
        }
    }
    Ok(())
}

impl<B> Body for MessageLimit<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        let frame = match ready!(this.inner.poll_frame(cx)) {
            Some(Ok(frame)) => frame,
            Some(Err(error)) => return Poll::Ready(Some(Err(error.into()))),
            None => return Poll::Ready(None),
        };
        if let Some(data) = frame.data_ref()
            && let Err(status) = check_frames(
                data.chunk(),
                this.header_seen,
                this.header,
                this.payload_left,
            )
        {
            return Poll::Ready(Some(Err(status.into())));
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A generated gRPC server whose streaming calls (those `is_stream` picks
/// by path) each take one of `MAX_WATCH_STREAMS` slots, RESOURCE_EXHAUSTED
/// when none is free, and end with UNAVAILABLE when the server stops.
#[derive(Clone)]
pub(crate) struct StreamLimit<S> {
    inner: S,
    lifecycle: Arc<Lifecycle>,
    service: Arc<str>,
    is_stream: fn(&str) -> bool,
}

impl<S> StreamLimit<S> {
    pub(crate) fn new(
        inner: S,
        lifecycle: Arc<Lifecycle>,
        service: &str,
        is_stream: fn(&str) -> bool,
    ) -> Self {
        Self {
            inner,
            lifecycle,
            service: service.into(),
            is_stream,
        }
    }
}

impl<S: NamedService> NamedService for StreamLimit<S> {
    const NAME: &'static str = S::NAME;
}

type GrpcBody = tonic::body::Body;

impl<S> Service<Request<GrpcBody>> for StreamLimit<S>
where
    S: Service<Request<GrpcBody>, Response = Response<GrpcBody>, Error = Infallible>,
{
    type Response = Response<GrpcBody>;
    type Error = Infallible;
    type Future = StreamLimitFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<GrpcBody>) -> Self::Future {
        if !(self.is_stream)(request.uri().path()) {
            return StreamLimitFuture::Unary {
                inner: self.inner.call(request),
            };
        }
        match self.lifecycle.open_stream(&self.service) {
            Ok(slot) => {
                let stopping = self.lifecycle.stopping();
                // The request side ends at stop too: reflection reads it in
                // a task of its own until the client closes it, which keeps
                // the HTTP/2 stream (and the connection) open.
                let request = request.map(|inner| {
                    GrpcBody::new(RequestUntilStopped {
                        inner,
                        stopping: stopping.clone().cancelled_owned(),
                    })
                });
                StreamLimitFuture::Stream {
                    inner: self.inner.call(request),
                    hold: Some((slot, stopping.clone().cancelled_owned())),
                }
            }
            Err(status) => StreamLimitFuture::Refused {
                status: Some(status),
            },
        }
    }
}

pin_project! {
    #[project = StreamLimitProjection]
    pub(crate) enum StreamLimitFuture<F> {
        Unary { #[pin] inner: F },
        Stream {
            #[pin]
            inner: F,
            hold: Option<(OwnedSemaphorePermit, WaitForCancellationFutureOwned)>,
        },
        Refused { status: Option<tonic::Status> },
    }
}

impl<F> Future for StreamLimitFuture<F>
where
    F: Future<Output = Result<Response<GrpcBody>, Infallible>>,
{
    type Output = Result<Response<GrpcBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            StreamLimitProjection::Unary { inner } => inner.poll(cx),
            StreamLimitProjection::Stream { inner, hold } => {
                let Ok(response) = ready!(inner.poll(cx));
                let Some((slot, stopping)) = hold.take() else {
                    return Poll::Ready(Ok(response));
                };
                Poll::Ready(Ok(response.map(|inner| {
                    GrpcBody::new(UntilStopped {
                        inner,
                        stopping,
                        _slot: slot,
                        ended: false,
                    })
                })))
            }
            StreamLimitProjection::Refused { status } => Poll::Ready(Ok(status
                .take()
                .unwrap_or_else(|| tonic::Status::internal("polled after completion"))
                .into_http())),
        }
    }
}

pin_project! {
    /// A streaming answer that ends with UNAVAILABLE once the server stops,
    /// holding its slot until it ends.
    struct UntilStopped<B> {
        #[pin]
        inner: B,
        #[pin]
        stopping: WaitForCancellationFutureOwned,
        _slot: OwnedSemaphorePermit,
        ended: bool,
    }
}

impl<B> Body for UntilStopped<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        if *this.ended {
            return Poll::Ready(None);
        }
        if this.stopping.poll(cx).is_ready() {
            *this.ended = true;
            let mut trailers = HeaderMap::with_capacity(2);
            trailers.insert("grpc-status", HeaderValue::from_static("14")); // UNAVAILABLE
            trailers.insert(
                "grpc-message",
                HeaderValue::from_static("server%20is%20shutting%20down"),
            );
            return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
        }
        let frame = ready!(this.inner.poll_frame(cx));
        if !matches!(&frame, Some(Ok(frame)) if frame.is_data()) {
            *this.ended = true;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

pin_project! {
    /// A streaming request that ends when the server stops.
    struct RequestUntilStopped<B> {
        #[pin]
        inner: B,
        #[pin]
        stopping: WaitForCancellationFutureOwned,
    }
}

impl<B: Body<Data = Bytes>> Body for RequestUntilStopped<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        if this.stopping.poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        this.inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(length: u32, payload: usize) -> Vec<u8> {
        let mut frame = vec![0];
        frame.extend_from_slice(&length.to_be_bytes());
        frame.extend(std::iter::repeat_n(7u8, payload));
        frame
    }

    /// Feeds `body` in chunks of `size`; the index of the failing chunk.
    fn first_refused_chunk(body: &[u8], size: usize) -> Option<usize> {
        let (mut seen, mut header, mut left) = (0, [0; FRAME_HEADER_BYTES], 0);
        body.chunks(size)
            .position(|chunk| check_frames(chunk, &mut seen, &mut header, &mut left).is_err())
    }

    #[test]
    fn messages_over_the_limit_are_refused_at_their_header() {
        let max = u32::try_from(MAX_REQUEST_MESSAGE_BYTES).expect("small");
        let mut fine = frame(0, 0);
        fine.extend(frame(2, 2));
        fine.extend(frame(max, MAX_REQUEST_MESSAGE_BYTES));
        for size in [1, 3, 5, 7, 4096, 100_000] {
            assert_eq!(first_refused_chunk(&fine, size), None, "chunks of {size}");
        }
        // A second message too large, whatever the chunking: refused at its
        // header, before its payload.
        let mut large = frame(1, 1);
        large.extend(frame(max + 1, 10));
        for size in [1, 2, 6, 1000] {
            let refused = first_refused_chunk(&large, size).expect("refused");
            assert!(
                refused * size < 6 + 5,
                "chunks of {size}: refused at chunk {refused}"
            );
        }
        assert_eq!(first_refused_chunk(&frame(u32::MAX, 0), 5), Some(0));
    }
}
