//! DNS answers only for queries that were asked, in the network namespace that asked.
//!
//! Without this, any local user could plant answers: in a user+network namespace of its own a
//! process sends itself a UDP datagram from port 53, and the ingress program at the cgroup v2
//! root saw it like any answer; a remote host spoofing port 53 likely too. So:
//! - `dns_queries_egress` (cgroup_skb egress, same root) records every outgoing standard query
//!   to port 53 in an LRU hash, keyed by [`DnsQueryKey`]: the sending socket's network
//!   namespace (inode number), both addresses and ports, the transaction ID, the question type
//!   and a hash of the question's exact name bytes and class; the value is when it was asked;
//! - an answer ([`admit_answer`], called by the ingress capture) goes on only if the key built
//!   from it (addresses and ports reversed, its own question) is outstanding and not older than
//!   the timeout; the entry is marked answered, so one query admits one answer;
//! - queries from trusted namespaces (the host's, containers' — written by userspace into
//!   `TRUSTED_NETNS`) and from every other namespace live in two maps, so a flood of queries in a
//!   namespace of its own cannot push the host's out; answers into untrusted namespaces pass a
//!   per-CPU token bucket, so they cannot fill the ring buffer either;
//! - every refusal is counted by reason in `DNS_COUNTERS`, and so are answers longer than the
//!   capture size (passed on cut).
//!
//! A process can still answer its own query in its own namespace: the record says which
//! namespace (`DnsRecord::netns`) and whether it is trusted, and the store keeps answers apart
//! by namespace.
//!
//! Verifier notes (must load on Linux 6.1): the question is walked with two bounded loops that
//! each have a single continuing path (label lengths, then the bytes to hash), indexes are masked
//! into the per-CPU buffers, and the socket pointer is turned into a plain address by reading it
//! back from the stack (pointer arithmetic on a socket is not allowed; reading kernel memory from
//! an address is, with `CAP_PERFMON`).

use core::ffi::c_void;
use core::ptr::{addr_of, addr_of_mut};

use aya_ebpf::helpers::generated as helper;
use aya_ebpf::macros::{cgroup_skb, map};
use aya_ebpf::maps::{HashMap, LruHashMap, PerCpuArray};
use aya_ebpf::programs::SkBuffContext;
use watchpost_ebpf_common::{
    DNS_COUNTER_SLOTS, DNS_PAYLOAD_CAPACITY, DNS_PENDING_QUERIES, DNS_PORT, DNS_QUERY_WINDOW,
    DnsMatching, DnsQueryKey, DnsRecord, RateBucket, TRUSTED_NETNS_CAPACITY, dns_counter, dns_flag,
};

use crate::{ALLOW, load, offsets, read_kernel, read_pointer, udp_header};

/// How matching works, written by the loader before loading (read-only data).
#[unsafe(no_mangle)]
static DNS_MATCHING: DnsMatching = DnsMatching {
    enabled: 0,
    untrusted_answers_per_sec: 0,
    untrusted_burst: 0,
    reserved: 0,
    timeout_ns: 0,
};

/// Outstanding queries from trusted network namespaces: key → boot ns when asked (0 once
/// answered: one query admits one answer).
#[map]
static DNS_QUERIES_TRUSTED: LruHashMap<DnsQueryKey, u64> =
    LruHashMap::with_max_entries(DNS_PENDING_QUERIES, 0);

/// Outstanding queries from every other network namespace.
#[map]
static DNS_QUERIES_OTHER: LruHashMap<DnsQueryKey, u64> =
    LruHashMap::with_max_entries(DNS_PENDING_QUERIES, 0);

/// Trusted network namespaces (inode number → 1), maintained by userspace.
#[map]
static TRUSTED_NETNS: HashMap<u32, u32> = HashMap::with_max_entries(TRUSTED_NETNS_CAPACITY, 0);

/// What happened to DNS packets, per CPU, slot = `dns_counter`.
#[map]
static DNS_COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(DNS_COUNTER_SLOTS, 0);

/// The untrusted-answer token bucket of each CPU.
#[map]
static DNS_RATE: PerCpuArray<RateBucket> = PerCpuArray::with_max_entries(1, 0);

/// Per-CPU copy of the start of an outgoing query (its question is read from here).
#[map]
static DNS_QUERY_SCRATCH: PerCpuArray<[u8; DNS_QUERY_WINDOW]> = PerCpuArray::with_max_entries(1, 0);

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
/// The question name starts after the 12-byte header.
const QUESTION_AT: u32 = 12;
/// Longest name in wire format, its terminating zero included.
const MAX_NAME_WIRE: u32 = 255;
/// Most labels in a name (each takes at least 2 wire bytes).
const MAX_LABELS: u32 = 128;
const NANOS_PER_SEC: u64 = 1_000_000_000;

#[inline(always)]
fn matching() -> DnsMatching {
    // SAFETY: a plain read of a static; volatile so the compiler does not fold the zeros the
    // object holds (the loader replaces them before loading).
    unsafe { core::ptr::read_volatile(addr_of!(DNS_MATCHING)) }
}

#[inline(always)]
fn count(slot: u32) {
    if let Some(value) = DNS_COUNTERS.get_ptr_mut(slot) {
        // SAFETY: this CPU's slot of a per-CPU array; programs on one CPU do not run
        // concurrently with each other for the same context.
        unsafe { *value += 1 };
    }
}

#[inline(always)]
fn now_ns() -> u64 {
    // SAFETY: a helper without arguments.
    unsafe { helper::bpf_ktime_get_boot_ns() }
}

/// The network namespace (inode number) of the packet's socket: the sender on egress, the
/// receiver on ingress (the cgroup hooks run with `skb->sk` set to that socket).
#[inline(always)]
fn socket_netns(ctx: &SkBuffContext) -> Option<u32> {
    let skb = ctx.skb.skb;
    // SAFETY: a context field read, which the verifier rewrites into `skb->sk`.
    let sk = unsafe { (*skb).__bindgen_anon_2.sk };
    if sk.is_null() {
        return None;
    }
    let mut address: u64 = 0;
    // SAFETY: copies the 8 bytes of the local `sk` (a pointer held on our stack) into the local
    // `address`: both are locals of that size.
    let copied = unsafe {
        helper::bpf_probe_read_kernel(
            addr_of_mut!(address).cast::<c_void>(),
            8,
            addr_of!(sk).cast::<c_void>(),
        )
    };
    if copied != 0 || address == 0 {
        return None;
    }
    let o = offsets();
    let net = read_pointer(address as *const u8, o.sock_net);
    if net.is_null() {
        return None;
    }
    let inum: u32 = read_kernel(net, o.net_ns_inum);
    (inum != 0).then_some(inum)
}

/// Reads the question of the DNS message in `buf` (`len` valid bytes; indexes masked with
/// `MASK`, one less than a power of two no larger than the buffer): the FNV-1a hash of its name's
/// wire bytes and class, and its type. `None` if it has no readable uncompressed question.
#[inline(always)]
fn question<const MASK: u32>(buf: *const u8, len: u32) -> Option<(u64, u16)> {
    // The mask goes through a volatile stack slot: the compiler would otherwise drop it where it
    // can prove the index small, in ways the verifier cannot follow; the verifier knows the
    // slot's constant.
    let slot = u64::from(MASK);
    // SAFETY: a volatile read of a local.
    let mask = unsafe { core::ptr::read_volatile(addr_of!(slot)) };
    let byte = |at: u32| -> u32 {
        // SAFETY: `at & mask` is inside the buffer (MASK + 1 is at most its size).
        u32::from(unsafe { *buf.add((u64::from(at) & mask) as usize) })
    };
    // Walk the labels to the terminating zero (a compression pointer or a bad length ends it).
    let mut end = QUESTION_AT;
    for _ in 0..MAX_LABELS {
        if end >= len {
            return None;
        }
        let label = byte(end);
        if label == 0 {
            break;
        }
        if label > 63 {
            return None;
        }
        end += label + 1;
        if end >= QUESTION_AT + MAX_NAME_WIRE {
            return None;
        }
    }
    if end >= len || byte(end) != 0 {
        return None;
    }
    // Type and class follow the zero.
    if end + 5 > len {
        return None;
    }
    let qtype = (byte(end + 1) << 8) | byte(end + 2);
    let mut hash = FNV_OFFSET;
    for at in QUESTION_AT..QUESTION_AT + MAX_NAME_WIRE {
        if at > end {
            break;
        }
        hash = (hash ^ u64::from(byte(at))).wrapping_mul(FNV_PRIME);
    }
    for extra in [byte(end + 3), byte(end + 4)] {
        hash = (hash ^ u64::from(extra)).wrapping_mul(FNV_PRIME);
    }
    Some((hash, qtype as u16))
}

#[inline(always)]
fn is_trusted(netns: u32) -> bool {
    TRUSTED_NETNS.get_ptr(netns).is_some()
}

#[inline(always)]
fn pending(trusted: bool) -> &'static LruHashMap<DnsQueryKey, u64> {
    if trusted {
        &DNS_QUERIES_TRUSTED
    } else {
        &DNS_QUERIES_OTHER
    }
}

/// cgroup_skb egress on the cgroup v2 root: records outgoing DNS queries (UDP to port 53).
#[cgroup_skb(egress)]
pub fn dns_queries_egress(ctx: SkBuffContext) -> i32 {
    if matching().enabled != 0 {
        let _ = track_query(&ctx);
    }
    ALLOW
}

#[inline(always)]
fn track_query(ctx: &SkBuffContext) -> Result<(), ()> {
    let skb_len = ctx.len();
    let (udp_offset, src_at, addr_len, ip_version) = udp_header(ctx)?;
    let server_port = u16::from_be(load::<u16>(ctx, udp_offset + 2)?);
    if server_port != DNS_PORT {
        return Err(());
    }
    let client_port = u16::from_be(load::<u16>(ctx, udp_offset)?);
    let payload_offset = udp_offset + 8;
    if payload_offset + QUESTION_AT >= skb_len {
        return Err(());
    }
    let wire_len = skb_len - payload_offset;
    let window = DNS_QUERY_WINDOW as u32;
    let clamped = if wire_len > window { window } else { wire_len };
    let copy_len = ((clamped - 1) & (window - 1)) + 1;
    let scratch = DNS_QUERY_SCRATCH.get_ptr_mut(0).ok_or(())?;
    let skb = ctx.skb.skb;
    let mut key = DnsQueryKey {
        ip_version,
        client_port,
        server_port,
        ..DnsQueryKey::default()
    };
    // SAFETY: reads at most `copy_len` (≤ the window) bytes into this CPU's scratch array, and 4
    // or 16 bytes into the 16-byte address arrays of the local key.
    unsafe {
        if helper::bpf_skb_load_bytes(
            skb.cast_const().cast(),
            payload_offset,
            scratch.cast(),
            copy_len,
        ) != 0
            || helper::bpf_skb_load_bytes(
                skb.cast_const().cast(),
                src_at,
                addr_of_mut!(key.client_addr).cast(),
                addr_len,
            ) != 0
            || helper::bpf_skb_load_bytes(
                skb.cast_const().cast(),
                src_at + addr_len,
                addr_of_mut!(key.server_addr).cast(),
                addr_len,
            ) != 0
        {
            return Err(());
        }
    }
    let buf = scratch.cast::<u8>().cast_const();
    // SAFETY: the first 12 bytes are inside the scratch array (copy_len > 12 here).
    let (txid, flags, questions) = unsafe {
        (
            u16::from_be_bytes([*buf, *buf.add(1)]),
            *buf.add(2),
            u16::from_be_bytes([*buf.add(4), *buf.add(5)]),
        )
    };
    // A standard query (QR clear, opcode 0) with one question.
    if flags & 0xf8 != 0 || questions != 1 {
        return Err(());
    }
    let (question_hash, qtype) =
        question::<{ DNS_QUERY_WINDOW as u32 - 1 }>(buf, copy_len).ok_or(())?;
    key.netns = socket_netns(ctx).ok_or(())?;
    key.txid = txid;
    key.qtype = qtype;
    key.question_hash = question_hash;
    let trusted = is_trusted(key.netns);
    if pending(trusted).insert(key, now_ns(), 0).is_ok() {
        count(dns_counter::QUERIES_TRACKED);
    }
    Ok(())
}

/// Takes one token from this CPU's untrusted-answer bucket; `false` when it is empty.
#[inline(always)]
fn take_untrusted_token(m: &DnsMatching) -> bool {
    let Some(bucket) = DNS_RATE.get_ptr_mut(0) else {
        return false;
    };
    let now = now_ns();
    let burst = u64::from(m.untrusted_burst);
    // SAFETY: this CPU's bucket in a per-CPU array.
    unsafe {
        let elapsed = now.saturating_sub((*bucket).refilled_ns);
        if elapsed >= NANOS_PER_SEC {
            (*bucket).tokens = burst;
            (*bucket).refilled_ns = now;
        } else {
            let added = elapsed * u64::from(m.untrusted_answers_per_sec) / NANOS_PER_SEC;
            if added > 0 {
                (*bucket).tokens = ((*bucket).tokens + added).min(burst);
                (*bucket).refilled_ns = now;
            }
        }
        if (*bucket).tokens == 0 {
            return false;
        }
        (*bucket).tokens -= 1;
    }
    true
}

/// Decides whether the answer just copied into `record` goes on: `Ok` (with `netns` and
/// `flags` filled in) only if it matches an outstanding query; every refusal is counted.
/// With matching off, every answer goes on as before.
#[inline(always)]
pub(crate) fn admit_answer(ctx: &SkBuffContext, record: *mut DnsRecord) -> Result<(), ()> {
    // SAFETY: `record` is this CPU's scratch record, fully written by the caller up to its
    // payload; every read below stays inside it (the payload indexes are masked).
    unsafe {
        if (*record).wire_len > DNS_PAYLOAD_CAPACITY as u32 {
            count(dns_counter::ANSWERS_OVERSIZED);
        }
        let m = matching();
        if m.enabled == 0 {
            return Ok(());
        }
        let Some(netns) = socket_netns(ctx) else {
            count(dns_counter::ANSWERS_NO_NAMESPACE);
            return Err(());
        };
        let payload = addr_of!((*record).payload).cast::<u8>();
        let len = (*record).payload_len;
        if len <= QUESTION_AT {
            count(dns_counter::ANSWERS_MALFORMED);
            return Err(());
        }
        let Some((question_hash, qtype)) =
            question::<{ DNS_PAYLOAD_CAPACITY as u32 - 1 }>(payload, len)
        else {
            count(dns_counter::ANSWERS_MALFORMED);
            return Err(());
        };
        let key = DnsQueryKey {
            netns,
            ip_version: (*record).ip_version,
            client_addr: (*record).dst_addr,
            server_addr: (*record).src_addr,
            client_port: (*record).dst_port,
            server_port: (*record).src_port,
            txid: u16::from_be_bytes([*payload, *payload.add(1)]),
            qtype,
            question_hash,
        };
        // The query went into the map its namespace's trust chose when it was sent: a trusted
        // namespace's answer is found in the first lookup.
        let (trusted, asked) = match DNS_QUERIES_TRUSTED.get_ptr_mut(key) {
            Some(asked) => (true, asked),
            None => match DNS_QUERIES_OTHER.get_ptr_mut(key) {
                Some(asked) => (false, asked),
                None => {
                    count(dns_counter::ANSWERS_UNMATCHED);
                    return Err(());
                }
            },
        };
        // Answered once: a second answer (a replay, a duplicate) matches nothing. Marking is
        // cheaper than deleting; the LRU recycles the entry.
        let asked_at = *asked;
        *asked = 0;
        if asked_at == 0 {
            count(dns_counter::ANSWERS_UNMATCHED);
            return Err(());
        }
        if now_ns().saturating_sub(asked_at) > m.timeout_ns {
            count(dns_counter::ANSWERS_LATE);
            return Err(());
        }
        if !trusted && !take_untrusted_token(&m) {
            count(dns_counter::ANSWERS_RATE_LIMITED);
            return Err(());
        }
        count(dns_counter::ANSWERS_MATCHED);
        addr_of_mut!((*record).netns).write(netns);
        addr_of_mut!((*record).flags).write(if trusted {
            dns_flag::MATCHED | dns_flag::TRUSTED_NETNS
        } else {
            dns_flag::MATCHED
        });
    }
    Ok(())
}
