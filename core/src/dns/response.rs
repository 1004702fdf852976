//! The answer to `get_dns_response`: the reference's `DNSResponse` (query, IPs, domains), as a
//! bounded view borrowed from the cache and, with `alloc`, as an owned copy.

use core::net::IpAddr;

/// Most addresses one answer carries; more set [`DnsResponseView::truncated`].
pub const MAX_RESPONSE_IPS: usize = 32;
/// Most names one answer carries; more set [`DnsResponseView::truncated`].
pub const MAX_RESPONSE_DOMAINS: usize = 32;

/// What the cache knows about one query, borrowed from the cache (names are the cache's own
/// lowercase copies). See `DnsCache` for what each direction puts in `ips` and `domains`, and in
/// which order.
///
/// Plain arrays rather than `heapless::Vec`: a type without `Drop` releases its borrow of the
/// cache at its last use, so callers need no explicit `drop` before the next query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsResponseView<'a> {
    /// The query as the caller wrote it.
    pub query: &'a str,
    /// Set when more addresses or names were related than [`MAX_RESPONSE_IPS`] /
    /// [`MAX_RESPONSE_DOMAINS`] let through.
    pub truncated: bool,
    /// Invariant: `ip_count <= MAX_RESPONSE_IPS`; entries past it are placeholders.
    ips: [IpAddr; MAX_RESPONSE_IPS],
    ip_count: usize,
    /// Invariant: `domain_count <= MAX_RESPONSE_DOMAINS`.
    domains: [&'a str; MAX_RESPONSE_DOMAINS],
    domain_count: usize,
}

impl<'a> DnsResponseView<'a> {
    /// An empty answer to `query`.
    pub const fn new(query: &'a str) -> Self {
        DnsResponseView {
            query,
            truncated: false,
            ips: [IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED); MAX_RESPONSE_IPS],
            ip_count: 0,
            domains: [""; MAX_RESPONSE_DOMAINS],
            domain_count: 0,
        }
    }

    /// Addresses, nearest first.
    pub fn ips(&self) -> &[IpAddr] {
        self.ips.get(..self.ip_count).unwrap_or_default()
    }

    /// Names, nearest first.
    pub fn domains(&self) -> &[&'a str] {
        self.domains.get(..self.domain_count).unwrap_or_default()
    }

    /// Appends an address; `false` (and `truncated` set) when full.
    pub fn push_ip(&mut self, ip: IpAddr) -> bool {
        match self.ips.get_mut(self.ip_count) {
            Some(slot) => {
                *slot = ip;
                self.ip_count += 1;
                true
            }
            None => {
                self.truncated = true;
                false
            }
        }
    }

    /// Appends a name; `false` (and `truncated` set) when full.
    pub fn push_domain(&mut self, domain: &'a str) -> bool {
        match self.domains.get_mut(self.domain_count) {
            Some(slot) => {
                *slot = domain;
                self.domain_count += 1;
                true
            }
            None => {
                self.truncated = true;
                false
            }
        }
    }

    /// An owned copy, shaped like the reference's `DNSResponse` (allocates in the caller's result,
    /// never in the cache).
    #[cfg(feature = "alloc")]
    pub fn to_response(&self) -> DnsResponse {
        use alloc::string::ToString;
        DnsResponse {
            query: self.query.to_string(),
            ips: self.ips().to_vec(),
            domains: self.domains().iter().map(|d| d.to_string()).collect(),
            truncated: self.truncated,
        }
    }
}

/// An owned [`DnsResponseView`], for sending across threads or processes.
#[cfg(feature = "alloc")]
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct DnsResponse {
    /// The query as the caller wrote it.
    pub query: alloc::string::String,
    /// Addresses, nearest first.
    pub ips: alloc::vec::Vec<IpAddr>,
    /// Names (lowercase), nearest first.
    pub domains: alloc::vec::Vec<alloc::string::String>,
    /// Set when the cache related more than it returned.
    pub truncated: bool,
}
