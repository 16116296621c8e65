//! `KeyRef::parse` and `ApiKey::parse` on any text: they never panic, they agree, and a key
//! that parses round-trips and is sliced where SPEC §2 says.
//!
//! Random text almost never carries a valid CRC32, so an input whose first byte is odd builds a
//! well-formed key from the bytes that follow (a prefix of 2–10 lowercase letters or digits, id
//! and secret mapped into base62, checksum computed) and then changes at most one byte of it:
//! unchanged, it must parse; changed, it must not (CRC32 detects every one-byte change, and its
//! base62 form is injective).

#![no_main]

use libfuzzer_sys::fuzz_target;
use model::key::{
    ApiKey, CHECKSUM_LEN, ID_LEN, KeyRef, MAX_PREFIX, MIN_PREFIX, SECRET_LEN, SecretHash, checksum,
    key_len, looks_like_key,
};

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// What a prefix is made of.
const PREFIX_ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((mode, rest)) if mode & 1 == 1 => {
            built(rest);
        }
        _ => {
            if let Ok(text) = std::str::from_utf8(data) {
                check(text);
            }
        }
    }
});

/// Parses `text` both ways and checks what a parsed key promises; returns whether it parsed.
fn check(text: &str) -> bool {
    let borrowed = KeyRef::parse(text);
    let owned = ApiKey::parse(text);
    assert_eq!(borrowed.err(), owned.as_ref().err().copied(), "{text:?}");
    let (Ok(key), Ok(owned)) = (borrowed, owned) else {
        return false;
    };
    assert_eq!(
        owned.expose(),
        text,
        "the parsed key is the text it came from"
    );
    let prefix = key.prefix();
    assert_eq!(owned.prefix(), prefix);
    assert!((MIN_PREFIX..=MAX_PREFIX).contains(&prefix.len()));
    assert!(prefix.bytes().all(|b| PREFIX_ALPHABET.contains(&b)));
    assert!(looks_like_key(text));
    assert_eq!(text.len(), key_len(prefix));
    let id_at = prefix.len() + 1;
    let id = &text[id_at..id_at + ID_LEN];
    let secret_at = id_at + ID_LEN + 1;
    let secret = &text[secret_at..secret_at + SECRET_LEN];
    let (head, sum) = text.split_at(text.len() - CHECKSUM_LEN);
    assert!(
        text[prefix.len()..].starts_with('_') && &text[secret_at - 1..secret_at] == "_",
        "{text:?}"
    );
    assert_eq!((key.id_part(), owned.id_part()), (id, id));
    assert_eq!(key.key_id(), format!("key_{id}"));
    assert_eq!(owned.key_id(), key.key_id());
    assert!(model::id::Kind::Key.matches(&key.key_id()));
    assert!(key.secret_hash().matches(&SecretHash::of(secret)));
    assert!(owned.secret_hash().matches(&key.secret_hash()));
    assert_eq!(checksum(head), sum);
    for shown in [format!("{key:?}"), format!("{owned:?}")] {
        assert!(!shown.contains(secret), "Debug printed the secret: {shown}");
    }
    assert_eq!(ApiKey::parse(&owned.clone().into_plaintext()), Ok(owned));
    true
}

/// A well-formed key from `bytes`, then at most one byte of it changed.
fn built(bytes: &[u8]) -> Option<()> {
    let (edit, bytes) = bytes.split_first_chunk::<3>()?;
    let prefix_len = MIN_PREFIX + usize::from(edit[2]) % (MAX_PREFIX - MIN_PREFIX + 1);
    let (prefix, bytes) = bytes.split_at_checked(prefix_len)?;
    let mut chars = bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()]);
    let mut text = Vec::with_capacity(prefix_len + 1 + ID_LEN + 1 + SECRET_LEN + CHECKSUM_LEN);
    text.extend(
        prefix
            .iter()
            .map(|b| PREFIX_ALPHABET[usize::from(*b) % PREFIX_ALPHABET.len()]),
    );
    text.push(b'_');
    text.extend(chars.by_ref().take(ID_LEN));
    text.push(b'_');
    text.extend(chars.take(SECRET_LEN));
    if text.len() != prefix_len + 1 + ID_LEN + 1 + SECRET_LEN {
        return None;
    }
    let head = String::from_utf8(text).ok()?;
    let whole = format!("{head}{}", checksum(&head));
    assert!(
        check(&whole),
        "a key built with its checksum must parse: {whole}"
    );
    let [at, byte, _] = *edit;
    let at = usize::from(at) % whole.len();
    let mut changed = whole.clone().into_bytes();
    changed[at] = byte;
    if let Ok(changed) = String::from_utf8(changed) {
        assert_eq!(
            check(&changed),
            changed == whole,
            "one byte changed: {changed:?}"
        );
    }
    Some(())
}
