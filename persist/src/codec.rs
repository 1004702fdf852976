//! Core records ↔ record keys and postcard values (what [`crate::pages`] packs into pages and
//! deltas).

use std::net::IpAddr;

use watchpost_core::container::ContainerRecord;
use watchpost_core::dns::DnsRecord;
use watchpost_core::ip_reputation::ReputationRecord;
use watchpost_core::process::{ProcessKey, ProcessRecord};

use crate::error::PersistError;

/// One encoded record: redb key and value.
pub type Encoded = (Vec<u8>, Vec<u8>);

/// The key of the process `key`: pid then start time, big-endian (sorted by pid).
pub fn process_key(key: ProcessKey) -> Vec<u8> {
    let mut k = Vec::with_capacity(12);
    k.extend_from_slice(&key.pid.to_be_bytes());
    k.extend_from_slice(&key.start_time.to_be_bytes());
    k
}

/// A process record, encoded.
pub fn encode_process(record: &ProcessRecord<'_>) -> Result<Encoded, PersistError> {
    Ok((process_key(record.key()), encode("process", record)?))
}

/// A process record, decoded (borrowing its path from `value`).
pub fn decode_process(value: &[u8]) -> Result<ProcessRecord<'_>, PersistError> {
    decode("process", value)
}

/// The key of the `index`-th record of a store written whole (DNS, containers).
pub fn position_key(index: u64) -> Vec<u8> {
    index.to_be_bytes().to_vec()
}

/// A DNS record at position `index`, encoded.
pub fn encode_dns(index: u64, record: &DnsRecord<'_>) -> Result<Encoded, PersistError> {
    Ok((position_key(index), encode("dns", record)?))
}

/// A DNS record, decoded.
pub fn decode_dns(value: &[u8]) -> Result<DnsRecord<'_>, PersistError> {
    decode("dns", value)
}

/// A container record at position `index`, encoded.
pub fn encode_container(index: u64, record: &ContainerRecord) -> Result<Encoded, PersistError> {
    Ok((position_key(index), encode("container", record)?))
}

/// A container record, decoded.
pub fn decode_container(value: &[u8]) -> Result<ContainerRecord, PersistError> {
    decode("container", value)
}

/// The key of `source`'s verdict on `ip`: source, 0, the address octets (4 or 16).
pub fn reputation_key(source: &str, ip: IpAddr) -> Vec<u8> {
    let mut k = Vec::with_capacity(source.len() + 17);
    k.extend_from_slice(source.as_bytes());
    k.push(0);
    match ip.to_canonical() {
        IpAddr::V4(v4) => k.extend_from_slice(&v4.octets()),
        IpAddr::V6(v6) => k.extend_from_slice(&v6.octets()),
    }
    k
}

/// The key range holding every verdict of `source`: `[source ‖ 0, source ‖ 1)`.
pub fn reputation_source_range(source: &str) -> (Vec<u8>, Vec<u8>) {
    let mut start = source.as_bytes().to_vec();
    let mut end = start.clone();
    start.push(0);
    end.push(1);
    (start, end)
}

/// A reputation record, encoded.
pub fn encode_reputation(record: &ReputationRecord<'_>) -> Result<Encoded, PersistError> {
    Ok((
        reputation_key(record.source, record.reputation.ip),
        encode("ip_reputation", record)?,
    ))
}

/// A reputation record, decoded.
pub fn decode_reputation(value: &[u8]) -> Result<ReputationRecord<'_>, PersistError> {
    decode("ip_reputation", value)
}

fn encode<T: serde::Serialize>(store: &'static str, value: &T) -> Result<Vec<u8>, PersistError> {
    postcard::to_stdvec(value).map_err(|e| PersistError::Codec {
        store,
        reason: e.to_string(),
    })
}

fn decode<'a, T: serde::Deserialize<'a>>(
    store: &'static str,
    bytes: &'a [u8],
) -> Result<T, PersistError> {
    let (value, rest) = postcard::take_from_bytes(bytes).map_err(|e| PersistError::Codec {
        store,
        reason: e.to_string(),
    })?;
    if !rest.is_empty() {
        return Err(PersistError::Codec {
            store,
            reason: format!("{} trailing bytes after the record", rest.len()),
        });
    }
    Ok(value)
}
