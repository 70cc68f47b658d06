//! `Scanner::scan` over arbitrary bytes: no panics, findings in order and disjoint, each on
//! word boundaries and each a key that `parse_key` accepts.
#![no_main]

use keymint::{KeyFormat, Scanner, parse_key};
use libfuzzer_sys::fuzz_target;

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, text)) = data.split_first() else {
        return;
    };
    let id_len = 8 + usize::from(selector % 25);
    let scanners = [
        Scanner::new(),
        Scanner::with_id_len(id_len).expect("8..=32"),
        Scanner::for_formats([
            KeyFormat::new("sk_live").expect("valid format"),
            KeyFormat::builder("acme_prod_v2")
                .id_len(8)
                .secret_len(64)
                .build()
                .expect("valid format"),
        ]),
    ];
    for scanner in &scanners {
        let mut last_end = 0;
        for finding in scanner.scan(text) {
            let range = finding.range();
            assert!(last_end <= range.start && range.start < range.end && range.end <= text.len());
            last_end = range.end;
            assert!(range.start == 0 || !is_word(text[range.start - 1]));
            assert!(text.get(range.end).is_none_or(|&b| !is_word(b)));
            let key = std::str::from_utf8(&text[range]).expect("findings are ASCII");
            let parsed = parse_key(key).expect("findings parse");
            assert_eq!(finding.hint(), &parsed.hint());
        }
    }
});
