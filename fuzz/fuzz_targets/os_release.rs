//! Fuzzes the `/etc/os-release` parser: every line either parses or is a typed error, values decode
//! without panicking, and decoding into a buffer agrees with the character iterator.
#![no_main]

use libfuzzer_sys::fuzz_target;
use watchpost_core::os_release::OsRelease;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = core::str::from_utf8(data) else { return };
    let file = OsRelease::new(text);
    let mut buf = [0u8; 256];
    for entry in file.entries().flatten() {
        let decoded_len = entry.value.chars().map(char::len_utf8).sum::<usize>();
        assert_eq!(decoded_len, entry.value.decoded_len());
        if let Ok(written) = entry.value.write_into(&mut buf) {
            assert!(entry.value.decodes_to(written));
        }
    }
    let _ = file.get("PRETTY_NAME");
    let _ = file.errors().count();
});
