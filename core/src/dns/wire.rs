//! The DNS message format (RFC 1035 §4): a zero-copy reader that checks a whole message once and
//! then hands out its header, questions and records without copying or allocating.
//!
//! [`Message::parse`] walks every section the header announces and rejects, with a [`WireError`],
//! anything that does not add up: a message shorter than its fields, counts that claim more
//! entries than the data holds, bad names (see [`super::name`]), and record data whose length
//! does not fit its type (A must be 4 bytes, AAAA 16; a CNAME, PTR, MX or SRV name must end exactly
//! where the data ends). Bytes after the last announced record are ignored (padding).
//! After that, iterating cannot fail. Record types other than A, AAAA, CNAME, PTR, MX and SRV are
//! skipped over safely and handed out as raw [`RecordData::Other`].
//!
//! Nothing here panics on any input: every read is bounds-checked.

use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr};

use super::name::{Name, NameExtent, walk_name};

/// Size of the fixed header.
pub const HEADER_LEN: usize = 12;
/// Largest message accepted: the most a DNS message can be (TCP length prefix).
pub const MAX_MESSAGE_LEN: usize = 65_535;
/// Smallest question: root name, type, class.
const MIN_QUESTION_LEN: usize = 5;
/// Smallest resource record: root name, type, class, TTL, data length.
const MIN_RECORD_LEN: usize = 11;

/// Why a message was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum WireError {
    /// The message ends inside the header, a name, a fixed field or record data.
    Truncated,
    /// A section's count announces more entries than the message holds.
    CountExceedsData(Section),
    /// Longer than [`MAX_MESSAGE_LEN`].
    MessageTooLong,
    /// A label length byte over 63 (or a reserved label type).
    LabelTooLong,
    /// A name longer than 255 bytes in wire form.
    NameTooLong,
    /// A compression pointer to its own position or after it (including past the end).
    ForwardPointer,
    /// A compression pointer back into the run of labels it ends: following it would loop.
    PointerLoop,
    /// A compression pointer into the header, where no name can be.
    PointerIntoHeader,
    /// More than [`MAX_POINTER_JUMPS`](super::name::MAX_POINTER_JUMPS) pointers in one name.
    TooManyPointers,
    /// Record data whose length does not fit its type (type number attached).
    BadRdataLength(u16),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated => f.write_str("dns message truncated"),
            WireError::CountExceedsData(section) => {
                write!(f, "dns {} count exceeds the data", section.as_str())
            }
            WireError::MessageTooLong => f.write_str("dns message longer than 65535 bytes"),
            WireError::LabelTooLong => f.write_str("dns label longer than 63 bytes"),
            WireError::NameTooLong => f.write_str("dns name longer than 255 bytes"),
            WireError::ForwardPointer => f.write_str("dns compression pointer points forward"),
            WireError::PointerLoop => f.write_str("dns compression pointer loops"),
            WireError::PointerIntoHeader => {
                f.write_str("dns compression pointer points into the header")
            }
            WireError::TooManyPointers => f.write_str("too many dns compression pointers"),
            WireError::BadRdataLength(rtype) => {
                write!(f, "dns record data length does not fit type {rtype}")
            }
        }
    }
}

impl core::error::Error for WireError {}

/// The four sections of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Section {
    /// Questions.
    Question,
    /// Answer records.
    Answer,
    /// Authority records.
    Authority,
    /// Additional records.
    Additional,
}

impl Section {
    /// Lowercase name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Section::Question => "question",
            Section::Answer => "answer",
            Section::Authority => "authority",
            Section::Additional => "additional",
        }
    }
}

/// Record (and question) types the store understands; every other number is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RecordType {
    /// IPv4 address (1).
    A,
    /// Canonical name (5).
    Cname,
    /// Domain name pointer, reverse lookups (12).
    Ptr,
    /// Mail exchange (15).
    Mx,
    /// IPv6 address (28).
    Aaaa,
    /// Service location (33).
    Srv,
    /// Any other type number.
    Other(u16),
}

impl RecordType {
    /// The type for a wire type number.
    pub const fn from_u16(value: u16) -> Self {
        match value {
            1 => RecordType::A,
            5 => RecordType::Cname,
            12 => RecordType::Ptr,
            15 => RecordType::Mx,
            28 => RecordType::Aaaa,
            33 => RecordType::Srv,
            other => RecordType::Other(other),
        }
    }

    /// The wire type number.
    pub const fn to_u16(self) -> u16 {
        match self {
            RecordType::A => 1,
            RecordType::Cname => 5,
            RecordType::Ptr => 12,
            RecordType::Mx => 15,
            RecordType::Aaaa => 28,
            RecordType::Srv => 33,
            RecordType::Other(other) => other,
        }
    }
}

/// Class IN (the Internet), the only class the store keeps.
pub const CLASS_IN: u16 = 1;

/// The fixed 12-byte header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Header {
    /// Transaction ID.
    pub id: u16,
    /// Flags word: QR, opcode, AA, TC, RD, RA, Z, RCODE.
    pub flags: u16,
    /// Number of questions.
    pub question_count: u16,
    /// Number of answer records.
    pub answer_count: u16,
    /// Number of authority records.
    pub authority_count: u16,
    /// Number of additional records.
    pub additional_count: u16,
}

impl Header {
    /// Reads the header at the start of `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let word = |at: usize| read_u16(bytes, at);
        Ok(Header {
            id: word(0)?,
            flags: word(2)?,
            question_count: word(4)?,
            answer_count: word(6)?,
            authority_count: word(8)?,
            additional_count: word(10)?,
        })
    }

    /// QR: this is a response.
    pub const fn is_response(&self) -> bool {
        self.flags & 0x8000 != 0
    }

    /// The opcode (0 = standard query).
    pub const fn opcode(&self) -> u8 {
        ((self.flags >> 11) & 0x0F) as u8
    }

    /// AA: authoritative answer.
    pub const fn is_authoritative(&self) -> bool {
        self.flags & 0x0400 != 0
    }

    /// TC: the message was truncated by the sender (the records present are still whole).
    pub const fn is_truncated(&self) -> bool {
        self.flags & 0x0200 != 0
    }

    /// RD: recursion desired.
    pub const fn recursion_desired(&self) -> bool {
        self.flags & 0x0100 != 0
    }

    /// RA: recursion available.
    pub const fn recursion_available(&self) -> bool {
        self.flags & 0x0080 != 0
    }

    /// The response code (0 = no error, 3 = name error).
    pub const fn rcode(&self) -> u8 {
        (self.flags & 0x000F) as u8
    }
}

/// One question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Question<'a> {
    /// The name asked about.
    pub name: Name<'a>,
    /// The type asked for.
    pub qtype: RecordType,
    /// The class asked in (1 = IN; mDNS sets the top bit for unicast replies).
    pub qclass: u16,
}

/// The data of one record, decoded for the types the store understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordData<'a> {
    /// An IPv4 address.
    A(Ipv4Addr),
    /// An IPv6 address.
    Aaaa(Ipv6Addr),
    /// The canonical name the owner is an alias of.
    Cname(Name<'a>),
    /// The name an address (or a service instance) points to.
    Ptr(Name<'a>),
    /// A mail exchanger.
    Mx {
        /// Lower is preferred.
        preference: u16,
        /// The exchanger's name.
        exchange: Name<'a>,
    },
    /// A service location.
    Srv {
        /// Lower is tried first.
        priority: u16,
        /// Share among equal priorities.
        weight: u16,
        /// Port of the service.
        port: u16,
        /// Host of the service.
        target: Name<'a>,
    },
    /// Any other type, undecoded.
    Other {
        /// The type number.
        rtype: u16,
        /// The raw data.
        rdata: &'a [u8],
    },
}

// By hand: defmt formats `core::net` addresses only with a feature the workspace does not enable.
#[cfg(feature = "defmt")]
impl defmt::Format for RecordData<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        match self {
            RecordData::A(ip) => defmt::write!(f, "A({=[u8]})", ip.octets()),
            RecordData::Aaaa(ip) => defmt::write!(f, "AAAA({=[u8]})", ip.octets()),
            RecordData::Cname(name) => defmt::write!(f, "CNAME({})", name),
            RecordData::Ptr(name) => defmt::write!(f, "PTR({})", name),
            RecordData::Mx {
                preference,
                exchange,
            } => defmt::write!(f, "MX({=u16} {})", preference, exchange),
            RecordData::Srv {
                priority,
                weight,
                port,
                target,
            } => defmt::write!(
                f,
                "SRV({=u16} {=u16} {=u16} {})",
                priority,
                weight,
                port,
                target
            ),
            RecordData::Other { rtype, rdata } => {
                defmt::write!(f, "TYPE{=u16}({=[u8]})", rtype, rdata)
            }
        }
    }
}

impl RecordData<'_> {
    /// The type of this data.
    pub const fn record_type(&self) -> RecordType {
        match self {
            RecordData::A(_) => RecordType::A,
            RecordData::Aaaa(_) => RecordType::Aaaa,
            RecordData::Cname(_) => RecordType::Cname,
            RecordData::Ptr(_) => RecordType::Ptr,
            RecordData::Mx { .. } => RecordType::Mx,
            RecordData::Srv { .. } => RecordType::Srv,
            RecordData::Other { rtype, .. } => RecordType::from_u16(*rtype),
        }
    }
}

/// One resource record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Record<'a> {
    /// The owner name.
    pub name: Name<'a>,
    /// The class (1 = IN; mDNS sets the top bit for cache flush).
    pub class: u16,
    /// Time to live in seconds, as sent (RFC 2181 §8: values over 2^31 - 1 mean 0; the store
    /// applies that rule).
    pub ttl: u32,
    /// The data.
    pub data: RecordData<'a>,
}

impl Record<'_> {
    /// The record's type.
    pub const fn record_type(&self) -> RecordType {
        self.data.record_type()
    }
}

/// A checked message. See the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    bytes: &'a [u8],
    header: Header,
    /// Offsets where the answer, authority and additional sections start, and where the last
    /// section ends. Invariant: every entry between them was checked by `parse`.
    answers_at: usize,
    authority_at: usize,
    additional_at: usize,
    end: usize,
}

impl<'a> Message<'a> {
    /// Checks the whole message; see the module documentation for what is rejected.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, WireError> {
        if bytes.len() > MAX_MESSAGE_LEN {
            return Err(WireError::MessageTooLong);
        }
        let header = Header::parse(bytes)?;
        // Cheap first check: the counts alone may promise more than the bytes can hold.
        let least = HEADER_LEN
            + usize::from(header.question_count) * MIN_QUESTION_LEN
            + (usize::from(header.answer_count)
                + usize::from(header.authority_count)
                + usize::from(header.additional_count))
                * MIN_RECORD_LEN;
        if least > bytes.len() {
            return Err(WireError::CountExceedsData(first_short_section(
                &header,
                bytes.len(),
            )));
        }
        let mut pos = HEADER_LEN;
        for _ in 0..header.question_count {
            section_entry_starts(bytes, pos, Section::Question)?;
            pos = read_question(bytes, pos)?.1;
        }
        let answers_at = pos;
        pos = skip_records(bytes, pos, header.answer_count, Section::Answer)?;
        let authority_at = pos;
        pos = skip_records(bytes, pos, header.authority_count, Section::Authority)?;
        let additional_at = pos;
        pos = skip_records(bytes, pos, header.additional_count, Section::Additional)?;
        Ok(Message {
            bytes,
            header,
            answers_at,
            authority_at,
            additional_at,
            end: pos,
        })
    }

    /// The header.
    pub const fn header(&self) -> Header {
        self.header
    }

    /// The message bytes.
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Offset just past the last announced record (anything after is ignored).
    pub const fn end(&self) -> usize {
        self.end
    }

    /// The questions, in order.
    pub fn questions(&self) -> Questions<'a> {
        Questions {
            bytes: self.bytes,
            pos: HEADER_LEN,
            left: self.header.question_count,
        }
    }

    /// The answer records, in order.
    pub fn answers(&self) -> Records<'a> {
        self.records(self.answers_at, self.header.answer_count)
    }

    /// The authority records, in order.
    pub fn authorities(&self) -> Records<'a> {
        self.records(self.authority_at, self.header.authority_count)
    }

    /// The additional records, in order.
    pub fn additionals(&self) -> Records<'a> {
        self.records(self.additional_at, self.header.additional_count)
    }

    fn records(&self, pos: usize, left: u16) -> Records<'a> {
        Records {
            bytes: self.bytes,
            pos,
            left,
        }
    }
}

/// Iterator over the questions of a checked [`Message`].
#[derive(Debug, Clone)]
pub struct Questions<'a> {
    bytes: &'a [u8],
    pos: usize,
    left: u16,
}

impl<'a> Iterator for Questions<'a> {
    type Item = Question<'a>;

    fn next(&mut self) -> Option<Question<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // Checked by `Message::parse`; on a broken invariant the iteration just ends.
        match read_question(self.bytes, self.pos) {
            Ok((question, next)) => {
                self.pos = next;
                Some(question)
            }
            Err(_) => {
                self.left = 0;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(usize::from(self.left)))
    }
}

impl core::iter::FusedIterator for Questions<'_> {}

/// Iterator over the records of one section of a checked [`Message`].
#[derive(Debug, Clone)]
pub struct Records<'a> {
    bytes: &'a [u8],
    pos: usize,
    left: u16,
}

impl<'a> Iterator for Records<'a> {
    type Item = Record<'a>;

    fn next(&mut self) -> Option<Record<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        match read_record(self.bytes, self.pos) {
            Ok((record, next)) => {
                self.pos = next;
                Some(record)
            }
            Err(_) => {
                self.left = 0;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(usize::from(self.left)))
    }
}

impl core::iter::FusedIterator for Records<'_> {}

fn read_u16(bytes: &[u8], at: usize) -> Result<u16, WireError> {
    let end = at.checked_add(2).ok_or(WireError::Truncated)?;
    match bytes.get(at..end) {
        Some(&[hi, lo]) => Ok(u16::from_be_bytes([hi, lo])),
        _ => Err(WireError::Truncated),
    }
}

fn read_u32(bytes: &[u8], at: usize) -> Result<u32, WireError> {
    let end = at.checked_add(4).ok_or(WireError::Truncated)?;
    match bytes.get(at..end) {
        Some(&[a, b, c, d]) => Ok(u32::from_be_bytes([a, b, c, d])),
        _ => Err(WireError::Truncated),
    }
}

/// An entry that would start exactly at the end of the data is missing, not cut short.
fn section_entry_starts(bytes: &[u8], pos: usize, section: Section) -> Result<(), WireError> {
    if pos >= bytes.len() {
        Err(WireError::CountExceedsData(section))
    } else {
        Ok(())
    }
}

/// The first section whose minimum size does not fit in `len` bytes (for the quick count check).
fn first_short_section(header: &Header, len: usize) -> Section {
    let mut need = HEADER_LEN + usize::from(header.question_count) * MIN_QUESTION_LEN;
    if need > len {
        return Section::Question;
    }
    need += usize::from(header.answer_count) * MIN_RECORD_LEN;
    if need > len {
        return Section::Answer;
    }
    need += usize::from(header.authority_count) * MIN_RECORD_LEN;
    if need > len {
        return Section::Authority;
    }
    Section::Additional
}

fn read_name(bytes: &[u8], at: usize) -> Result<(Name<'_>, NameExtent), WireError> {
    let extent = walk_name(bytes, at, |_| {})?;
    Ok((Name::checked(bytes, at, extent), extent))
}

fn read_question(bytes: &[u8], at: usize) -> Result<(Question<'_>, usize), WireError> {
    let (name, extent) = read_name(bytes, at)?;
    let qtype = read_u16(bytes, extent.end)?;
    let qclass = read_u16(bytes, extent.end + 2)?;
    let question = Question {
        name,
        qtype: RecordType::from_u16(qtype),
        qclass,
    };
    Ok((question, extent.end + 4))
}

fn skip_records(
    bytes: &[u8],
    mut pos: usize,
    count: u16,
    section: Section,
) -> Result<usize, WireError> {
    for _ in 0..count {
        section_entry_starts(bytes, pos, section)?;
        pos = read_record(bytes, pos)?.1;
    }
    Ok(pos)
}

/// Reads the record at `at`; returns it and the offset of the next one.
fn read_record(bytes: &[u8], at: usize) -> Result<(Record<'_>, usize), WireError> {
    let (name, extent) = read_name(bytes, at)?;
    let fixed = extent.end;
    let rtype = read_u16(bytes, fixed)?;
    let class = read_u16(bytes, fixed + 2)?;
    let ttl = read_u32(bytes, fixed + 4)?;
    let rdlength = usize::from(read_u16(bytes, fixed + 8)?);
    let rdata_at = fixed + 10;
    let rdata_end = rdata_at + rdlength;
    let rdata = bytes.get(rdata_at..rdata_end).ok_or(WireError::Truncated)?;
    let bad_len = WireError::BadRdataLength(rtype);
    // A name inside the data must end exactly where the data ends.
    let name_in_data = |name_at: usize| -> Result<Name<'_>, WireError> {
        if name_at >= rdata_end {
            return Err(bad_len);
        }
        let (name, extent) = read_name(bytes, name_at)?;
        if extent.end != rdata_end {
            return Err(bad_len);
        }
        Ok(name)
    };
    let data = match RecordType::from_u16(rtype) {
        RecordType::A => match *rdata {
            [a, b, c, d] => RecordData::A(Ipv4Addr::new(a, b, c, d)),
            _ => return Err(bad_len),
        },
        RecordType::Aaaa => {
            let octets: [u8; 16] = rdata.try_into().map_err(|_| bad_len)?;
            RecordData::Aaaa(Ipv6Addr::from(octets))
        }
        RecordType::Cname => RecordData::Cname(name_in_data(rdata_at)?),
        RecordType::Ptr => RecordData::Ptr(name_in_data(rdata_at)?),
        RecordType::Mx => {
            if rdlength < 3 {
                return Err(bad_len);
            }
            RecordData::Mx {
                preference: read_u16(bytes, rdata_at)?,
                exchange: name_in_data(rdata_at + 2)?,
            }
        }
        RecordType::Srv => {
            if rdlength < 7 {
                return Err(bad_len);
            }
            RecordData::Srv {
                priority: read_u16(bytes, rdata_at)?,
                weight: read_u16(bytes, rdata_at + 2)?,
                port: read_u16(bytes, rdata_at + 4)?,
                target: name_in_data(rdata_at + 6)?,
            }
        }
        RecordType::Other(rtype) => RecordData::Other { rtype, rdata },
    };
    let record = Record {
        name,
        class,
        ttl,
        data,
    };
    Ok((record, rdata_end))
}
