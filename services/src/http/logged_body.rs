//! The response body of a request whose access line waits for its end: a
//! gRPC status usually comes in the trailers, after the body, and a stream's
//! latency is its whole life. A body ends with its trailers, with gRPC-Web's
//! trailer frame (the status as the last data frame), or when it says so
//! (`is_end_stream`, after which hyper stops polling it and drops it); a body
//! dropped before its end was cut short.

use std::{
    pin::Pin,
    task::{Context, Poll, ready},
};

use bytes::Buf;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::access_log::{Entry, GRPC_STATUS, Outcome, grpc_code};

pin_project! {
    /// A response body that writes the access line when it ends.
    pub(crate) struct LoggedBody<B> {
        #[pin]
        inner: B,
        pending: Option<(Entry, u16)>,
    }

    impl<B> PinnedDrop for LoggedBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some((entry, status)) = this.project().pending.take() {
                let outcome = entry.cut_short();
                entry.finish(status, None, outcome);
            }
        }
    }
}

impl<B> LoggedBody<B> {
    pub(crate) fn done(inner: B) -> Self {
        Self {
            inner,
            pending: None,
        }
    }

    pub(super) fn pending(inner: B, pending: (Entry, u16)) -> Self {
        Self {
            inner,
            pending: Some(pending),
        }
    }
}

impl<B: Body> Body for LoggedBody<B>
where
    B::Data: Buf,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        let Some((entry, _)) = this.pending.as_ref() else {
            return Poll::Ready(frame);
        };
        // Some(code): the answer is over, with this status if one was seen.
        let ended = match &frame {
            Some(Ok(frame)) => match (frame.trailers_ref(), frame.data_ref()) {
                (Some(trailers), _) => Some(trailers.get(&GRPC_STATUS).map(grpc_code)),
                (None, Some(data)) if entry.protocol.is_grpc_web() => {
                    grpc_web_trailer_status(data.chunk()).map(Some)
                }
                _ => None,
            },
            Some(Err(_)) | None => Some(None),
        };
        // hyper stops polling (and drops) a body once it says it has ended.
        let ended = ended.or_else(|| this.inner.is_end_stream().then_some(None));
        if let Some(grpc_status) = ended
            && let Some((entry, status)) = this.pending.take()
        {
            entry.finish(status, grpc_status, Outcome::Completed);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The status of a gRPC-Web trailer frame (flag 0x80, then the trailers as
/// `name:value\r\n` lines), as tonic-web sends it: one data frame of its
/// own, base64 as a whole when it answers `grpc-web-text` (which it does
/// when the client accepts it, whatever the request's own type). The first
/// byte tells them apart: 0x80 (binary) or `g` (base64 of 0x80), where a
/// message frame starts with 0x00/0x01 or `A`. None for any other frame.
fn grpc_web_trailer_status(chunk: &[u8]) -> Option<tonic::Code> {
    use base64::Engine as _;
    let decoded;
    let frame = match chunk.first()? {
        0x80 => chunk,
        b'g' => {
            decoded = base64::engine::general_purpose::STANDARD
                .decode(chunk)
                .ok()?;
            decoded.as_slice()
        }
        _ => return None,
    };
    let (&flag, rest) = frame.split_first()?;
    if flag != 0x80 || rest.len() < 4 {
        return None;
    }
    let trailers = &rest[4..];
    let code = trailers
        .split(|&byte| byte == b'\n')
        .find_map(|line| {
            let (name, value) = line.split_at(line.iter().position(|&b| b == b':')?);
            name.eq_ignore_ascii_case(b"grpc-status")
                .then(|| value[1..].trim_ascii())
        })
        .map_or(tonic::Code::Unknown, tonic::Code::from_bytes);
    Some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_web_trailer_frames_give_their_status() {
        use base64::Engine as _;
        let frame = |flag: u8, payload: &[u8]| {
            let mut frame = vec![flag];
            frame.extend_from_slice(&u32::try_from(payload.len()).expect("small").to_be_bytes());
            frame.extend_from_slice(payload);
            frame
        };
        let ok = frame(0x80, b"grpc-status:0\r\ngrpc-message:\r\n");
        let late = frame(0x80, b"grpc-message:too%20slow\r\ngrpc-status:4\r\n");
        let message = frame(0, b"\x0a\x00");
        let text = |frame: &[u8]| base64::engine::general_purpose::STANDARD.encode(frame);
        for (chunk, expected) in [
            (ok.clone(), Some(tonic::Code::Ok)),
            (late.clone(), Some(tonic::Code::DeadlineExceeded)),
            (message.clone(), None),
            (text(&ok).into_bytes(), Some(tonic::Code::Ok)),
            (
                text(&late).into_bytes(),
                Some(tonic::Code::DeadlineExceeded),
            ),
            (text(&message).into_bytes(), None),
            (frame(0x80, b"no-status:1\r\n"), Some(tonic::Code::Unknown)),
            (Vec::new(), None),
        ] {
            assert_eq!(
                grpc_web_trailer_status(&chunk),
                expected,
                "{:?}",
                String::from_utf8_lossy(&chunk)
            );
        }
    }
}
