//! Reverse-lookup names (`in-addr.arpa`, `ip6.arpa`) and the addresses they stand for.
//!
//! A PTR answer is owned by a name such as `4.3.2.1.in-addr.arpa` (the octets of 1.2.3.4,
//! reversed) or 32 reversed hex nibbles under `ip6.arpa`. The store keys reverse lookups by the
//! address itself, so it reads these names back into addresses, in the right order (the
//! reference implementation only strips the suffix and keeps the octets reversed).
//!
//! Only complete, canonical names are read: exactly 4 decimal labels of 0..=255 without leading
//! zeros, or exactly 32 single hex-digit labels; the suffix in any ASCII case, with or without a
//! trailing dot. Partial zones (`2.1.in-addr.arpa`) and RFC 2317 classless names are not
//! addresses.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::name::NameBuf;

const V4_SUFFIX: &[u8] = b".in-addr.arpa";
const V6_SUFFIX: &[u8] = b".ip6.arpa";

/// The address a reverse-lookup name stands for, if `text` is one.
pub fn parse_reverse_name(text: &[u8]) -> Option<IpAddr> {
    let text = text.strip_suffix(b".").unwrap_or(text);
    if let Some(labels) = strip_suffix_ignore_case(text, V4_SUFFIX) {
        return parse_v4_labels(labels).map(IpAddr::V4);
    }
    if let Some(labels) = strip_suffix_ignore_case(text, V6_SUFFIX) {
        return parse_v6_labels(labels).map(IpAddr::V6);
    }
    None
}

/// Writes the reverse-lookup name of `addr` (lowercase, no trailing dot) into `out`.
pub fn reverse_name_of(addr: IpAddr, out: &mut NameBuf) {
    out.clear();
    // Cannot fail: the longest result (ip6.arpa) is 72 bytes.
    let mut push = |label: &[u8]| {
        let _ = out.push_label(label);
    };
    match addr {
        IpAddr::V4(v4) => {
            for octet in v4.octets().iter().rev() {
                let mut digits = [0u8; 3];
                push(decimal(*octet, &mut digits));
            }
            push(b"in-addr");
        }
        IpAddr::V6(v6) => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            for byte in v6.octets().iter().rev() {
                for nibble in [byte & 0x0F, byte >> 4] {
                    let digit = HEX.get(usize::from(nibble)).copied().unwrap_or(b'0');
                    push(&[digit]);
                }
            }
            push(b"ip6");
        }
    }
    push(b"arpa");
}

fn decimal(value: u8, digits: &mut [u8; 3]) -> &[u8] {
    let [h, t, o] = [value / 100, (value / 10) % 10, value % 10];
    *digits = [b'0' + h, b'0' + t, b'0' + o];
    let skip = if h > 0 {
        0
    } else if t > 0 {
        1
    } else {
        2
    };
    digits.get(skip..).unwrap_or_default()
}

fn strip_suffix_ignore_case<'t>(text: &'t [u8], suffix: &[u8]) -> Option<&'t [u8]> {
    let cut = text.len().checked_sub(suffix.len())?;
    let (head, tail) = text.split_at_checked(cut)?;
    tail.eq_ignore_ascii_case(suffix).then_some(head)
}

fn parse_v4_labels(labels: &[u8]) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = labels.split(|&b| b == b'.');
    // Labels are the octets in reverse order.
    for slot in octets.iter_mut().rev() {
        *slot = parse_octet(parts.next()?)?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(Ipv4Addr::from(octets))
}

fn parse_octet(label: &[u8]) -> Option<u8> {
    if label.is_empty() || label.len() > 3 || (label.len() > 1 && label.first() == Some(&b'0')) {
        return None;
    }
    let mut value: u16 = 0;
    for &b in label {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u16::from(b - b'0');
    }
    u8::try_from(value).ok()
}

fn parse_v6_labels(labels: &[u8]) -> Option<Ipv6Addr> {
    // 32 one-digit labels and 31 dots.
    if labels.len() != 63 {
        return None;
    }
    let mut octets = [0u8; 16];
    let mut parts = labels.split(|&b| b == b'.');
    // Nibbles are in reverse order: low nibble of the last byte first.
    for byte in octets.iter_mut().rev() {
        let low = hex_nibble(parts.next()?)?;
        let high = hex_nibble(parts.next()?)?;
        *byte = (high << 4) | low;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(Ipv6Addr::from(octets))
}

fn hex_nibble(label: &[u8]) -> Option<u8> {
    match *label {
        [c] => (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_reverse_names() {
        let ip = parse_reverse_name(b"4.3.2.1.in-addr.arpa").unwrap();
        assert_eq!(ip, IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4)));
        let ip = parse_reverse_name(b"231.92.80.190.IN-ADDR.Arpa.").unwrap();
        assert_eq!(ip, IpAddr::V4(Ipv4Addr::new(190, 80, 92, 231)));
        for bad in [
            &b"3.2.1.in-addr.arpa"[..],
            b"5.4.3.2.1.in-addr.arpa",
            b"256.3.2.1.in-addr.arpa",
            b"04.3.2.1.in-addr.arpa",
            b"0/25.2.0.192.in-addr.arpa",
            b"a.3.2.1.in-addr.arpa",
            b".3.2.1.in-addr.arpa",
            b"in-addr.arpa",
            b"4.3.2.1.in-addr.arpa.com",
            b"4.3.2.1",
            b"",
        ] {
            assert_eq!(
                parse_reverse_name(bad),
                None,
                "{:?}",
                core::str::from_utf8(bad)
            );
        }
    }

    #[test]
    fn ipv6_reverse_names() {
        let text = b"b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.0.0.0.0.1.2.3.4.ip6.arpa";
        let ip = parse_reverse_name(text).unwrap();
        let expected: Ipv6Addr = "4321:0:1:2:3:4:567:89ab".parse().unwrap();
        assert_eq!(ip, IpAddr::V6(expected));
        let mut out = NameBuf::new();
        reverse_name_of(ip, &mut out);
        assert_eq!(out.as_bytes(), &text[..]);
        assert_eq!(parse_reverse_name(&text[2..]), None);
        assert_eq!(
            parse_reverse_name(
                b"g.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.0.0.0.0.1.2.3.4.ip6.arpa"
            ),
            None
        );
    }

    #[test]
    fn names_round_trip() {
        for ip in [
            IpAddr::V4(Ipv4Addr::new(0, 0, 0, 0)),
            IpAddr::V4(Ipv4Addr::new(10, 200, 7, 255)),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
            IpAddr::V6("2606:4700:10::6816:1f".parse().unwrap()),
        ] {
            let mut out = NameBuf::new();
            reverse_name_of(ip, &mut out);
            assert_eq!(parse_reverse_name(out.as_bytes()), Some(ip));
        }
        let mut out = NameBuf::new();
        reverse_name_of(IpAddr::V4(Ipv4Addr::new(10, 200, 7, 255)), &mut out);
        assert_eq!(out.as_str(), Some("255.7.200.10.in-addr.arpa"));
    }
}
