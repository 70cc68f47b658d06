//! `audit::verify_chain` on arbitrary bytes: no panic, bounded work, and a verified chain
//! never claims more entries than it has lines.
#![no_main]

use keymint::audit::verify_chain;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(report) = verify_chain(data, None) {
        let lines = data.iter().filter(|&&b| b == b'\n').count() as u64;
        assert_eq!(report.entries, lines);
        assert_eq!(report.end_offset, data.len() as u64);
        assert_eq!(report.head.is_some(), report.entries > 0);
    }
});
