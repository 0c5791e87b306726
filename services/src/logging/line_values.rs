//! Ids, timestamps and addresses as the access line shows them, each
//! built as text on the stack and copied into the line once: the values
//! whose std `Display` would go through `fmt` for every request
//! (bench/findings.md has the cost).

use std::{
    cell::Cell,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::{SystemTime, UNIX_EPOCH},
};

/// `id` in lowercase hex, four bytes at a time ([`hex_of_four`]), built on
/// the stack and copied once.
pub(super) fn write_hex(out: &mut Vec<u8>, id: &[u8]) {
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
    use std::time::Duration;

    use super::*;

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
