//! How the access line writes its values, in each of its three styles
//! (JSON; text as tracing-subscriber's default formatter writes it; the
//! same with its ANSI colours), straight into the line's bytes.
//!
//! Cheap is the point (bench/findings.md): the style is a constant of each
//! copy of the writer ([`Line`]'s `S`), so a field's name is one constant
//! copy; text is copied whole unless a quick scan (16 bytes a step) finds
//! something to escape; ids, addresses, the timestamp and numbers are built
//! on the stack and copied once. About 2k instructions a line fewer than
//! writing each piece through a style check and a byte-by-byte escape.

use std::{
    cell::Cell,
    convert::Infallible,
    fmt::Write as _,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use super::json_lines::json_escaped;

/// The styles, as [`Line`]'s constant.
pub(super) const JSON: u8 = 0;
pub(super) const TEXT: u8 = 1;
pub(super) const ANSI: u8 = 2;

/// nu-ansi-term's dimmed style, as tracing-subscriber paints the time.
const DIMMED: &str = "\x1b[2m";

/// A field's name as each style writes it before the value.
pub(super) struct Name {
    json: &'static str,
    text: &'static str,
    ansi: &'static str,
}

/// The [`Name`] of field `$name`: `,"name":`, ` name=`, or ` name=` in
/// italics with a dimmed `=`.
macro_rules! name {
    ($name:literal) => {
        $crate::logging::line_bytes::Name::new(
            concat!(",\"", $name, "\":"),
            concat!(" ", $name, "="),
            concat!(" \x1b[3m", $name, "\x1b[0m\x1b[2m=\x1b[0m"),
        )
    };
}
pub(super) use name;

impl Name {
    pub(super) const fn new(json: &'static str, text: &'static str, ansi: &'static str) -> Self {
        Self { json, text, ansi }
    }
}

/// Writes values into `out` in style `S`.
pub(super) struct Line<'a, const S: u8> {
    pub(super) out: &'a mut Vec<u8>,
}

impl<const S: u8> Line<'_, S> {
    #[inline(always)]
    fn put(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    #[inline(always)]
    fn name(&mut self, name: &Name) {
        let text = match S {
            JSON => name.json,
            TEXT => name.text,
            _ => name.ansi,
        };
        self.put(text.as_bytes());
    }

    /// Timestamp, level `INFO`, target (a module path) and the message
    /// `request`.
    pub(super) fn head(&mut self, now: SystemTime, target: &str) {
        match S {
            JSON => {
                self.put(br#"{"timestamp":""#);
                write_timestamp(self.out, now);
                self.put(br#"","level":"INFO","target":""#);
                // A module path (identifiers and `::`): nothing to escape.
                self.put(target.as_bytes());
                self.put(br#"","message":"request""#);
            }
            TEXT => {
                write_timestamp(self.out, now);
                self.put(b"  INFO ");
                self.put(target.as_bytes());
                self.put(b": request");
            }
            _ => {
                self.put(DIMMED.as_bytes());
                write_timestamp(self.out, now);
                self.put(
                    concat!("\x1b[0m ", "\x1b[32m", " INFO", "\x1b[0m ", "\x1b[2m").as_bytes(),
                );
                self.put(target.as_bytes());
                self.put(concat!("\x1b[0m", "\x1b[2m", ":", "\x1b[0m", " request").as_bytes());
            }
        }
    }

    pub(super) fn end(&mut self) {
        self.put(if S == JSON { b"}\n" } else { b"\n" });
    }

    /// A string field whose value needs no escaping in either format.
    #[inline(always)]
    pub(super) fn quoted_ascii(&mut self, name: &Name, value: &[u8]) {
        self.name(name);
        self.out.push(b'"');
        self.put(value);
        self.out.push(b'"');
    }

    /// A `%`-shown field (written by `value`): a string in JSON, bare in text.
    #[inline(always)]
    pub(super) fn shown(&mut self, name: &Name, value: impl FnOnce(&mut Vec<u8>)) {
        self.name(name);
        if S == JSON {
            self.out.push(b'"');
        }
        value(self.out);
        if S == JSON {
            self.out.push(b'"');
        }
    }

    /// An id in lowercase hex.
    #[inline(always)]
    pub(super) fn hex(&mut self, name: &Name, id: &[u8]) {
        self.shown(name, |out| write_hex(out, id));
    }

    pub(super) fn number(&mut self, name: &Name, value: u64) {
        self.name(name);
        self.put(itoa::Buffer::new().format(value).as_bytes());
    }

    /// Whole microseconds shown in milliseconds, as the `f64` they make
    /// prints: `0.16` (JSON, Display) or `0.16` / `2.0` (text, Debug).
    pub(super) fn latency_ms(&mut self, name: &Name, latency: Duration) {
        self.name(name);
        // u64 arithmetic: 584,000 years of microseconds.
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let mut digits = itoa::Buffer::new();
        self.put(digits.format(micros / 1000).as_bytes());
        let fraction = micros % 1000;
        if fraction != 0 {
            let text = [
                b'.',
                b'0' + (fraction / 100) as u8,
                b'0' + (fraction / 10 % 10) as u8,
                b'0' + (fraction % 10) as u8,
            ];
            let length = 4
                - usize::from(fraction.is_multiple_of(10))
                - usize::from(fraction.is_multiple_of(100));
            self.put(&text[..length]);
        } else if S != JSON {
            self.put(b".0");
        }
    }

    /// Arbitrary text, escaped for the format.
    pub(super) fn text(&mut self, name: &Name, value: &str) {
        self.name(name);
        self.string(value, false);
    }

    /// Arbitrary text cut at `limit` bytes (on a character boundary), `...`
    /// marking the cut.
    pub(super) fn cut_text(&mut self, name: &Name, value: &str, limit: usize) {
        self.name(name);
        if value.len() <= limit {
            return self.string(value, false);
        }
        let mut end = limit;
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        self.string(&value[..end], true);
    }

    fn string(&mut self, value: &str, cut: bool) {
        self.out.push(b'"');
        if S == JSON {
            if needs_json_escape(value.as_bytes()) {
                let Ok(()) = json_escaped(value, |piece| {
                    self.put(piece.as_bytes());
                    Ok::<(), Infallible>(())
                });
            } else {
                self.put(value.as_bytes());
            }
        } else {
            debug_str_inside(self.out, value);
        }
        // The cut mark goes inside the quotes: `"...cut..."`.
        self.put(if cut { b"...\"" } else { b"\"" });
    }
}

/// Whether any byte of `bytes` is one JSON escapes (a control character, a
/// quote, a backslash): eight bytes a step ([`Word`]).
fn needs_json_escape(bytes: &[u8]) -> bool {
    let (words, rest) = bytes.as_chunks::<8>();
    words.iter().any(|word| {
        let word = Word(u64::from_le_bytes(*word));
        word.any_below(0x20) | word.any_equal(b'"') | word.any_equal(b'\\')
    }) || rest
        .iter()
        .any(|&byte| byte < 0x20 || byte == b'"' || byte == b'\\')
}

/// Whether `bytes` holds anything but printable ASCII other than a quote or
/// a backslash (what Rust's `{:?}` of a `str` writes as it is).
fn needs_debug_escape(bytes: &[u8]) -> bool {
    let (words, rest) = bytes.as_chunks::<8>();
    words.iter().any(|word| {
        let word = Word(u64::from_le_bytes(*word));
        word.any_below(0x20)
            | word.any_high_bit()
            | word.any_equal(0x7f)
            | word.any_equal(b'"')
            | word.any_equal(b'\\')
    }) || rest
        .iter()
        .any(|&byte| !(b' '..=b'~').contains(&byte) || byte == b'"' || byte == b'\\')
}

/// Eight bytes tested at once with integer arithmetic ("SWAR"; the
/// classic zero-byte tests of Hacker's Delight, exact for "is there any").
#[derive(Clone, Copy)]
struct Word(u64);

impl Word {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);

    /// Any byte below `limit` (at most 0x80).
    fn any_below(self, limit: u8) -> bool {
        self.0.wrapping_sub(Self::ONES * u64::from(limit)) & !self.0 & Self::HIGHS != 0
    }

    fn any_equal(self, byte: u8) -> bool {
        Word(self.0 ^ (Self::ONES * u64::from(byte))).any_below(1)
    }

    /// Any byte that is not ASCII.
    fn any_high_bit(self) -> bool {
        self.0 & Self::HIGHS != 0
    }
}

/// The inside of `value`'s Rust `{:?}` (what the text formatter shows,
/// without the quotes): plain printable ASCII directly, anything else
/// through `fmt`.
fn debug_str_inside(out: &mut Vec<u8>, value: &str) {
    if !needs_debug_escape(value.as_bytes()) {
        out.extend_from_slice(value.as_bytes());
        return;
    }
    let mut debug = String::with_capacity(value.len() + 8);
    let _ = write!(debug, "{value:?}");
    // `{:?}` of a str is always quoted.
    let inside = debug
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or(&debug);
    out.extend_from_slice(inside.as_bytes());
}

/// `id` in lowercase hex, four bytes at a time ([`hex_of_four`]), built on
/// the stack and copied once.
fn write_hex(out: &mut Vec<u8>, id: &[u8]) {
    let mut text = [0; 64];
    let id = &id[..id.len().min(32)];
    let (fours, rest) = id.as_chunks::<4>();
    for (digits, four) in text.as_chunks_mut::<8>().0.iter_mut().zip(fours) {
        *digits = hex_of_four(*four);
    }
    let at = fours.len() * 8;
    for (index, byte) in rest.iter().enumerate() {
        let digits = hex_of_four([0, 0, 0, *byte]);
        text[at + 2 * index..at + 2 * index + 2].copy_from_slice(&digits[6..]);
    }
    out.extend_from_slice(&text[..id.len() * 2]);
}

/// Four bytes' eight lowercase hex digits with integer arithmetic: each
/// nibble spread to a byte of its own, then turned into its digit.
fn hex_of_four(bytes: [u8; 4]) -> [u8; 8] {
    let mut x = u64::from(u32::from_be_bytes(bytes));
    x = ((x & 0xffff_0000) << 16) | (x & 0xffff);
    x = ((x & 0x0000_ff00_0000_ff00) << 8) | (x & 0x0000_00ff_0000_00ff);
    x = ((x & 0x00f0_00f0_00f0_00f0) << 4) | (x & 0x000f_000f_000f_000f);
    // '0' + nibble, and 'a' - '0' - 10 more for nibbles from 10.
    let letters = ((x + 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101;
    (x + 0x3030_3030_3030_3030 + letters * 0x27).to_be_bytes()
}

thread_local! {
    /// The last second written (Unix seconds) and its
    /// `YYYY-MM-DDTHH:MM:SS` text: a clock's date is formatted once a second.
    static SECOND: Cell<(u64, [u8; 19])> = const { Cell::new((u64::MAX, [0; 19])) };
}

/// `YYYY-MM-DDTHH:MM:SS.uuuuuuZ` (RFC 3339, UTC, microseconds), as both
/// formatters write it; the date part is formatted once a second a thread.
pub(super) fn write_timestamp(out: &mut Vec<u8>, now: SystemTime) {
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since_epoch.as_secs();
    let (cached, mut date) = SECOND.get();
    if cached != seconds {
        let text = humantime::format_rfc3339_seconds(now).to_string();
        if let Some(prefix) = text.as_bytes().get(..19) {
            date.copy_from_slice(prefix);
            SECOND.set((seconds, date));
        }
    }
    let mut text = [0; 27];
    text[..19].copy_from_slice(&date);
    text[19] = b'.';
    text[26] = b'Z';
    let mut rest = since_epoch.subsec_micros();
    for digit in text[20..26].iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    out.extend_from_slice(&text);
}

/// An IPv4 address's dotted text into `text` from `at`; where it ends.
fn put_ipv4(text: &mut [u8; 24], mut at: usize, ip: Ipv4Addr) -> usize {
    for (index, octet) in ip.octets().into_iter().enumerate() {
        if index > 0 {
            text[at] = b'.';
            at += 1;
        }
        if octet >= 100 {
            text[at] = b'0' + octet / 100;
            at += 1;
        }
        if octet >= 10 {
            text[at] = b'0' + octet / 10 % 10;
            at += 1;
        }
        text[at] = b'0' + octet % 10;
        at += 1;
    }
    at
}

/// An address as std's `Display` writes it.
pub(super) fn write_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(ip) => {
            let mut text = [0; 24];
            let end = put_ipv4(&mut text, 0, ip);
            out.extend_from_slice(&text[..end]);
        }
        // Zero runs, embedded IPv4: std's rules.
        IpAddr::V6(ip) => {
            let _ = std::io::Write::write_fmt(out, format_args!("{ip}"));
        }
    }
}

/// A socket address as std's `Display` writes it (`ip:port`,
/// `[ip%scope]:port`).
pub(super) fn write_socket_address(out: &mut Vec<u8>, address: SocketAddr) {
    match address {
        SocketAddr::V4(address) => {
            let mut text = [0; 24];
            let mut at = put_ipv4(&mut text, 0, *address.ip());
            text[at] = b':';
            at += 1;
            let mut digits = itoa::Buffer::new();
            let port = digits.format(address.port()).as_bytes();
            text[at..at + port.len()].copy_from_slice(port);
            out.extend_from_slice(&text[..at + port.len()]);
        }
        SocketAddr::V6(address) => {
            let _ = std::io::Write::write_fmt(out, format_args!("{address}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The naive definitions the quick scans must agree with.
    fn naive_json(bytes: &[u8]) -> bool {
        bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\')
    }

    fn naive_debug(bytes: &[u8]) -> bool {
        bytes
            .iter()
            .any(|&b| !(b' '..=b'~').contains(&b) || b == b'"' || b == b'\\')
    }

    #[test]
    fn the_quick_scans_find_every_special_byte_at_every_position() {
        for length in 0..40 {
            for at in 0..length {
                for special in [0_u8, 0x1f, b'"', b'\\', b'\n', 0x7f, 0xc3, b' ', b'~', b'a'] {
                    let mut bytes = vec![b'a'; length];
                    bytes[at] = special;
                    assert_eq!(
                        needs_json_escape(&bytes),
                        naive_json(&bytes),
                        "{special:#x} at {at} of {length}"
                    );
                    assert_eq!(
                        needs_debug_escape(&bytes),
                        naive_debug(&bytes),
                        "{special:#x} at {at} of {length}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_quick_scans_agree_on_random_bytes() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..50_000 {
            let length = (next() % 40) as usize;
            // Mostly printable, some of everything.
            let bytes: Vec<u8> = (0..length)
                .map(|_| match next() % 8 {
                    0 => next() as u8,
                    _ => b' ' + (next() % 95) as u8,
                })
                .collect();
            assert_eq!(needs_json_escape(&bytes), naive_json(&bytes), "{bytes:?}");
            assert_eq!(needs_debug_escape(&bytes), naive_debug(&bytes), "{bytes:?}");
        }
    }

    #[test]
    fn addresses_are_written_as_std_displays_them() {
        for text in [
            "0.0.0.0:0",
            "127.0.0.1:8080",
            "10.20.30.40:65535",
            "255.255.255.255:1",
            "1.22.103.9:443",
            "[::1]:5555",
            "[fe80::1%3]:80",
            "[::ffff:10.0.0.1]:9",
        ] {
            let address: SocketAddr = text.parse().unwrap();
            let mut out = Vec::new();
            write_socket_address(&mut out, address);
            assert_eq!(String::from_utf8(out).unwrap(), address.to_string());
            let mut out = Vec::new();
            write_ip(&mut out, address.ip());
            assert_eq!(String::from_utf8(out).unwrap(), address.ip().to_string());
        }
    }

    #[test]
    fn ids_are_lowercase_hex() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for length in 0..=32 {
            for _ in 0..200 {
                let id: Vec<u8> = (0..length)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        state as u8
                    })
                    .collect();
                let mut out = Vec::new();
                write_hex(&mut out, &id);
                let expected: String = id.iter().map(|byte| format!("{byte:02x}")).collect();
                assert_eq!(String::from_utf8(out).unwrap(), expected);
            }
        }
        let mut out = Vec::new();
        write_hex(&mut out, &[0x00, 0x0f, 0xa5, 0xff, 0x09]);
        assert_eq!(out, b"000fa5ff09");
    }

    #[test]
    fn latency_is_written_as_the_f64_of_its_milliseconds_prints() {
        let mut micros: Vec<u64> = (0..20_000).collect();
        micros.extend([
            999_999,
            1_000_000,
            1_000_001,
            86_400_000_000,
            123_456_789_012,
        ]);
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            micros.push(state % 10_000_000_000_000);
        }
        for micros in micros {
            let ms = micros as f64 / 1000.0;
            let latency = Duration::from_micros(micros);
            let mut json = Vec::new();
            Line::<JSON> { out: &mut json }.latency_ms(&name!("latency_ms"), latency);
            let mut text = Vec::new();
            Line::<TEXT> { out: &mut text }.latency_ms(&name!("latency_ms"), latency);
            for (written, expected) in [(json, format!("{ms}")), (text, format!("{ms:?}"))] {
                let written = String::from_utf8(written).unwrap();
                let value = written.rsplit([':', '=']).next().unwrap();
                assert_eq!(value, expected, "{micros} us");
            }
        }
    }

    #[test]
    fn timestamps_are_rfc3339_micros_across_seconds() {
        let start = UNIX_EPOCH + Duration::from_micros(1_796_000_000_999_998);
        for step in [0, 1, 2, 3, 1_000_000, 59_000_001, 0, 86_400_000_000] {
            let now = start + Duration::from_micros(step);
            let mut out = Vec::new();
            write_timestamp(&mut out, now);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                humantime::format_rfc3339_micros(now).to_string()
            );
        }
    }
}
