//! What one source says about one IP address: the record written to the store, its bounds, and
//! how IP addresses are read and normalised. Plain data, no features needed.

use core::fmt;
use core::net::IpAddr;

use crate::time::EpochNanos;

/// Lowest valid severity.
pub const MIN_SEVERITY: u8 = 1;
/// Highest valid severity.
pub const MAX_SEVERITY: u8 = 10;
/// Most tags on one record.
pub const MAX_TAGS: usize = 8;
/// Longest tag, in bytes.
pub const MAX_TAG_LEN: usize = 32;
/// Most metadata pairs on one record.
pub const MAX_METADATA: usize = 4;
/// Longest metadata key, in bytes.
pub const MAX_METADATA_KEY_LEN: usize = 32;
/// Longest metadata value, in bytes.
pub const MAX_METADATA_VALUE_LEN: usize = 128;
/// Longest IP address text accepted: a full IPv6 address with an embedded IPv4 address
/// (`ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255`) is 45 bytes.
pub const MAX_IP_TEXT_LEN: usize = 45;

/// One tag (`"malware"`, `"tor-exit"`).
pub type Tag = heapless::String<MAX_TAG_LEN, u8>;
/// A metadata key.
pub type MetadataKey = heapless::String<MAX_METADATA_KEY_LEN, u8>;
/// A metadata value.
pub type MetadataValue = heapless::String<MAX_METADATA_VALUE_LEN, u8>;
/// A record's tags, in the order written.
pub type Tags = heapless::Vec<Tag, MAX_TAGS, u8>;
/// A record's metadata, in the order written; keys are unique.
pub type Metadata = heapless::Vec<(MetadataKey, MetadataValue), MAX_METADATA, u8>;

/// What a source thinks of an address. Numeric values match the reference
/// (`ReputationUnknown` = 0, then allow, deny, suspicious).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum ReputationStatus {
    /// No opinion.
    #[default]
    Unknown = 0,
    /// Known good (the reference's stale docs say "whitelisted").
    Allow = 1,
    /// Known bad (the reference's stale docs say "blacklisted").
    Deny = 2,
    /// Worth a look.
    Suspicious = 3,
}

impl ReputationStatus {
    /// Lowercase name, as printed by the CLI.
    pub const fn as_str(self) -> &'static str {
        match self {
            ReputationStatus::Unknown => "unknown",
            ReputationStatus::Allow => "allow",
            ReputationStatus::Deny => "deny",
            ReputationStatus::Suspicious => "suspicious",
        }
    }

    /// The status with numeric value `value`, if any.
    pub const fn from_u8(value: u8) -> Option<Self> {
        match value {
            0 => Some(ReputationStatus::Unknown),
            1 => Some(ReputationStatus::Allow),
            2 => Some(ReputationStatus::Deny),
            3 => Some(ReputationStatus::Suspicious),
            _ => None,
        }
    }
}

impl fmt::Display for ReputationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a text is not an IP address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum IpParseError {
    /// The text is empty.
    Empty,
    /// The text is longer than any address ([`MAX_IP_TEXT_LEN`]).
    TooLong,
    /// The text is not a dotted-quad IPv4 or an RFC 4291 IPv6 address (zone suffixes like
    /// `%eth0`, surrounding spaces, ports and brackets are not accepted either).
    Malformed,
}

impl fmt::Display for IpParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IpParseError::Empty => "empty IP address",
            IpParseError::TooLong => "IP address text too long",
            IpParseError::Malformed => "malformed IP address",
        })
    }
}

impl core::error::Error for IpParseError {}

/// The one form an address is stored and compared in: an IPv4-mapped IPv6 address
/// (`::ffff:1.2.3.4`) is the IPv4 address (`1.2.3.4`); everything else is unchanged. IPv6 text case
/// and zero compression do not matter once parsed (`2001:DB8::1` == `2001:db8:0::1`).
pub const fn normalize_ip(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// Parses and normalises an address given as text.
pub fn parse_ip(text: &str) -> Result<IpAddr, IpParseError> {
    if text.is_empty() {
        return Err(IpParseError::Empty);
    }
    if text.len() > MAX_IP_TEXT_LEN {
        return Err(IpParseError::TooLong);
    }
    text.parse::<IpAddr>()
        .map(normalize_ip)
        .map_err(|_| IpParseError::Malformed)
}

/// Anything an address can be given as: text (`"1.2.3.4"`, `"2001:db8::1"`) or a parsed address.
/// Every store method that takes an address takes any of these and normalises it.
pub trait IpInput {
    /// The normalised address, or why the input is not one.
    fn to_ip(&self) -> Result<IpAddr, IpParseError>;
}

impl IpInput for str {
    fn to_ip(&self) -> Result<IpAddr, IpParseError> {
        parse_ip(self)
    }
}

impl IpInput for IpAddr {
    fn to_ip(&self) -> Result<IpAddr, IpParseError> {
        Ok(normalize_ip(*self))
    }
}

impl IpInput for core::net::Ipv4Addr {
    fn to_ip(&self) -> Result<IpAddr, IpParseError> {
        Ok(IpAddr::V4(*self))
    }
}

impl IpInput for core::net::Ipv6Addr {
    fn to_ip(&self) -> Result<IpAddr, IpParseError> {
        Ok(normalize_ip(IpAddr::V6(*self)))
    }
}

impl<T: IpInput + ?Sized> IpInput for &T {
    fn to_ip(&self) -> Result<IpAddr, IpParseError> {
        (**self).to_ip()
    }
}

/// Why a tag or metadata pair could not be added to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RecordError {
    /// Already [`MAX_TAGS`] tags.
    TooManyTags,
    /// The tag is longer than [`MAX_TAG_LEN`].
    TagTooLong,
    /// Already [`MAX_METADATA`] pairs (and the key is new).
    TooManyMetadata,
    /// The key is longer than [`MAX_METADATA_KEY_LEN`].
    MetadataKeyTooLong,
    /// The value is longer than [`MAX_METADATA_VALUE_LEN`].
    MetadataValueTooLong,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RecordError::TooManyTags => "too many tags",
            RecordError::TagTooLong => "tag too long",
            RecordError::TooManyMetadata => "too many metadata pairs",
            RecordError::MetadataKeyTooLong => "metadata key too long",
            RecordError::MetadataValueTooLong => "metadata value too long",
        })
    }
}

impl core::error::Error for RecordError {}

/// What one source says about one address. The store checks it on write
/// ([`IpReputation::check`]); the bounds on counts and lengths are in the types.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct IpReputation {
    /// The address; stored normalised ([`normalize_ip`]) whatever form is given here.
    pub ip: IpAddr,
    /// The verdict.
    pub status: ReputationStatus,
    /// 1 (lowest) to 10 (highest); anything else is refused on write.
    pub severity: u8,
    /// Labels, in order (may repeat); each non-empty, without control characters.
    pub tags: Tags,
    /// When the source last updated this verdict (the source's clock), epoch nanoseconds. The
    /// last-write-wins policy compares this, not the time the store received it.
    pub last_updated: EpochNanos,
    /// Extra key/value pairs; keys unique and non-empty, neither with control characters.
    pub metadata: Metadata,
}

impl IpReputation {
    /// A record for `ip` with no tags and no metadata.
    ///
    /// # Errors
    /// When `ip` is not an address.
    pub fn new<Q: IpInput + ?Sized>(
        ip: &Q,
        status: ReputationStatus,
        severity: u8,
        last_updated: EpochNanos,
    ) -> Result<Self, IpParseError> {
        Ok(IpReputation {
            ip: ip.to_ip()?,
            status,
            severity,
            tags: Tags::new(),
            last_updated,
            metadata: Metadata::new(),
        })
    }

    /// Appends `tag`.
    pub fn add_tag(&mut self, tag: &str) -> Result<(), RecordError> {
        let mut kept = Tag::new();
        kept.push_str(tag).map_err(|_| RecordError::TagTooLong)?;
        self.tags.push(kept).map_err(|_| RecordError::TooManyTags)
    }

    /// Sets metadata `key` to `value`, replacing an existing value of `key`.
    pub fn set_metadata(&mut self, key: &str, value: &str) -> Result<(), RecordError> {
        let mut kept_value = MetadataValue::new();
        kept_value
            .push_str(value)
            .map_err(|_| RecordError::MetadataValueTooLong)?;
        if let Some(pair) = self.metadata.iter_mut().find(|(k, _)| k.as_str() == key) {
            pair.1 = kept_value;
            return Ok(());
        }
        let mut kept_key = MetadataKey::new();
        kept_key
            .push_str(key)
            .map_err(|_| RecordError::MetadataKeyTooLong)?;
        self.metadata
            .push((kept_key, kept_value))
            .map_err(|_| RecordError::TooManyMetadata)
    }

    /// The value of metadata `key`.
    pub fn metadata_value(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(k, _)| k.as_str() == key)
            .map(|(_, v)| v.as_str())
    }

    /// Checks the rules the types cannot express; `Err` names the broken rule. The store runs this
    /// on every record before writing anything.
    pub fn check(&self) -> Result<(), &'static str> {
        if !(MIN_SEVERITY..=MAX_SEVERITY).contains(&self.severity) {
            return Err("severity must be 1..=10");
        }
        for tag in &self.tags {
            if tag.is_empty() {
                return Err("tag is empty");
            }
            if has_control(tag) {
                return Err("tag holds a control character");
            }
        }
        for (i, (key, value)) in self.metadata.iter().enumerate() {
            if key.is_empty() {
                return Err("metadata key is empty");
            }
            if has_control(key) || has_control(value) {
                return Err("metadata holds a control character");
            }
            let earlier = self.metadata.get(..i).unwrap_or(&[]);
            if earlier.iter().any(|(k, _)| k == key) {
                return Err("metadata key appears twice");
            }
        }
        Ok(())
    }
}

fn has_control(text: &str) -> bool {
    text.chars().any(char::is_control)
}

#[cfg(feature = "defmt")]
impl defmt::Format for IpReputation {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(
            f,
            "IpReputation {{ ip: {}, status: {}, severity: {=u8}, tags: {}, last_updated: {=u64}, metadata: {} }}",
            defmt::Display2Format(&self.ip),
            self.status,
            self.severity,
            self.tags,
            self.last_updated,
            self.metadata
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn parses_and_normalises() {
        let v4 = IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4));
        assert_eq!(parse_ip("1.2.3.4"), Ok(v4));
        assert_eq!(parse_ip("::ffff:1.2.3.4"), Ok(v4));
        assert_eq!(parse_ip("::FFFF:0102:0304"), Ok(v4));
        let v6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
        assert_eq!(parse_ip("2001:DB8::1"), Ok(v6));
        assert_eq!(parse_ip("2001:db8:0:0::1"), Ok(v6));
        // IPv4-compatible (deprecated) addresses are not IPv4-mapped: left alone.
        assert!(parse_ip("::1.2.3.4").unwrap().is_ipv6());
        assert_eq!(
            IpAddr::V6(Ipv4Addr::new(9, 8, 7, 6).to_ipv6_mapped()).to_ip(),
            Ok(IpAddr::V4(Ipv4Addr::new(9, 8, 7, 6)))
        );
    }

    #[test]
    fn refuses_garbage() {
        for bad in [
            "1.2.3",
            "1.2.3.4.5",
            "256.1.1.1",
            "01.2.3.4",
            " 1.2.3.4",
            "1.2.3.4 ",
            "fe80::1%eth0",
            "[::1]",
            "1.2.3.4:80",
            "example.com",
            "::g",
        ] {
            assert_eq!(parse_ip(bad), Err(IpParseError::Malformed), "{bad:?}");
        }
        assert_eq!(parse_ip(""), Err(IpParseError::Empty));
        let long = "1111:2222:3333:4444:5555:6666:7777:8888:9999";
        assert_eq!(parse_ip(long), Err(IpParseError::Malformed));
        let longer = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.2555";
        assert_eq!(parse_ip(longer), Err(IpParseError::TooLong));
    }

    #[test]
    fn record_bounds() {
        let mut r = IpReputation::new("1.2.3.4", ReputationStatus::Deny, 5, 1).unwrap();
        for i in 0..MAX_TAGS {
            r.add_tag(["a", "b", "c", "d", "e", "f", "g", "h"][i])
                .unwrap();
        }
        assert_eq!(r.add_tag("x"), Err(RecordError::TooManyTags));
        let long = "x".repeat_ascii(MAX_TAG_LEN + 1);
        let mut r2 = IpReputation::new("1.2.3.4", ReputationStatus::Deny, 5, 1).unwrap();
        assert_eq!(r2.add_tag(long.as_str()), Err(RecordError::TagTooLong));
        r2.set_metadata("k", "v1").unwrap();
        r2.set_metadata("k", "v2").unwrap();
        assert_eq!(r2.metadata.len(), 1);
        assert_eq!(r2.metadata_value("k"), Some("v2"));
        for k in ["k1", "k2", "k3"] {
            r2.set_metadata(k, "v").unwrap();
        }
        assert_eq!(
            r2.set_metadata("k5", "v"),
            Err(RecordError::TooManyMetadata)
        );
        assert_eq!(r2.check(), Ok(()));
    }

    #[test]
    fn check_enforces_content_rules() {
        let base = IpReputation::new("1.2.3.4", ReputationStatus::Deny, 5, 1).unwrap();
        for severity in [0, 11, 255] {
            let r = IpReputation {
                severity,
                ..base.clone()
            };
            assert!(r.check().is_err(), "severity {severity}");
        }
        let mut r = base.clone();
        r.add_tag("").unwrap();
        assert!(r.check().is_err());
        let mut r = base.clone();
        r.add_tag("bad\ntag").unwrap();
        assert!(r.check().is_err());
        let mut r = base.clone();
        r.metadata
            .push((MetadataKey::try_from("k").unwrap(), MetadataValue::new()))
            .unwrap();
        r.metadata
            .push((MetadataKey::try_from("k").unwrap(), MetadataValue::new()))
            .unwrap();
        assert_eq!(r.check(), Err("metadata key appears twice"));
    }

    /// `str::repeat` needs `alloc`; this helper keeps the test feature-free.
    trait RepeatAscii {
        fn repeat_ascii(&self, n: usize) -> heapless::String<64>;
    }
    impl RepeatAscii for str {
        fn repeat_ascii(&self, n: usize) -> heapless::String<64> {
            let mut s = heapless::String::new();
            for _ in 0..n {
                s.push_str(self).unwrap();
            }
            s
        }
    }
}
