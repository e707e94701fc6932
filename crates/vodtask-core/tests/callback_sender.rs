//! One callback attempt against a real HTTP receiver on loopback: signed
//! headers, the address policy, and how each kind of answer is classified.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use vodtask_core::callbacks::sender::{Attempt, Callback, CallbackSender, Outcome};
use vodtask_core::callbacks::signing::{SigningSecret, verify};
use vodtask_core::outbound::AddressPolicy;

#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(HeaderMap, String)>>>);

async fn ok(State(r): State<Received>, headers: HeaderMap, body: String) -> impl IntoResponse {
    r.0.lock().unwrap().push((headers, body));
    (StatusCode::NO_CONTENT, "")
}

async fn receiver() -> (SocketAddr, Received) {
    let received = Received::default();
    let app = Router::new()
        .route("/ok", post(ok))
        .route(
            "/gone",
            post(|| async { (StatusCode::GONE, "unsubscribed") }),
        )
        .route(
            "/busy",
            post(|| async {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::RETRY_AFTER, "7")],
                    "busy",
                )
            }),
        )
        .route(
            "/busy-until",
            post(|| async {
                let at = chrono::Utc::now() + chrono::Duration::seconds(120);
                let date = at.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(header::RETRY_AFTER, date)],
                    "",
                )
            }),
        )
        .route(
            "/moved",
            post(|| async { (StatusCode::FOUND, [(header::LOCATION, "/ok")], "") }),
        )
        .route(
            "/slow",
            post(|| async {
                // Longer than any timeout below; the sender gives up first.
                tokio::time::sleep(Duration::from_secs(30)).await;
                StatusCode::OK
            }),
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, received)
}

fn loopback_allowed() -> CallbackSender {
    let allowed = ["127.0.0.1/32", "::1/128"]
        .iter()
        .map(|c| AddressPolicy::parse_cidr(c).unwrap())
        .collect();
    CallbackSender::new(AddressPolicy::new(allowed)).unwrap()
}

async fn send(sender: &CallbackSender, url: &str, secrets: &[&SigningSecret]) -> Attempt {
    sender
        .send(&Callback {
            url,
            event_id: "ev-123",
            body: r#"{"version":"4.0","eventType":"NewFileUpload"}"#,
            secrets,
            timeout: Duration::from_millis(500),
            timestamp: chrono::Utc::now().timestamp(),
        })
        .await
}

#[tokio::test]
async fn a_delivered_callback_carries_the_body_and_signatures_of_every_secret() {
    let (addr, received) = receiver().await;
    let (old, new) = (SigningSecret::generate(), SigningSecret::generate());
    let attempt = send(
        &loopback_allowed(),
        &format!("http://{addr}/ok"),
        &[&new, &old],
    )
    .await;
    assert_eq!(attempt.outcome, Outcome::Delivered, "{attempt:?}");
    assert_eq!(attempt.http_status, Some(204));

    let got = received.0.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    let (headers, body) = &got[0];
    assert_eq!(body, r#"{"version":"4.0","eventType":"NewFileUpload"}"#);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["webhook-id"], "ev-123");
    let h = |name: &str| headers.get(name).map(|v| v.to_str().unwrap());
    for secret in [&new, &old] {
        verify(
            secret,
            h("webhook-id"),
            h("webhook-timestamp"),
            h("webhook-signature"),
            body.as_bytes(),
            chrono::Utc::now().timestamp(),
            300,
        )
        .unwrap();
    }
}

#[tokio::test]
async fn internal_addresses_are_refused_unless_allowed() {
    let (addr, received) = receiver().await;
    let secret = SigningSecret::generate();
    let closed = CallbackSender::new(AddressPolicy::default()).unwrap();

    let literal = send(&closed, &format!("http://{addr}/ok"), &[&secret]).await;
    assert_eq!(literal.outcome, Outcome::Failed { retry_after: None });
    assert!(literal.error.contains("not allowed"), "{}", literal.error);

    let by_name = send(
        &closed,
        &format!("http://localhost:{}/ok", addr.port()),
        &[&secret],
    )
    .await;
    assert_eq!(by_name.http_status, None);
    assert!(
        by_name.error.contains("no address allowed"),
        "{}",
        by_name.error
    );
    assert!(
        received.0.lock().unwrap().is_empty(),
        "nothing reached the receiver"
    );

    let open = send(
        &loopback_allowed(),
        &format!("http://localhost:{}/ok", addr.port()),
        &[&secret],
    )
    .await;
    assert_eq!(open.outcome, Outcome::Delivered, "{open:?}");
}

#[tokio::test]
async fn answers_are_classified() {
    let (addr, received) = receiver().await;
    let sender = loopback_allowed();
    let secret = SigningSecret::generate();
    let url = |path: &str| format!("http://{addr}{path}");

    let gone = send(&sender, &url("/gone"), &[&secret]).await;
    assert_eq!((gone.outcome, gone.http_status), (Outcome::Gone, Some(410)));
    assert_eq!(gone.response, "unsubscribed");

    let busy = send(&sender, &url("/busy"), &[&secret]).await;
    assert_eq!(
        busy.outcome,
        Outcome::Failed {
            retry_after: Some(Duration::from_secs(7))
        }
    );
    assert_eq!(busy.http_status, Some(503));

    let until = send(&sender, &url("/busy-until"), &[&secret]).await;
    let Outcome::Failed {
        retry_after: Some(wait),
    } = until.outcome
    else {
        panic!("{until:?}")
    };
    assert!(wait > Duration::from_secs(100) && wait <= Duration::from_secs(120));

    let moved = send(&sender, &url("/moved"), &[&secret]).await;
    assert_eq!(moved.outcome, Outcome::Failed { retry_after: None });
    assert_eq!(moved.http_status, Some(302));
    assert!(
        received.0.lock().unwrap().is_empty(),
        "the redirect was not followed"
    );

    let slow = send(&sender, &url("/slow"), &[&secret]).await;
    assert_eq!(
        (slow.outcome, slow.http_status),
        (Outcome::Failed { retry_after: None }, None)
    );
    assert!(
        slow.error.contains("no answer within 0.5 s"),
        "{}",
        slow.error
    );

    let refused = send(&sender, "http://127.0.0.1:9/ok", &[&secret]).await;
    assert_eq!(refused.http_status, None);
    assert!(!refused.error.is_empty());
}
