//! `KeyRef::parse` and `ApiKey::parse` on any text: they never panic, they agree, and a key
//! that parses round-trips and is sliced where SPEC §2 says.
//!
//! Random text almost never carries a valid CRC32, so an input whose first byte is odd builds a
//! well-formed key from the bytes that follow (id and secret mapped into base62, checksum
//! computed) and then changes at most one byte of it: unchanged, it must parse; changed, it
//! must not (CRC32 detects every one-byte change, and its base62 form is injective).

#![no_main]

use libfuzzer_sys::fuzz_target;
use model::key::{
    ApiKey, CHECKSUM_LEN, ID_LEN, KEY_LEN, KeyRef, PREFIX, SECRET_LEN, SecretHash, checksum,
};

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

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
    assert_eq!(text.len(), KEY_LEN);
    let id = &text[PREFIX.len()..PREFIX.len() + ID_LEN];
    let secret_at = PREFIX.len() + ID_LEN + 1;
    let secret = &text[secret_at..secret_at + SECRET_LEN];
    let (head, sum) = text.split_at(KEY_LEN - CHECKSUM_LEN);
    assert!(text.starts_with(PREFIX) && &text[secret_at - 1..secret_at] == "_");
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
    let (edit, bytes) = bytes.split_first_chunk::<2>()?;
    let mut chars = bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()]);
    let mut text = Vec::with_capacity(KEY_LEN);
    text.extend_from_slice(PREFIX.as_bytes());
    text.extend(chars.by_ref().take(ID_LEN));
    text.push(b'_');
    text.extend(chars.take(SECRET_LEN));
    if text.len() != KEY_LEN - CHECKSUM_LEN {
        return None;
    }
    let head = String::from_utf8(text).ok()?;
    let whole = format!("{head}{}", checksum(&head));
    assert!(
        check(&whole),
        "a key built with its checksum must parse: {whole}"
    );
    let [at, byte] = *edit;
    let at = usize::from(at) % KEY_LEN;
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
