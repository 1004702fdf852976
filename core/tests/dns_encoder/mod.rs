//! A small DNS message encoder for the DNS tests: builds real wire-format responses (with name
//! compression, the way resolvers write them) so the parser and the cache are tested on the
//! bytes they will see.
#![allow(dead_code)]

use std::net::{Ipv4Addr, Ipv6Addr};

pub const A: u16 = 1;
pub const CNAME: u16 = 5;
pub const PTR: u16 = 12;
pub const MX: u16 = 15;
pub const TXT: u16 = 16;
pub const AAAA: u16 = 28;
pub const SRV: u16 = 33;

/// Flags of a plain NOERROR response to a recursive query.
pub const RESPONSE: u16 = 0x8180;
/// Flags of a recursive query.
pub const QUERY: u16 = 0x0100;

/// Record data to encode.
#[derive(Debug, Clone)]
pub enum Data {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Cname(String),
    Ptr(String),
    Mx(u16, String),
    Srv(u16, u16, u16, String),
    Raw(u16, Vec<u8>),
}

impl Data {
    pub fn rtype(&self) -> u16 {
        match self {
            Data::A(_) => A,
            Data::Aaaa(_) => AAAA,
            Data::Cname(_) => CNAME,
            Data::Ptr(_) => PTR,
            Data::Mx(..) => MX,
            Data::Srv(..) => SRV,
            Data::Raw(t, _) => *t,
        }
    }
}

pub fn a(ip: &str) -> Data {
    Data::A(ip.parse().unwrap())
}
pub fn aaaa(ip: &str) -> Data {
    Data::Aaaa(ip.parse().unwrap())
}
pub fn cname(name: &str) -> Data {
    Data::Cname(name.to_owned())
}
pub fn ptr(name: &str) -> Data {
    Data::Ptr(name.to_owned())
}
pub fn mx(pref: u16, name: &str) -> Data {
    Data::Mx(pref, name.to_owned())
}
pub fn srv(prio: u16, weight: u16, port: u16, name: &str) -> Data {
    Data::Srv(prio, weight, port, name.to_owned())
}

/// One answer record.
#[derive(Debug, Clone)]
pub struct Rr {
    pub name: String,
    pub class: u16,
    pub ttl: u32,
    pub data: Data,
}

pub fn rr(name: &str, ttl: u32, data: Data) -> Rr {
    Rr {
        name: name.to_owned(),
        class: 1,
        ttl,
        data,
    }
}

/// Builds a message section by section.
pub struct Builder {
    buf: Vec<u8>,
    /// Names already written (text of a suffix, offset), for compression.
    written: Vec<(String, usize)>,
    pub compress: bool,
    counts: [u16; 4],
}

impl Builder {
    pub fn new(id: u16, flags: u16) -> Self {
        let mut buf = Vec::new();
        buf.extend_from_slice(&id.to_be_bytes());
        buf.extend_from_slice(&flags.to_be_bytes());
        buf.extend_from_slice(&[0; 8]);
        Builder {
            buf,
            written: Vec::new(),
            compress: true,
            counts: [0; 4],
        }
    }

    /// Writes `name` (dotted, no trailing dot; "" is the root), pointing at an earlier copy of
    /// its longest already-written suffix.
    pub fn name(&mut self, name: &str) {
        let labels: Vec<&str> = if name.is_empty() {
            Vec::new()
        } else {
            name.split('.').collect()
        };
        for i in 0..labels.len() {
            let suffix = labels[i..].join(".");
            if self.compress
                && let Some(&(_, at)) = self.written.iter().find(|(s, _)| *s == suffix)
            {
                self.buf
                    .extend_from_slice(&(0xC000 | at as u16).to_be_bytes());
                return;
            }
            if self.buf.len() < 0x3FFF {
                self.written.push((suffix, self.buf.len()));
            }
            self.buf.push(labels[i].len() as u8);
            self.buf.extend_from_slice(labels[i].as_bytes());
        }
        self.buf.push(0);
    }

    pub fn question(&mut self, name: &str, qtype: u16) -> &mut Self {
        self.name(name);
        self.buf.extend_from_slice(&qtype.to_be_bytes());
        self.buf.extend_from_slice(&1u16.to_be_bytes());
        self.counts[0] += 1;
        self
    }

    fn record(&mut self, r: &Rr, section: usize) {
        self.name(&r.name);
        self.buf.extend_from_slice(&r.data.rtype().to_be_bytes());
        self.buf.extend_from_slice(&r.class.to_be_bytes());
        self.buf.extend_from_slice(&r.ttl.to_be_bytes());
        let len_at = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        let start = self.buf.len();
        match &r.data {
            Data::A(ip) => self.buf.extend_from_slice(&ip.octets()),
            Data::Aaaa(ip) => self.buf.extend_from_slice(&ip.octets()),
            Data::Cname(n) | Data::Ptr(n) => self.name(n),
            Data::Mx(pref, n) => {
                self.buf.extend_from_slice(&pref.to_be_bytes());
                self.name(n);
            }
            Data::Srv(prio, weight, port, n) => {
                for v in [prio, weight, port] {
                    self.buf.extend_from_slice(&v.to_be_bytes());
                }
                self.name(n);
            }
            Data::Raw(_, bytes) => self.buf.extend_from_slice(bytes),
        }
        let len = (self.buf.len() - start) as u16;
        self.buf[len_at..len_at + 2].copy_from_slice(&len.to_be_bytes());
        self.counts[section] += 1;
    }

    pub fn answer(&mut self, r: &Rr) -> &mut Self {
        self.record(r, 1);
        self
    }

    pub fn authority(&mut self, r: &Rr) -> &mut Self {
        self.record(r, 2);
        self
    }

    pub fn additional(&mut self, r: &Rr) -> &mut Self {
        self.record(r, 3);
        self
    }

    /// Raw bytes appended as they are (for malformed messages).
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(bytes);
        self
    }

    /// Overrides a header count (for malformed messages).
    pub fn count(&mut self, section: usize, value: u16) -> &mut Self {
        self.counts[section] = value;
        self
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn finish(&self) -> Vec<u8> {
        let mut out = self.buf.clone();
        for (i, c) in self.counts.iter().enumerate() {
            out[4 + 2 * i..6 + 2 * i].copy_from_slice(&c.to_be_bytes());
        }
        out
    }
}

/// A NOERROR response to `question` (type `qtype`) with `answers`.
pub fn response(question: &str, qtype: u16, answers: &[Rr]) -> Vec<u8> {
    let mut b = Builder::new(0x1234, RESPONSE);
    b.question(question, qtype);
    for r in answers {
        b.answer(r);
    }
    b.finish()
}

/// Same, with an A question.
pub fn a_response(question: &str, answers: &[Rr]) -> Vec<u8> {
    response(question, A, answers)
}
