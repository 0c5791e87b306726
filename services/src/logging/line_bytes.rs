//! How the access line writes its values, in each of its three styles
//! (JSON; text as tracing-subscriber's default formatter writes it; the
//! same with its ANSI colours), straight into the line's bytes.
//!
//! Cheap is the point (bench/findings.md): the style is a constant of each
//! copy of the writer ([`Line`]'s `S`), so a field's name is one constant
//! copy; text is copied whole unless a quick scan (16 bytes a step) finds
//! something to escape; ids, addresses, the timestamp and numbers are built
//! on the stack (`line_values.rs`) and copied once. About 2k instructions a line fewer than
//! writing each piece through a style check and a byte-by-byte escape.

use std::{
    convert::Infallible,
    fmt::Write as _,
    time::{Duration, SystemTime},
};

use super::{
    json_lines::json_escaped,
    line_values::{write_hex, write_timestamp},
};

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
}
