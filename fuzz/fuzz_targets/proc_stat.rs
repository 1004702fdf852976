//! Fuzzes the `/proc/<pid>/stat` parser: any bytes give a record or a typed error, never a panic,
//! and a parsed name fits the 16-byte `comm` bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use watchpost_core::start_time::parse_proc_stat;

fuzz_target!(|data: &[u8]| {
    if let Ok(stat) = parse_proc_stat(data) {
        assert!(stat.comm.len() <= 16);
    }
});
