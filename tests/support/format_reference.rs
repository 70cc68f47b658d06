//! The key format's checksum written from its definition in DESIGN.md, independently of the
//! crate's implementation, for tests that need to build well-formed keys by hand.

pub(crate) const BASE62: &[u8; 62] =
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// CRC-32/ISO-HDLC, bit by bit (reflected polynomial 0xEDB88320), from its definition.
pub(crate) fn reference_crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The 6-character checksum of the format contract: base62, most significant digit first.
pub(crate) fn reference_checksum(body: &str) -> String {
    let mut value = reference_crc32(body.as_bytes());
    let mut out = [b'0'; 6];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
    String::from_utf8(out.to_vec()).expect("base62 is ASCII")
}

/// `body` (`prefix_id_secret`) with its checksum appended: a well-formed key.
pub(crate) fn seal(body: &str) -> String {
    format!("{body}{}", reference_checksum(body))
}

/// `key` moved to `prefix`, with a recomputed checksum: what anyone can do, since CRC-32 is
/// public.
#[allow(dead_code)] // not every test binary that includes this module moves keys
pub(crate) fn with_prefix(key: &str, prefix: &str) -> String {
    let body = &key[..key.len() - 6];
    let (rest, secret) = body.rsplit_once('_').expect("a key has separators");
    let (_, id) = rest.rsplit_once('_').expect("a key has separators");
    seal(&format!("{prefix}_{id}_{secret}"))
}
