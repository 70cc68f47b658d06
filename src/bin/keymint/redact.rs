//! Keeping key-shaped text out of messages: everything the tool prints on stderr goes
//! through [`redact`], so a key given in the wrong place (`keymint hash KEY`, `keymint scan
//! KEY`) is echoed as its hint at most.

use std::borrow::Cow;

use keymint::format::{MAX_ID_LEN, MAX_PREFIX_LEN, MIN_ID_LEN, MIN_SECRET_LEN};
use keymint::parse_key;

/// Shortest run after the last `_` that may be a secret with its checksum.
const MIN_TAIL: usize = MIN_SECRET_LEN + 6;

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Whether `word` (a maximal run of `[A-Za-z0-9_]`) has the shape of a key, checksum or
/// not: a typo in a real key is still a secret.
fn looks_like_key(word: &str) -> bool {
    let Some((rest, tail)) = word.rsplit_once('_') else {
        return false;
    };
    let Some((prefix, id)) = rest.rsplit_once('_') else {
        return false;
    };
    tail.len() >= MIN_TAIL
        && tail.bytes().all(|b| b.is_ascii_alphanumeric())
        && (MIN_ID_LEN..=MAX_ID_LEN).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric())
        && !prefix.is_empty()
        && prefix.len() <= MAX_PREFIX_LEN
}

/// `text` with every key-shaped word replaced by its hint, or by `[REDACTED]` when it does
/// not parse as a key (a key with a typo is still mostly secret).
pub(crate) fn redact(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if !is_word_byte(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_word_byte(bytes[i]) {
            i += 1;
        }
        let word = &text[start..i];
        if looks_like_key(word) {
            out.push_str(&text[copied..start]);
            match parse_key(word) {
                Ok(key) => out.push_str(key.hint().as_str()),
                Err(_) => out.push_str("[REDACTED]"),
            }
            copied = i;
        }
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// Whether `text` holds anything [`redact`] would hide.
pub(crate) fn holds_key(text: &str) -> bool {
    matches!(redact(text), Cow::Owned(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_become_hints_and_near_keys_are_hidden() {
        let key = keymint::KeyFormat::new("sk_live")
            .unwrap()
            .generate()
            .unwrap();
        let text = format!("error: unexpected argument '{}' found", key.expose_secret());
        let shown = redact(&text);
        assert!(!shown.contains(key.expose_secret()), "{shown}");
        assert!(shown.contains(key.hint().as_str()), "{shown}");

        let mut typo = key.expose_secret().to_owned();
        typo.pop();
        typo.push('!');
        let typo = &typo[..typo.len() - 1]; // one character short: the checksum fails
        let shown = redact(typo);
        assert_eq!(shown, "[REDACTED]");
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        for text in [
            "cannot read stdin: broken pipe",
            "--pepper-id applies only to --algorithm hmac-sha256",
            "no_such_file_or_directory",
            "sk_live_short_x",
        ] {
            assert!(matches!(redact(text), Cow::Borrowed(_)), "{text}");
        }
    }
}
