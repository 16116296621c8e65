//! GitHub's secret scanning partner program (SPEC §4.6) as pure functions: the list of
//! GitHub's signing keys, and the check of a request's signature over its raw body.
//!
//! GitHub signs each alert batch with ECDSA P-256 over SHA-256 of the body: the
//! `Github-Public-Key-Signature` header is the base64 of the DER-encoded signature, and
//! `Github-Public-Key-Identifier` names the key, one of `public_keys` in the list GitHub serves
//! at `meta/public_keys/secret_scanning` (`{"public_keys": [{"key_identifier", "key" (PEM,
//! SubjectPublicKeyInfo), "is_current"}]}`).

use base64::Engine;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde::Deserialize;

/// Where GitHub serves its secret scanning signing keys.
pub const GITHUB_KEYS_URL: &str = "https://api.github.com/meta/public_keys/secret_scanning";
/// The header naming the signing key.
pub const KEY_ID_HEADER: &str = "github-public-key-identifier";
/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "github-public-key-signature";

/// GitHub's signing keys, by identifier.
#[derive(Debug, Clone, Default)]
pub struct SigningKeys(Vec<(String, VerifyingKey)>);

/// Why a key list could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the signing key list is not GitHub's shape: {0}")]
pub struct KeyListError(String);

#[derive(Deserialize)]
struct KeyList {
    public_keys: Vec<ListedKey>,
}

#[derive(Deserialize)]
struct ListedKey {
    key_identifier: String,
    key: String,
}

impl SigningKeys {
    /// Reads the key list as GitHub serves it. A listed key that is not a P-256 public key is
    /// left out (GitHub may list other kinds one day); a list that is not the shape at all, or
    /// holds no usable key, is an error.
    pub fn parse(bytes: &[u8]) -> Result<Self, KeyListError> {
        let list: KeyList =
            serde_json::from_slice(bytes).map_err(|e| KeyListError(e.to_string()))?;
        let keys: Vec<(String, VerifyingKey)> = list
            .public_keys
            .into_iter()
            .filter_map(|k| {
                let key = VerifyingKey::from_public_key_pem(k.key.trim()).ok()?;
                Some((k.key_identifier, key))
            })
            .collect();
        if keys.is_empty() {
            return Err(KeyListError("no P-256 public key in it".into()));
        }
        Ok(Self(keys))
    }

    /// The key named `id`.
    pub fn get(&self, id: &str) -> Option<&VerifyingKey> {
        self.0
            .iter()
            .find(|(name, _)| name == id)
            .map(|(_, key)| key)
    }

    /// Whether no key is known.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Whether `signature` (base64 of a DER ECDSA signature, as in the header) is `key`'s
/// signature of `body`. Anything malformed is simply not a valid signature.
pub fn signed_by(key: &VerifyingKey, signature: &str, body: &[u8]) -> bool {
    let Ok(der) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
        return false;
    };
    let Ok(signature) = Signature::from_der(&der) else {
        return false;
    };
    // Either of the two equivalent forms of a signature is GitHub's: verify the low-S one.
    let signature = signature.normalize_s().unwrap_or(signature);
    key.verify(body, &signature).is_ok()
}
