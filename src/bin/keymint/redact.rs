//! Keeping key-shaped text out of messages: everything the tool prints on stderr goes
//! through [`redact`], so a key given in the wrong place (`keymint hash KEY`, `keymint scan
//! KEY`) is echoed as its hint at most.

use std::borrow::Cow;

use keymint::parse_key;

/// Shortest run of random characters treated as possibly secret.
const MIN_SECRET_RUN: usize = 8;

/// Most characters between two parts of one broken key (`\r\n`, `. `, a pasted zero-width
/// or no-break space); a longer gap separates words.
const MAX_KEY_GAP: usize = 3;

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Whether `run` looks random: alphanumeric, long enough, and mixing at least two of
/// digits, upper and lower case, as base62 from a CSPRNG almost always does (an
/// all-lowercase run of 8 has odds of 1 in 1 000) and ordinary words and identifiers
/// rarely do.
fn looks_random(run: &str) -> bool {
    let bytes = run.as_bytes();
    if bytes.len() < MIN_SECRET_RUN || !bytes.iter().all(u8::is_ascii_alphanumeric) {
        return false;
    }
    let classes = [
        bytes.iter().any(u8::is_ascii_digit),
        bytes.iter().any(u8::is_ascii_uppercase),
        bytes.iter().any(u8::is_ascii_lowercase),
    ];
    classes.iter().filter(|c| **c).count() >= 2
}

/// Whether `word` (a maximal run of `[A-Za-z0-9_-]`) may hold part of a key: some segment
/// after its first `_` or `-` looks random. Wider than the key format on purpose, so that a
/// key pasted twice, truncated, suffixed or broken by a stray character is caught too.
fn looks_like_key(word: &str) -> bool {
    word.split(['_', '-']).skip(1).any(looks_random)
}

/// `text` with every key-shaped word replaced by its hint, or by `[REDACTED]` when it does
/// not parse as a key (a key with a typo is still mostly secret).
pub(crate) fn redact(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut copied = 0;
    // Where the last hidden word ended: a word at most a few stray characters after it
    // (`.`, `/`, `:`, `\r\n`, `. `, a no-break or zero-width space from a web page) is the
    // rest of the same key, so its first segment counts too.
    let mut hidden_end = None;
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
        let continues_key =
            hidden_end.is_some_and(|end| text[end..start].chars().count() <= MAX_KEY_GAP);
        if looks_like_key(word) || (continues_key && word.split(['_', '-']).any(looks_random)) {
            hidden_end = Some(i);
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
    fn near_keys_are_hidden_too() {
        let key = keymint::KeyFormat::new("sk_live")
            .unwrap()
            .generate()
            .unwrap();
        let key = key.expose_secret();
        let secret = keymint::parse_key(key).unwrap().expose_secret().to_owned();
        // A key broken by stray characters: one (`-`, `.`, ...), more than one byte (a
        // zero-width or no-break space pasted from a web page or PDF), or two (`\r\n`, `. `).
        let stray = |gap: &str| {
            let mut near = key.to_owned();
            near.insert_str(30, gap);
            near
        };
        for near in [
            format!("{key}{key}"),
            format!("{key}_old"),
            format!("{key}_old.txt"),
            key[..40].to_owned(),
            stray("-"),
            stray("."),
            stray("/"),
            stray(":"),
            stray(" "),
            stray("\u{200B}"),
            stray("\u{A0}"),
            stray("\r\n"),
            stray(". "),
            stray(", "),
        ] {
            let shown = redact(&near);
            for window in secret.as_bytes().windows(8) {
                let part = std::str::from_utf8(window).unwrap();
                assert!(!shown.contains(part), "{near:?} showed {part:?}: {shown}");
            }
            assert!(holds_key(&near), "{near:?}");
        }
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        for text in [
            "cannot read stdin: broken pipe",
            "--pepper-id applies only to --algorithm hmac-sha256",
            "no_such_file_or_directory",
            "sk_live_short_x",
            "x86_64-unknown-linux-gnu",
            "src/my_module_configuration.rs",
        ] {
            assert!(matches!(redact(text), Cow::Borrowed(_)), "{text}");
        }
    }
}
