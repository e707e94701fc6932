//! Checking a vodtask HTTP callback on the receiving side: the Standard
//! Webhooks signature made with the app's secret, and a timestamp within
//! five minutes; then the event, parsed.

use serde_json::Value;
use vodtask_core::callbacks::signing::{DEFAULT_TOLERANCE_SECONDS, SigningSecret, verify};

use crate::error::{Error, Result};

/// A verified callback: the envelope parsed, and its raw text.
#[derive(Debug, Clone)]
pub struct WebhookEvent {
    pub event_id: String,
    pub event_type: String,
    pub task_id: String,
    pub task_sequence: i64,
    /// The envelope's `data`.
    pub data: Value,
    pub content_json: String,
}

/// `headers` are the request's (names in any case); `body` exactly as
/// received.
pub fn verify_webhook(
    secret: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<WebhookEvent> {
    let secret =
        SigningSecret::parse("secret", secret).map_err(|e| Error::Webhook(e.to_string()))?;
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    verify(
        &secret,
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
        body,
        now,
        DEFAULT_TOLERANCE_SECONDS,
    )
    .map_err(|e| Error::Webhook(e.to_string()))?;
    let content_json = String::from_utf8(body.to_vec())
        .map_err(|_| Error::Webhook("the body is not UTF-8".into()))?;
    let envelope: Value = serde_json::from_str(&content_json)
        .map_err(|e| Error::Webhook(format!("the body is not JSON: {e}")))?;
    let text = |k: &str| envelope[k].as_str().unwrap_or_default().to_string();
    Ok(WebhookEvent {
        event_id: text("eventId"),
        event_type: text("eventType"),
        task_id: envelope["data"]["vodTaskId"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        task_sequence: envelope["taskSequence"].as_i64().unwrap_or(0),
        data: envelope["data"].clone(),
        content_json,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use vodtask_core::callbacks::signing::signature_header;

    #[test]
    fn a_signed_callback_verifies_and_a_tampered_one_does_not() {
        let secret = SigningSecret::generate();
        let body = br#"{"version":"4.0","eventType":"TranscodeComplete","eventId":"ev-1","taskSequence":1,"data":{"vodTaskId":"transcode-1","status":0}}"#;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let headers = |ts: i64, b: &[u8]| {
            vec![
                ("Webhook-Id".to_string(), "ev-1".to_string()),
                ("webhook-timestamp".to_string(), ts.to_string()),
                (
                    "webhook-signature".to_string(),
                    signature_header(&[&secret], "ev-1", ts, b),
                ),
            ]
        };
        let event = verify_webhook(&secret.expose(), &headers(now, body), body).expect("verifies");
        assert_eq!(event.event_type, "TranscodeComplete");
        assert_eq!(event.task_id, "transcode-1");
        assert_eq!(event.data["status"], 0);

        let mut tampered = body.to_vec();
        tampered[10] ^= 1;
        assert!(verify_webhook(&secret.expose(), &headers(now, body), &tampered).is_err());
        let stale = headers(now - 600, body);
        assert!(verify_webhook(&secret.expose(), &stale, body).is_err());
        let other = SigningSecret::generate();
        assert!(verify_webhook(&other.expose(), &headers(now, body), body).is_err());
    }
}
