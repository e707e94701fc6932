//! Apps and their API keys. Only a SHA-256 of each key is stored: keys are
//! 256-bit random strings, so a fast hash is as safe as a slow one.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::ids::AppId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    pub id: AppId,
    pub name: String,
}

/// A freshly generated key: shown once, never stored.
pub struct ApiKey(String);

impl ApiKey {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        ApiKey(format!("vt_{}", URL_SAFE_NO_PAD.encode(bytes)))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> KeyHash {
        KeyHash::of(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyHash(pub String);

impl KeyHash {
    pub fn of(key: &str) -> Self {
        KeyHash(hex::encode(Sha256::digest(key.as_bytes())))
    }
}

pub fn validate_app_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "name",
            "must be 1..64 letters, digits, '-' or '_'",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_hash_stably() {
        let a = ApiKey::generate();
        let b = ApiKey::generate();
        assert_ne!(a.expose(), b.expose());
        assert_eq!(a.hash(), KeyHash::of(a.expose()));
        assert!(a.expose().starts_with("vt_"));
    }

    #[test]
    fn app_names() {
        assert!(validate_app_name("billing-prod_2").is_ok());
        assert!(validate_app_name("").is_err());
        assert!(validate_app_name("a b").is_err());
    }
}
