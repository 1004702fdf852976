//! The writable-store contract's own rules: which source names are valid, how refusals read, and
//! that snapshots cannot smuggle in what a write would refuse.

use std::string::ToString;

use proptest::prelude::*;
use watchpost_core::ErrorKind;
use watchpost_core::writable::{
    MAX_SOURCE_NAME_LEN, Rejection, SourceName, SourceNameError, WriteError, validate_source_name,
};

/// The rules, stated as plainly as possible.
fn model(name: &str) -> Result<(), SourceNameError> {
    let b = name.as_bytes();
    if b.is_empty() {
        Err(SourceNameError::Empty)
    } else if b.len() > MAX_SOURCE_NAME_LEN {
        Err(SourceNameError::TooLong)
    } else if b.iter().any(|&c| !(0x20..=0x7e).contains(&c)) {
        Err(SourceNameError::NotPrintable)
    } else if b[0] == b' ' || b[b.len() - 1] == b' ' {
        Err(SourceNameError::SurroundingWhitespace)
    } else {
        Ok(())
    }
}

proptest! {
    #[test]
    fn source_names_follow_the_rules(name in prop_oneof![
        "[ -~]{0,70}",           // printable ASCII, around the length limit
        " ?[a-z_]{1,10} ?",      // surrounding spaces
        "\\PC{0,20}",            // any printable Unicode
        ".{0,20}",               // anything, control characters included
    ]) {
        prop_assert_eq!(validate_source_name(&name), model(&name));
        match SourceName::new(&name) {
            Ok(kept) => prop_assert_eq!(kept.as_str(), name.as_str()),
            Err(e) => prop_assert_eq!(Err(e), model(&name)),
        }
    }
}

#[test]
fn refusals_say_where_and_why() {
    let e = WriteError::new(
        "ip_reputation",
        "write_batch",
        Rejection::Value("severity must be 1..=10"),
        Some(3),
    );
    assert!(e.is(ErrorKind::InvalidArgument));
    assert_eq!(
        e.to_string(),
        "ip_reputation store: write_batch: invalid argument: severity must be 1..=10 (batch item 3)"
    );
    let e = WriteError::new(
        "ip_reputation",
        "write",
        Rejection::Source(SourceNameError::Empty),
        None,
    );
    assert_eq!(
        e.to_string(),
        "ip_reputation store: write: invalid argument: source name is empty"
    );
    for capacity in [
        Rejection::EntriesFull,
        Rejection::SourcesFull,
        Rejection::StringsFull,
    ] {
        assert!(capacity.is_capacity());
    }
    for malformed in [
        Rejection::Key,
        Rejection::DuplicateKey,
        Rejection::BatchTooLarge,
        Rejection::Value("x"),
    ] {
        assert!(!malformed.is_capacity());
    }
}

#[cfg(feature = "serde")]
#[test]
fn serde_round_trips_and_validates() {
    use watchpost_core::ip_reputation::{IpReputation, ReputationStatus};

    let name = SourceName::new("abuse feed").unwrap();
    let bytes = postcard::to_allocvec(&name).unwrap();
    assert_eq!(postcard::from_bytes::<SourceName>(&bytes).unwrap(), name);
    // A name a write would refuse does not come back from a snapshot either.
    let bad = postcard::to_allocvec(" padded").unwrap();
    assert!(postcard::from_bytes::<SourceName>(&bad).is_err());

    let mut r = IpReputation::new("2001:db8::7", ReputationStatus::Suspicious, 6, 42).unwrap();
    r.add_tag("scanner").unwrap();
    r.set_metadata("asn", "64496").unwrap();
    let bytes = postcard::to_allocvec(&r).unwrap();
    assert_eq!(postcard::from_bytes::<IpReputation>(&bytes).unwrap(), r);
}
