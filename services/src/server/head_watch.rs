//! Watches the bytes a client sends for unfinished request heads, so that
//! `HEADER_READ_TIMEOUT` bounds them on both protocols, as hyper does not:
//! hyper's HTTP/1.1 timer also runs while a keep-alive connection waits for
//! its next request (closing idle connections early), and neither hyper-util's
//! protocol sniffing nor h2 bounds a partial preface, an unfinished
//! handshake or a header block trickled in CONTINUATION frames.
//!
//! A head is being read (see [`Activity::head_begun`]):
//! - from the first byte until the protocol is known and, on HTTP/2, until
//!   the client's first SETTINGS frame has arrived (the handshake);
//! - HTTP/1.1: from a byte that comes with no request in flight until the
//!   app is called with the request;
//! - HTTP/2: from a HEADERS frame until the end of the frame that carries
//!   END_HEADERS (CONTINUATION frames included).
//!
//! Only frame headers are read (9 bytes per frame); payloads are skipped.

use std::{
    io::{self, IoSlice},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::activity::Activity;

const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER_LEN: usize = 9;
const HEADERS: u8 = 0x1;
const SETTINGS: u8 = 0x4;
const CONTINUATION: u8 = 0x9;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;

/// Where the reader is in the client's byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    /// This many bytes matched the HTTP/2 preface so far.
    Sniffing(usize),
    Http1,
    /// HTTP/2, this many bytes of a frame header read.
    FrameHeader([u8; FRAME_HEADER_LEN], usize),
    /// HTTP/2, inside a frame's payload.
    Payload {
        left: u32,
        ends: FrameEnd,
    },
}

/// What the end of the current HTTP/2 frame means for heads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FrameEnd {
    Nothing,
    Handshake,
    HeaderBlock,
}

/// Follows the client's bytes and tells `activity` when heads begin and end.
#[derive(Debug)]
pub(crate) struct HeadTracker {
    position: Position,
    handshake_done: bool,
    activity: Arc<Activity>,
}

impl HeadTracker {
    pub(crate) fn new(activity: Arc<Activity>) -> Self {
        activity.head_begun();
        Self {
            position: Position::Sniffing(0),
            handshake_done: false,
            activity,
        }
    }

    pub(crate) fn read(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match self.position {
                Position::Sniffing(matched) => {
                    let take = bytes.len().min(PREFACE.len() - matched);
                    if bytes[..take] != PREFACE[matched..matched + take] {
                        self.position = Position::Http1;
                        self.activity.set_http1();
                        continue;
                    }
                    bytes = &bytes[take..];
                    self.position = if matched + take == PREFACE.len() {
                        Position::FrameHeader([0; FRAME_HEADER_LEN], 0)
                    } else {
                        Position::Sniffing(matched + take)
                    };
                }
                Position::Http1 => {
                    if self.activity.in_flight() == 0 {
                        self.activity.head_begun();
                    }
                    return;
                }
                Position::FrameHeader(mut header, have) => {
                    let take = bytes.len().min(FRAME_HEADER_LEN - have);
                    header[have..have + take].copy_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                    self.position = if have + take == FRAME_HEADER_LEN {
                        self.frame_begins(&header)
                    } else {
                        Position::FrameHeader(header, have + take)
                    };
                    self.end_empty_frame();
                }
                Position::Payload { left, ends } => {
                    let take = bytes.len().min(left as usize);
                    bytes = &bytes[take..];
                    self.position = Position::Payload {
                        left: left - take as u32,
                        ends,
                    };
                    self.end_empty_frame();
                }
            }
        }
    }

    fn frame_begins(&mut self, header: &[u8; FRAME_HEADER_LEN]) -> Position {
        let left = u32::from_be_bytes([0, header[0], header[1], header[2]]);
        let (kind, flags) = (header[3], header[4]);
        let ends = match kind {
            SETTINGS if !self.handshake_done && flags & ACK == 0 => FrameEnd::Handshake,
            HEADERS | CONTINUATION => {
                self.activity.head_begun();
                if flags & END_HEADERS != 0 {
                    FrameEnd::HeaderBlock
                } else {
                    FrameEnd::Nothing
                }
            }
            _ => FrameEnd::Nothing,
        };
        Position::Payload { left, ends }
    }

    /// A payload read to its end: the frame is complete.
    fn end_empty_frame(&mut self) {
        let Position::Payload { left: 0, ends } = self.position else {
            return;
        };
        match ends {
            FrameEnd::Handshake => self.handshake_done = true,
            FrameEnd::HeaderBlock => {}
            FrameEnd::Nothing => {
                self.position = Position::FrameHeader([0; FRAME_HEADER_LEN], 0);
                return;
            }
        }
        if self.handshake_done {
            self.activity.head_done();
        }
        self.position = Position::FrameHeader([0; FRAME_HEADER_LEN], 0);
    }
}

pin_project! {
    /// A connection's socket that shows what it reads to a [`HeadTracker`].
    pub(crate) struct HeadWatch<S> {
        #[pin]
        inner: S,
        tracker: HeadTracker,
    }
}

impl<S> HeadWatch<S> {
    pub(crate) fn new(inner: S, activity: Arc<Activity>) -> Self {
        Self {
            inner,
            tracker: HeadTracker::new(activity),
        }
    }
}

impl<S: AsyncRead> AsyncRead for HeadWatch<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        ready!(this.inner.poll_read(cx, buf))?;
        this.tracker.read(&buf.filled()[before..]);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite> AsyncWrite for HeadWatch<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let len = (payload.len() as u32).to_be_bytes();
        let mut frame = vec![len[1], len[2], len[3], kind, flags, 0, 0, 0, 1];
        frame.extend_from_slice(payload);
        frame
    }

    /// Feeds `chunks` one at a time; whether a head is being read after each.
    fn reading_after(chunks: &[&[u8]]) -> Vec<bool> {
        let activity = Arc::new(Activity::new());
        let mut tracker = HeadTracker::new(Arc::clone(&activity));
        chunks
            .iter()
            .map(|chunk| {
                tracker.read(chunk);
                activity.reading_head()
            })
            .collect()
    }

    #[test]
    fn heads_are_tracked_through_http2_frames() {
        let settings = frame(SETTINGS, 0, &[0, 3, 0, 0, 0, 100]);
        let settings_ack = frame(SETTINGS, ACK, &[]);
        let open_block = frame(HEADERS, 0, b"abc");
        let continuation = frame(CONTINUATION, 0, b"de");
        let last = frame(CONTINUATION, END_HEADERS, b"f");
        let whole = frame(HEADERS, END_HEADERS | 0x1, b"abcdef");
        let ping = frame(0x6, 0, &[0; 8]);
        type Case<'a> = (&'a str, Vec<&'a [u8]>, Vec<bool>);
        let cases: &[Case<'_>] = &[
            ("nothing yet", vec![b""], vec![true]),
            ("half a preface", vec![&PREFACE[..10]], vec![true]),
            ("preface only", vec![PREFACE], vec![true]),
            (
                "preface, then SETTINGS a byte at a time",
                vec![PREFACE, &settings[..1], &settings[1..12], &settings[12..]],
                vec![true, true, true, false],
            ),
            (
                "a SETTINGS ack does not complete the handshake",
                vec![PREFACE, &settings_ack, &settings],
                vec![true, true, false],
            ),
            (
                "a header block in three frames",
                vec![
                    PREFACE,
                    &settings,
                    &open_block,
                    &continuation,
                    &last[..4],
                    &last[4..],
                ],
                vec![true, false, true, true, true, false],
            ),
            (
                "a whole HEADERS frame in one read, then a PING",
                vec![PREFACE, &settings, &whole, &ping],
                vec![true, false, false, false],
            ),
            (
                "a HEADERS payload trickled",
                vec![PREFACE, &settings, &whole[..11], &whole[11..]],
                vec![true, false, true, false],
            ),
        ];
        for (name, chunks, expected) in cases {
            assert_eq!(&reading_after(chunks), expected, "{name}");
        }
        // All of it in one read.
        let together = [PREFACE.as_slice(), &settings, &open_block, &last].concat();
        assert_eq!(reading_after(&[&together]), [false]);
    }

    #[test]
    fn http1_heads_end_when_the_request_begins_and_idle_is_no_head() {
        let activity = Arc::new(Activity::new());
        let mut tracker = HeadTracker::new(Arc::clone(&activity));
        tracker.read(b"GET / HTTP/1.1\r\n");
        assert!(activity.reading_head());
        let request = activity.begin();
        assert!(!activity.reading_head(), "the app has the request");
        tracker.read(b"body bytes");
        assert!(!activity.reading_head(), "bytes of a request in flight");
        drop(request);
        assert!(!activity.reading_head(), "idle keep-alive");
        tracker.read(b"G");
        assert!(activity.reading_head(), "the next head");
    }
}
