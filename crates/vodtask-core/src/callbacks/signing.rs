//! The Standard Webhooks signature scheme, exactly: `webhook-id`,
//! `webhook-timestamp` (Unix seconds) and `webhook-signature` =
//! `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, several space-separated
//! while a rotated secret overlaps. Secrets are `whsec_<base64>`. Any
//! Standard Webhooks receiver library verifies these unchanged.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::error::{Error, Result};

const PREFIX: &str = "whsec_";
/// How far a callback's timestamp may be from the receiver's clock.
pub const DEFAULT_TOLERANCE_SECONDS: i64 = 300;

#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret(Vec<u8>);

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret(…)")
    }
}

impl SigningSecret {
    /// 32 random bytes.
    pub fn generate() -> Self {
        let mut key = vec![0u8; 32];
        rand::rng().fill_bytes(&mut key);
        SigningSecret(key)
    }

    /// Parses `whsec_<base64>` (the prefix is optional, as in the reference
    /// libraries).
    pub fn parse(field: &str, text: &str) -> Result<Self> {
        let b64 = text.strip_prefix(PREFIX).unwrap_or(text);
        let key = STANDARD
            .decode(b64)
            .map_err(|_| Error::invalid(field, "must be whsec_ followed by base64"))?;
        if key.is_empty() {
            return Err(Error::invalid(field, "must not be empty"));
        }
        Ok(SigningSecret(key))
    }

    pub fn expose(&self) -> String {
        format!("{PREFIX}{}", STANDARD.encode(&self.0))
    }

    /// `v1,<base64 signature>` of one message.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let tag = self
            .mac(msg_id, &timestamp.to_string(), body)
            .finalize()
            .into_bytes();
        format!("v1,{}", STANDARD.encode(tag))
    }

    /// The HMAC over `id.timestamp.body`, before finalisation (signing
    /// finalises it, verification compares in constant time).
    fn mac(&self, msg_id: &str, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
        // HMAC takes keys of any length, so this cannot fail.
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC accepts any key length");
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }
}

/// The `webhook-signature` value for every secret in force (the current one
/// first), space separated.
pub fn signature_header(
    secrets: &[&SigningSecret],
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    secrets
        .iter()
        .map(|s| s.sign(msg_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("webhook-timestamp is not a Unix time in seconds")]
    BadTimestamp,
    #[error("webhook-timestamp is more than {0} s away from now")]
    OutsideTolerance(i64),
    #[error("no signature matches")]
    NoMatch,
}

/// Checks a received callback: the timestamp within `tolerance` seconds of
/// `now`, and at least one `v1` signature made with `secret`. Comparison is
/// constant-time.
pub fn verify(
    secret: &SigningSecret,
    msg_id: Option<&str>,
    timestamp: Option<&str>,
    signatures: Option<&str>,
    body: &[u8],
    now: i64,
    tolerance: i64,
) -> Result<(), VerifyError> {
    let msg_id = msg_id.ok_or(VerifyError::MissingHeader("webhook-id"))?;
    let ts_text = timestamp.ok_or(VerifyError::MissingHeader("webhook-timestamp"))?;
    let signatures = signatures.ok_or(VerifyError::MissingHeader("webhook-signature"))?;
    let ts: i64 = ts_text
        .trim()
        .parse()
        .map_err(|_| VerifyError::BadTimestamp)?;
    // abs_diff: a timestamp header of i64::MIN must not overflow.
    if now.abs_diff(ts) > tolerance.unsigned_abs() {
        return Err(VerifyError::OutsideTolerance(tolerance));
    }
    for candidate in signatures.split_whitespace() {
        let Some(("v1", b64)) = candidate.split_once(',') else {
            continue;
        };
        let Ok(given) = STANDARD.decode(b64) else {
            continue;
        };
        if secret
            .mac(msg_id, ts_text.trim(), body)
            .verify_slice(&given)
            .is_ok()
        {
            return Ok(());
        }
    }
    Err(VerifyError::NoMatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example in the Standard Webhooks specification.
    #[test]
    fn matches_the_specification_example() {
        let secret = SigningSecret::parse("s", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let sig = secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn verify_accepts_any_of_several_signatures_and_rejects_the_rest() {
        let (old, new) = (SigningSecret::generate(), SigningSecret::generate());
        let header = signature_header(&[&new, &old], "id", 1000, b"body");
        assert_eq!(header.split(' ').count(), 2);
        // Verifies the callback above as received at `now`, with a given body.
        let check = |secret: &SigningSecret, body: &[u8], now: i64| {
            verify(
                secret,
                Some("id"),
                Some("1000"),
                Some(&header),
                body,
                now,
                300,
            )
        };
        assert_eq!(check(&old, b"body", 1000), Ok(()));
        assert_eq!(check(&new, b"body", 1000), Ok(()));
        assert_eq!(
            check(&SigningSecret::generate(), b"body", 1000),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(check(&new, b"tampered", 1000), Err(VerifyError::NoMatch));
        assert_eq!(
            check(&new, b"body", 2000),
            Err(VerifyError::OutsideTolerance(300))
        );
        assert_eq!(
            verify(&new, None, Some("1000"), Some(&header), b"body", 1000, 300),
            Err(VerifyError::MissingHeader("webhook-id"))
        );
    }

    #[test]
    fn secrets_round_trip() {
        let s = SigningSecret::generate();
        assert!(s.expose().starts_with("whsec_"));
        assert_eq!(SigningSecret::parse("s", &s.expose()).unwrap(), s);
        assert!(SigningSecret::parse("s", "whsec_!!").is_err());
    }
}
