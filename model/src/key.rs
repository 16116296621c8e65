//! The API key format (SPEC §2).
//!
//! prefix + `_` + key id (12 base62 chars) + `_` + secret (32 base62 chars) + checksum (6
//! base62 chars, CRC32 of everything before it, left-padded with `0`). The prefix is `kg` unless
//! a deployment chose its own (2–10 lowercase letters or digits, [`valid_prefix`]); a key's
//! length says how long its prefix is. The checksum lets the edge reject garbage without a
//! store lookup and lets secret scanners recognise leaked keys.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The prefix of every key of a deployment that chose none (SPEC §2).
pub const DEFAULT_PREFIX: &str = "kg";
/// The shortest and longest prefix a deployment may choose.
pub const MIN_PREFIX: usize = 2;
pub const MAX_PREFIX: usize = 10;
/// Prefixes of Keygate's other tokens (sessions, invitations), which no key prefix may be.
pub const RESERVED_PREFIXES: [&str; 2] = ["kgs", "kgi"];
/// Length of the id part (the public id without `key_`).
pub const ID_LEN: usize = 12;
/// Length of the secret part: 32 base62 chars carry 190 bits.
pub const SECRET_LEN: usize = 32;
/// Length of the checksum part.
pub const CHECKSUM_LEN: usize = 6;
/// Length of a key after its prefix and its `_`.
pub const BODY_LEN: usize = ID_LEN + 1 + SECRET_LEN + CHECKSUM_LEN;

/// Total length of a plaintext key with `prefix`.
pub const fn key_len(prefix: &str) -> usize {
    prefix.len() + 1 + BODY_LEN
}

/// Whether `prefix` may be a deployment's key prefix: 2–10 lowercase letters or digits, and
/// not the prefix of Keygate's session or invitation tokens.
pub fn valid_prefix(prefix: &str) -> bool {
    (MIN_PREFIX..=MAX_PREFIX).contains(&prefix.len())
        && prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && !RESERVED_PREFIXES.contains(&prefix)
}

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Whether `text` has a key's shape (a prefix of 2–10 lowercase letters or digits, `_`, then
/// the rest at its length, `_` after the id), before its alphabet and checksum are checked:
/// how a bearer token is told to be an API key rather than a session token (`kgs_` + 43
/// chars, shorter than any key), so that a key with a bad checksum is still refused as a key,
/// without a store read.
pub fn looks_like_key(text: &str) -> bool {
    shape(text).is_ok()
}

/// The prefix's length of a text shaped like a key, or why it is not one.
#[inline]
fn shape(text: &str) -> Result<usize, ParseError> {
    let n = text.len().wrapping_sub(1 + BODY_LEN);
    if !(MIN_PREFIX..=MAX_PREFIX).contains(&n) {
        return Err(ParseError::Length);
    }
    let bytes = text.as_bytes();
    let prefix_ok = bytes[..n].iter().fold(true, |ok, b| {
        ok & ((b.wrapping_sub(b'a') < 26) | (b.wrapping_sub(b'0') < 10))
    });
    if prefix_ok && bytes[n] == b'_' && bytes[n + 1 + ID_LEN] == b'_' {
        Ok(n)
    } else {
        Err(ParseError::Shape)
    }
}

/// Why a string is not a well-formed key. Callers outside tests never show this to a client:
/// every variant verifies as `NOT_FOUND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("a key has {} to {} characters", MIN_PREFIX + 1 + BODY_LEN, MAX_PREFIX + 1 + BODY_LEN)]
    Length,
    #[error("a key starts with its prefix and `_`, and has `_` after its id")]
    Shape,
    #[error("a key uses only the characters 0-9, A-Z and a-z")]
    Alphabet,
    #[error("the key's checksum does not match")]
    Checksum,
}

/// A well-formed plaintext key: its checksum matched. Whether it exists is the store's question.
///
/// `Debug` and `Display` never print the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    text: String,
}

impl ApiKey {
    /// Generates a new key with `prefix` (a [`valid_prefix`]) for `id_part` (12 base62
    /// chars) with a secret from the OS or Web Crypto CSPRNG.
    pub fn generate(prefix: &str, id_part: &str) -> Result<Self, getrandom::Error> {
        debug_assert!(valid_prefix(prefix));
        debug_assert_eq!(id_part.len(), ID_LEN);
        let secret = random_base62(SECRET_LEN)?;
        let mut text = String::with_capacity(key_len(prefix));
        text.push_str(prefix);
        text.push('_');
        text.push_str(id_part);
        text.push('_');
        text.push_str(&secret);
        let sum = checksum(&text);
        text.push_str(&sum);
        Ok(Self { text })
    }

    /// Parses `text`, checking shape, alphabet and checksum; no store is consulted.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        KeyRef::parse(text).map(|k| Self {
            text: k.text.to_owned(),
        })
    }

    /// The key as borrowed text, for what [`KeyRef`] answers.
    fn borrowed(&self) -> KeyRef<'_> {
        KeyRef {
            text: &self.text,
            id_at: self.text.len() - BODY_LEN,
        }
    }

    /// The prefix, without its `_`.
    pub fn prefix(&self) -> &str {
        self.borrowed().prefix()
    }

    /// The id part: the key's public id without its `key_` prefix.
    pub fn id_part(&self) -> &str {
        self.borrowed().id_part()
    }

    /// The public key id, `key_…`.
    pub fn key_id(&self) -> String {
        self.borrowed().key_id()
    }

    /// SHA-256 of the secret part, the only form in which a store holds it.
    pub fn secret_hash(&self) -> SecretHash {
        self.borrowed().secret_hash()
    }

    /// The plaintext. Call it only to return the key once, in the response that creates it.
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// Consumes the key into its plaintext, for that same single response.
    pub fn into_plaintext(self) -> String {
        self.text
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({}_{}_…)", self.prefix(), self.id_part())
    }
}

/// A well-formed plaintext key borrowed from a request: [`ApiKey::parse`] without the copy,
/// for the verification path. `Debug` never prints the secret.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyRef<'a> {
    text: &'a str,
    /// Where the id part starts: the prefix's length + 1.
    id_at: usize,
}

impl<'a> KeyRef<'a> {
    /// Checks shape (any prefix of 2–10 lowercase letters or digits: which one is the key's
    /// is its record's to say), alphabet and checksum; no store is consulted, nothing is
    /// allocated.
    pub fn parse(text: &'a str) -> Result<Self, ParseError> {
        let prefix_len = shape(text)?;
        let bytes = text.as_bytes();
        let id_at = prefix_len + 1;
        // As an array: its length known, the checks below unroll and vectorise as they did
        // when every key had the same length.
        let Ok(body) = <&[u8; BODY_LEN]>::try_from(&bytes[id_at..]) else {
            return Err(ParseError::Length);
        };
        // Every byte checked, without a branch per byte: range tests by wrapping subtraction
        // (letters folded to lower case) vectorise.
        let alnum = |ok: bool, b: &u8| {
            ok & ((b.wrapping_sub(b'0') < 10) | ((b | 0x20).wrapping_sub(b'a') < 26))
        };
        let id_ok = body[..ID_LEN].iter().fold(true, alnum);
        if !(id_ok & body[ID_LEN + 1..].iter().fold(true, alnum)) {
            return Err(ParseError::Alphabet);
        }
        let head = &bytes[..bytes.len() - CHECKSUM_LEN];
        // The checksum read back as a number (62⁶ > 2³², so the base62 text is unique):
        // multiplications instead of the divisions that would spell the expected text.
        let presented = body[BODY_LEN - CHECKSUM_LEN..]
            .iter()
            .fold(0u64, |n, b| n * 62 + u64::from(base62_value(*b)));
        if presented != u64::from(crc32fast::hash(head)) {
            return Err(ParseError::Checksum);
        }
        Ok(Self { text, id_at })
    }

    /// The prefix, without its `_`.
    pub fn prefix(&self) -> &'a str {
        &self.text[..self.id_at - 1]
    }

    /// The id part: the key's public id without its `key_` prefix.
    pub fn id_part(&self) -> &'a str {
        &self.text[self.id_at..self.id_at + ID_LEN]
    }

    /// The public key id, `key_…`.
    pub fn key_id(&self) -> String {
        ["key_", self.id_part()].concat()
    }

    /// SHA-256 of the secret part.
    pub fn secret_hash(&self) -> SecretHash {
        let start = self.id_at + ID_LEN + 1;
        SecretHash::of(&self.text[start..start + SECRET_LEN])
    }
}

impl fmt::Debug for KeyRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyRef({}_{}_…)", self.prefix(), self.id_part())
    }
}

/// SHA-256 of a key's secret, compared in constant time. Stored as lower-case hex.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretHash([u8; 32]);

impl SecretHash {
    /// Hashes a secret.
    pub fn of(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    /// Constant-time equality, so timing does not reveal how much of a hash matched. Compared
    /// as four 64-bit words OR-ed together (one `subtle` barrier rather than one per byte).
    pub fn matches(&self, other: &SecretHash) -> bool {
        let words = |h: &[u8; 32]| {
            let mut w = [0u64; 4];
            for (slot, chunk) in w.iter_mut().zip(h.chunks_exact(8)) {
                let mut bytes = [0u8; 8];
                bytes.copy_from_slice(chunk);
                *slot = u64::from_le_bytes(bytes);
            }
            w
        };
        // The words' differences folded without branches, then one constant-time test.
        let (a, b) = (words(&self.0), words(&other.0));
        let diff = (a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3]);
        diff.ct_eq(&0).into()
    }
}

impl serde::Serialize for SecretHash {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex(&self.0))
    }
}

impl<'de> serde::Deserialize<'de> for SecretHash {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        let digit = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        let mut out = [0u8; 32];
        let bytes = text.as_bytes();
        if bytes.len() != 64 {
            return Err(serde::de::Error::custom("a secret hash is 64 hex digits"));
        }
        for (slot, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            match (digit(pair[0]), digit(pair[1])) {
                (Some(hi), Some(lo)) => *slot = hi << 4 | lo,
                _ => return Err(serde::de::Error::custom("a secret hash is lower-case hex")),
            }
        }
        Ok(Self(out))
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash(…)")
    }
}

/// CRC32 of `head` in base62, left-padded with `0` to [`CHECKSUM_LEN`] chars.
pub fn checksum(head: &str) -> String {
    checksum_bytes(head).iter().map(|&b| b as char).collect()
}

/// The value of a base62 digit (0 for a byte outside the alphabet, which `parse` refuses
/// before it asks).
fn base62_value(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'A'..=b'Z' => b - b'A' + 10,
        b'a'..=b'z' => b - b'a' + 36,
        _ => 0,
    }
}

/// [`checksum`] as bytes.
fn checksum_bytes(head: &str) -> [u8; CHECKSUM_LEN] {
    let mut n = crc32fast::hash(head.as_bytes());
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(n % 62) as usize];
        n /= 62;
    }
    out
}

/// `len` uniformly random base62 chars from the CSPRNG (rejection sampling, no modulo bias).
pub fn random_base62(len: usize) -> Result<String, getrandom::Error> {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        getrandom::fill(&mut buf)?;
        for &b in &buf {
            // 248 = 4 × 62: bytes at or above it would favour the first eight symbols.
            if b < 248 && out.len() < len {
                out.push(ALPHABET[(b % 62) as usize] as char);
            }
        }
    }
    Ok(out)
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn id() -> String {
        random_base62(ID_LEN).expect("csprng")
    }

    #[test]
    fn a_secret_hash_is_stored_as_the_hex_sha256_of_the_secret() {
        let hash = SecretHash::of("abc");
        let stored = serde_json::to_string(&hash).expect("serialize");
        assert_eq!(
            stored,
            "\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\""
        );
        let back: SecretHash = serde_json::from_str(&stored).expect("deserialize");
        assert!(back.matches(&hash));
        for bad in ["\"BA7816BF\"", "\"zz\"", &stored.to_uppercase()] {
            assert!(serde_json::from_str::<SecretHash>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn generated_key_has_the_documented_shape() {
        let key = ApiKey::generate(DEFAULT_PREFIX, &id()).expect("csprng");
        let text = key.expose();
        assert_eq!(text.len(), key_len("kg"));
        assert_eq!(text.len(), 54);
        assert!(text.starts_with("kg_"));
        assert_eq!(key.prefix(), "kg");
        assert_eq!(&text[15..16], "_");
        assert_eq!(ApiKey::parse(text), Ok(key.clone()));
        assert!(key.key_id().starts_with("key_"));
        assert!(
            !format!("{key:?}").contains(&text[16..48]),
            "Debug must not print the secret"
        );
    }

    #[test]
    fn checksum_is_padded_base62() {
        assert_eq!(checksum(""), "000000");
        assert_eq!(checksum("kg_").len(), CHECKSUM_LEN);
    }

    #[test]
    fn garbage_is_rejected_before_the_checksum() {
        assert_eq!(ApiKey::parse(""), Err(ParseError::Length));
        assert_eq!(
            ApiKey::parse(&"x".repeat(key_len("kg"))),
            Err(ParseError::Shape)
        );
        let mut bad = ApiKey::generate(DEFAULT_PREFIX, &id())
            .expect("csprng")
            .into_plaintext();
        bad.replace_range(20..21, "-");
        assert_eq!(ApiKey::parse(&bad), Err(ParseError::Alphabet));
    }

    #[test]
    fn prefixes() {
        let cases: &[(&str, bool)] = &[
            ("kg", true),
            ("acme", true),
            ("a1b2c3d4e5", true),
            ("x", false),
            ("abcdefghijk", false),
            ("Acme", false),
            ("ac_me", false),
            ("ac-me", false),
            ("kgs", false),
            ("kgi", false),
            ("", false),
        ];
        for (prefix, valid) in cases {
            assert_eq!(valid_prefix(prefix), *valid, "{prefix}");
        }
        // A key's length says where its prefix ends; the checksum covers the prefix.
        let key = ApiKey::generate("acme", &id()).expect("csprng");
        assert!(key.expose().starts_with("acme_"));
        assert_eq!(KeyRef::parse(key.expose()).map(|k| k.prefix()), Ok("acme"));
        let renamed = key.expose().replacen("acme", "acmf", 1);
        assert_eq!(ApiKey::parse(&renamed), Err(ParseError::Checksum));
        let upper = key.expose().replacen("acme", "ACME", 1);
        assert_eq!(ApiKey::parse(&upper), Err(ParseError::Shape));
        let too_short = format!("k_{}", &key.expose()["acme_".len()..]);
        assert_eq!(ApiKey::parse(&too_short), Err(ParseError::Length));
    }

    #[test]
    fn distinct_secrets_hash_differently_and_compare_equal_to_themselves() {
        let a = ApiKey::generate(DEFAULT_PREFIX, &id()).expect("csprng");
        let b = ApiKey::generate(DEFAULT_PREFIX, a.id_part()).expect("csprng");
        assert!(a.secret_hash().matches(&a.secret_hash()));
        assert!(!a.secret_hash().matches(&b.secret_hash()));
    }

    proptest! {
        #[test]
        fn round_trip(prefix in "[a-z0-9]{2,10}", seed in "[0-9A-Za-z]{12}") {
            prop_assume!(valid_prefix(&prefix));
            let key = ApiKey::generate(&prefix, &seed).expect("csprng");
            let parsed = ApiKey::parse(key.expose()).expect("a generated key parses");
            prop_assert_eq!(parsed.prefix(), prefix.as_str());
            prop_assert_eq!(parsed.id_part(), seed.as_str());
            prop_assert!(parsed.secret_hash().matches(&key.secret_hash()));
        }

        #[test]
        fn any_one_char_change_is_rejected(
            prefix in "[a-z0-9]{2,10}",
            pos in 0usize..64,
            replacement in "[0-9A-Za-z_]",
        ) {
            prop_assume!(valid_prefix(&prefix));
            let key = ApiKey::generate(&prefix, &id()).expect("csprng").into_plaintext();
            let mut chars: Vec<char> = key.chars().collect();
            let pos = pos % chars.len();
            let new = replacement.chars().next().expect("one char");
            prop_assume!(chars[pos] != new);
            chars[pos] = new;
            let changed: String = chars.into_iter().collect();
            prop_assert!(ApiKey::parse(&changed).is_err());
        }

        #[test]
        fn parse_never_panics(text in "\\PC{0,80}") {
            let _ = ApiKey::parse(&text);
        }
    }
}
