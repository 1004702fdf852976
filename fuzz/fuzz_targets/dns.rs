//! Fuzzes the DNS wire parser and the cache fed from it: any packet parses or is a typed error,
//! never a panic; names decode within their bounds; the cache takes any packet and then answers
//! for every name the packet asked about without breaking its bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use watchpost_core::dns::{
    DnsCache, DnsCacheConfig, DnsOrigin, MAX_NAME_TEXT_LEN, Message, NameBuf,
};

/// The host's network namespace, trusted.
const HOST: DnsOrigin = DnsOrigin::trusted(4_026_531_840);

const NOW: u64 = 1_764_300_000_000_000_000;

fuzz_target!(|data: &[u8]| {
    let mut cache = DnsCache::new(DnsCacheConfig {
        max_names: 8,
        max_addresses: 8,
        max_links: 8,
        name_bytes: 256,
        hash_seed: 7,
        trusted_answers_per_sec: u32::MAX,
        ..DnsCacheConfig::default()
    });
    let _ = cache.insert_packet(data, HOST, NOW);
    assert!(cache.len() <= cache.capacity());
    let Ok(message) = Message::parse(data) else {
        return;
    };
    assert!(message.end() <= data.len());
    let mut buf = NameBuf::new();
    for question in message.questions() {
        question.name.decode_into(&mut buf);
        assert!(buf.len() <= MAX_NAME_TEXT_LEN);
        if let Some(name) = buf.as_str() {
            let name = name.to_owned();
            let _ = cache.get_dns_response(&name, NOW + 1);
        }
    }
    for record in message
        .answers()
        .chain(message.authorities())
        .chain(message.additionals())
    {
        record.name.decode_into(&mut buf);
        assert!(buf.len() <= MAX_NAME_TEXT_LEN);
    }
});
