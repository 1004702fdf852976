//! Fuzzes the `/proc/kallsyms` parser and the table built from it: any bytes give a table or a
//! typed error, never a panic, and every symbol of a built table resolves by its address and name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use watchpost_core::kallsyms::scan;
use watchpost_core::symbols::KernelSymbolTable;

fuzz_target!(|data: &[u8]| {
    let counted = scan(data);
    let Ok(mut table) = KernelSymbolTable::from_kallsyms(data) else {
        return;
    };
    assert!(counted.is_ok(), "the table built from text the scanner rejects");
    let symbols: Vec<(u64, String)> = table.iter().map(|s| (s.address, s.name.to_string())).collect();
    for (address, name) in symbols.iter().take(64) {
        assert!(table.resolve_symbol_by_address(*address, 1).is_ok());
        assert!(table.get_symbol_address(name, 1).is_ok());
        let _ = table.nearest(address.wrapping_add(1), 1);
    }
});
