//! Fuzzes the cgroup path parsers: any text gives a container or none, never a panic, and a
//! container ID found is always a piece of the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use watchpost_core::cgroup::{parse_cgroup_line, parse_cgroup_path, parse_proc_cgroup};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let found = [
        parse_proc_cgroup(&text),
        parse_cgroup_path(&text),
        parse_cgroup_line(&text).ok().flatten(),
    ];
    for container in found.into_iter().flatten() {
        assert!(text.contains(container.id.as_str()), "id not taken from the input");
    }
});
