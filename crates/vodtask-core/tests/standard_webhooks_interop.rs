//! vodtask's signatures checked by a Standard Webhooks library vodtask did
//! not write: the Python package `standardwebhooks` (installed by
//! scripts/install-deps.sh).

#![allow(clippy::unwrap_used)]

use std::process::Command;

use vodtask_core::callbacks::signing::{SigningSecret, signature_header};

/// Runs the reference verifier; Ok(payload) or Err(its exception).
fn python_verify(
    secret: &str,
    id: &str,
    timestamp: i64,
    signature: &str,
    body: &str,
) -> Result<String, String> {
    let script = r#"
import json, sys
from standardwebhooks import Webhook
secret, msg_id, ts, sig, body = sys.argv[1:6]
try:
    payload = Webhook(secret).verify(body.encode(), {"webhook-id": msg_id, "webhook-timestamp": ts, "webhook-signature": sig})
    print(json.dumps(payload))
except Exception as e:
    print(type(e).__name__, e, file=sys.stderr)
    sys.exit(3)
"#;
    let out = Command::new("python3")
        .args([
            "-c",
            script,
            secret,
            id,
            &timestamp.to_string(),
            signature,
            body,
        ])
        .output()
        .expect("python3");
    match out.status.code() {
        Some(0) => Ok(String::from_utf8_lossy(&out.stdout).trim().to_string()),
        Some(3) => Err(String::from_utf8_lossy(&out.stderr).trim().to_string()),
        _ => panic!(
            "the verifier did not run (pip install standardwebhooks): {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn the_reference_library_accepts_our_signatures() {
    let secret = SigningSecret::generate();
    let body =
        r#"{"version":"4.0","eventType":"TranscodeComplete","eventId":"ev-1","data":{"status":0}}"#;
    let ts = now();
    let sig = signature_header(&[&secret], "ev-1", ts, body.as_bytes());
    let payload = python_verify(&secret.expose(), "ev-1", ts, &sig, body).unwrap();
    assert!(payload.contains("TranscodeComplete"), "{payload}");
}

#[test]
fn during_rotation_either_secret_verifies() {
    let (old, new) = (SigningSecret::generate(), SigningSecret::generate());
    let body = r#"{"eventId":"ev-2"}"#;
    let ts = now();
    let sig = signature_header(&[&new, &old], "ev-2", ts, body.as_bytes());
    assert!(sig.contains(' '), "two signatures, space separated: {sig}");
    python_verify(&old.expose(), "ev-2", ts, &sig, body).unwrap();
    python_verify(&new.expose(), "ev-2", ts, &sig, body).unwrap();
}

#[test]
fn the_reference_library_rejects_forgeries() {
    let secret = SigningSecret::generate();
    let ts = now();
    let sig = signature_header(&[&secret], "ev-3", ts, br#"{"a":1}"#);
    assert!(
        python_verify(&secret.expose(), "ev-3", ts, &sig, r#"{"a":2}"#).is_err(),
        "tampered body"
    );
    assert!(
        python_verify(
            &SigningSecret::generate().expose(),
            "ev-3",
            ts,
            &sig,
            r#"{"a":1}"#
        )
        .is_err(),
        "other secret"
    );
    assert!(
        python_verify(&secret.expose(), "ev-4", ts, &sig, r#"{"a":1}"#).is_err(),
        "other id"
    );
}
