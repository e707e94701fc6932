//! One HTTP callback attempt: POST the event envelope, signed the Standard
//! Webhooks way, to an address the policy permits, and classify the answer.
//! Only 2xx is success; redirects are not followed; 410 Gone means "stop
//! sending me this"; anything else is a failure, with the receiver's
//! Retry-After if it gave one. Retrying and scheduling are the caller's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER, USER_AGENT};

use super::signing::{SigningSecret, signature_header};
use crate::error::Result;
use crate::outbound::{
    AddressPolicy, Redirects, describe_error, guarded_client, literal_ip, validate_url,
};

/// A receiver's Retry-After is honoured up to this long.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);
/// The start of a response body kept for the attempt log.
const EXCERPT_BYTES: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// 410 Gone: the receiver wants no more of this event.
    Gone,
    /// Any other answer, a timeout or a connection error.
    Failed {
        retry_after: Option<Duration>,
    },
}

/// What one attempt did, for the attempt log.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub outcome: Outcome,
    pub http_status: Option<u16>,
    pub elapsed: Duration,
    /// The first 2 KiB of the response body.
    pub response: String,
    /// Why the attempt failed without an HTTP answer (empty otherwise).
    pub error: String,
}

/// One callback to send.
pub struct Callback<'a> {
    pub url: &'a str,
    /// The eventId: `webhook-id`, the same on every attempt.
    pub event_id: &'a str,
    /// The envelope, exactly.
    pub body: &'a str,
    /// The secrets in force, current first (two during a rotation).
    pub secrets: &'a [&'a SigningSecret],
    pub timeout: Duration,
    /// Unix seconds of this attempt (`webhook-timestamp`).
    pub timestamp: i64,
}

#[derive(Clone)]
pub struct CallbackSender {
    client: reqwest::Client,
    policy: Arc<AddressPolicy>,
}

impl CallbackSender {
    pub fn new(policy: AddressPolicy) -> Result<CallbackSender> {
        let policy = Arc::new(policy);
        let client = guarded_client(Arc::clone(&policy), Redirects::Refuse)?;
        Ok(CallbackSender { client, policy })
    }

    pub async fn send(&self, cb: &Callback<'_>) -> Attempt {
        let started = Instant::now();
        let failed = |error: String| Attempt {
            outcome: Outcome::Failed { retry_after: None },
            http_status: None,
            elapsed: started.elapsed(),
            response: String::new(),
            error,
        };
        let url = match validate_url("notification_url", cb.url) {
            Ok(url) => url,
            Err(e) => return failed(e.to_string()),
        };
        // An IP-literal host is connected to without a DNS lookup, so the
        // resolver's check never sees it.
        if let Some(ip) = literal_ip(&url)
            && !self.policy.permits(ip)
        {
            return failed(format!("address {ip} is not allowed for callbacks"));
        }
        let signature = signature_header(cb.secrets, cb.event_id, cb.timestamp, cb.body.as_bytes());
        let sent = self
            .client
            .post(url)
            .timeout(cb.timeout)
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, concat!("vodtask/", env!("CARGO_PKG_VERSION")))
            .header("webhook-id", cb.event_id)
            .header("webhook-timestamp", cb.timestamp.to_string())
            .header("webhook-signature", signature)
            .body(cb.body.to_string())
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => return failed(describe_error(&e, cb.timeout)),
        };
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let excerpt = excerpt(response).await;
        let outcome = if status.is_success() {
            Outcome::Delivered
        } else if status == reqwest::StatusCode::GONE {
            Outcome::Gone
        } else {
            Outcome::Failed { retry_after }
        };
        Attempt {
            outcome,
            http_status: Some(status.as_u16()),
            elapsed: started.elapsed(),
            response: excerpt,
            error: String::new(),
        }
    }
}

/// Retry-After in seconds or as an HTTP date, capped.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
            (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

async fn excerpt(mut response: reqwest::Response) -> String {
    let mut kept = Vec::new();
    while kept.len() < EXCERPT_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
            _ => break,
        }
    }
    kept.truncate(EXCERPT_BYTES);
    String::from_utf8_lossy(&kept).into_owned()
}
