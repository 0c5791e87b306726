//! The access line: one request's [`AccessRecord`], written by one function
//! into a reused per-thread buffer and handed to the log writer in one
//! write, instead of a `tracing` event of 17 fields through a formatter.
//! That event cost about 20k instructions a request (bench/findings.md);
//! this costs a fraction: integers and the latency without `fmt`, no
//! escaping scan for what is already known visible ASCII (ids, method,
//! protocol, gRPC code, outcome), escaping only for arbitrary text (service
//! name, path, user agent, request id's quotes and backslashes).
//!
//! It is still the same line as before, in the same schema as every other
//! line: JSON as [`super::JsonLines`] writes it, text as tracing-subscriber's
//! default formatter does (the tests compare both with what those formatters
//! write for the same fields), with the timestamp, level and target the
//! other lines have, through the same non-blocking writer. `RUST_LOG`
//! still decides (the caller checks `tracing::enabled!` for the line's
//! target), and the line goes where the current subscriber writes: the
//! [`AccessLines`] layer that [`super::subscriber`] adds holds the format
//! and the writer, and a subscriber without it writes no access lines.

use std::{
    cell::RefCell,
    io::Write as _,
    net::{IpAddr, SocketAddr},
    time::{Duration, SystemTime},
};

use tracing::Subscriber;
use tracing_subscriber::{Layer, fmt::MakeWriter};

use super::{
    LogFormat,
    line_bytes::{ANSI, JSON, Line, TEXT, name},
    line_values::{write_ip, write_socket_address},
};

/// Longest path or user agent written to a line; the rest is cut and `...`
/// says so.
pub(crate) const MAX_LOGGED_TEXT: usize = 256;

/// What one access line says, borrowed from the request's entry.
#[derive(Debug, Clone)]
pub(crate) struct AccessRecord<'a> {
    /// The `target` of the line: the module that decides it is written.
    pub(crate) target: &'static str,
    pub(crate) service: &'a str,
    /// Visible ASCII (the request id's rule); absent if it were not.
    pub(crate) request_id: Option<&'a str>,
    pub(crate) trace_id: [u8; 16],
    pub(crate) span_id: [u8; 8],
    pub(crate) parent_span_id: Option<[u8; 8]>,
    /// `1-5759e988-bd862e3fe1be46a994272793`: hex digits and dashes.
    pub(crate) amzn_trace_root: Option<[u8; 35]>,
    /// A method token (visible ASCII without quotes or backslashes).
    pub(crate) method: &'a str,
    pub(crate) resource: Resource<'a>,
    pub(crate) protocol: &'static str,
    pub(crate) status: u16,
    pub(crate) grpc_code: Option<&'static str>,
    pub(crate) latency: Duration,
    pub(crate) client: Option<IpAddr>,
    pub(crate) peer: Option<SocketAddr>,
    /// As sent (cut at [`MAX_LOGGED_TEXT`] when written).
    pub(crate) user_agent: Option<&'a str>,
    pub(crate) outcome: &'static str,
}

/// What was asked for: a REST path or a gRPC method (each cut at
/// [`MAX_LOGGED_TEXT`] when written).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Resource<'a> {
    Path(&'a str),
    Rpc(&'a str),
}

/// The layer that gives the access line its format and writer: it does
/// nothing with events, it is found by type in the current subscriber.
pub struct AccessLines {
    format: LogFormat,
    ansi: bool,
    output: Output,
}

/// Hands one whole line to the log writer.
type Output = Box<dyn Fn(&[u8]) + Send + Sync>;

impl AccessLines {
    pub fn new<W>(format: LogFormat, ansi: bool, writer: W) -> Self
    where
        W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
    {
        Self {
            format,
            ansi,
            // One write per line, like tracing-subscriber's: the
            // non-blocking writer queues (or drops) it whole.
            output: Box::new(move |line| {
                let _ = writer.make_writer().write_all(line);
            }),
        }
    }
}

impl<S: Subscriber> Layer<S> for AccessLines {}

/// Writes `record`'s line where the current subscriber writes, if it has
/// an [`AccessLines`] layer.
pub(crate) fn write_access_line(record: &AccessRecord<'_>) {
    tracing::dispatcher::get_default(|dispatch| {
        if let Some(lines) = dispatch.downcast_ref::<AccessLines>() {
            with_buffer(|buffer| {
                render(buffer, lines.format, lines.ansi, SystemTime::now(), record);
                (lines.output)(buffer);
            });
        }
    });
}

thread_local! {
    /// The line being written; its capacity is kept for the next one.
    static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn with_buffer(write: impl FnOnce(&mut Vec<u8>)) {
    BUFFER.with(|buffer| match buffer.try_borrow_mut() {
        Ok(mut buffer) => {
            buffer.clear();
            write(&mut buffer);
        }
        // Only if writing a line wrote a line: a buffer of its own.
        Err(_) => write(&mut Vec::new()),
    });
}

/// Room reserved for a line before it is written: most lines fit, so no
/// write of a piece grows the buffer.
const LINE_CAPACITY: usize = 1024;

/// The line of `record` at `now`, in `format`, into `out`.
pub(crate) fn render(
    out: &mut Vec<u8>,
    format: LogFormat,
    ansi: bool,
    now: SystemTime,
    record: &AccessRecord<'_>,
) {
    out.reserve(LINE_CAPACITY);
    match (format, ansi) {
        (LogFormat::Json, _) => render_in(Line::<JSON> { out }, now, record),
        (LogFormat::Text, false) => render_in(Line::<TEXT> { out }, now, record),
        (LogFormat::Text, true) => render_in(Line::<ANSI> { out }, now, record),
    }
}

/// The line in style `S`: JSON as [`super::JsonLines`] writes it; text as
/// tracing-subscriber's default (`Full`) formatter does, with or without
/// its ANSI styles.
fn render_in<const S: u8>(mut line: Line<'_, S>, now: SystemTime, record: &AccessRecord<'_>) {
    line.head(now, record.target);
    line.text(&name!("service"), record.service);
    if let Some(id) = record.request_id {
        line.text(&name!("request_id"), id);
    }
    line.hex(&name!("trace_id"), &record.trace_id);
    line.hex(&name!("span_id"), &record.span_id);
    if let Some(parent) = &record.parent_span_id {
        line.hex(&name!("parent_span_id"), parent);
    }
    if let Some(root) = &record.amzn_trace_root {
        line.quoted_ascii(&name!("amzn_trace_root"), root);
    }
    line.quoted_ascii(&name!("method"), record.method.as_bytes());
    match record.resource {
        Resource::Path(path) => line.cut_text(&name!("path"), path, MAX_LOGGED_TEXT),
        Resource::Rpc(rpc) => line.cut_text(&name!("rpc"), rpc, MAX_LOGGED_TEXT),
    }
    line.quoted_ascii(&name!("protocol"), record.protocol.as_bytes());
    line.number(&name!("status"), u64::from(record.status));
    if let Some(code) = record.grpc_code {
        line.quoted_ascii(&name!("grpc_code"), code.as_bytes());
    }
    line.latency_ms(&name!("latency_ms"), record.latency);
    if let Some(client) = record.client {
        line.shown(&name!("client"), |out| write_ip(out, client));
    }
    if let Some(peer) = record.peer {
        line.shown(&name!("peer"), |out| write_socket_address(out, peer));
    }
    if let Some(agent) = record.user_agent {
        line.cut_text(&name!("user_agent"), agent, MAX_LOGGED_TEXT);
    }
    line.quoted_ascii(&name!("outcome"), record.outcome.as_bytes());
    line.end();
}

#[cfg(test)]
mod tests;
