//! What `Client::connect` says when it cannot connect: a bad URL, a closed
//! port, a server that never answers, an unusable CA (a server's untrusted
//! certificate: tests/e2e/tls.rs).

// A failed unwrap is a failed test, with its reason in the panic.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use vodtask_client::{Client, ConnectOptions, Error};

async fn connect_err(url: &str, options: ConnectOptions) -> Error {
    match Client::connect(url, options).await {
        Ok(_) => panic!("{url}: connected"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn a_url_without_a_scheme_is_an_invalid_argument_naming_the_rule() {
    let e = connect_err("localhost:50051", ConnectOptions::new("k")).await;
    assert_eq!(e.code_name(), "INVALID_ARGUMENT", "{e}");
    assert_eq!(
        e.to_string(),
        r#"url: must start with http:// or https://, got "localhost:50051""#
    );
    let e = connect_err("grpc://localhost:50051", ConnectOptions::new("k")).await;
    assert_eq!(e.code_name(), "INVALID_ARGUMENT", "{e}");
}

#[tokio::test]
async fn a_closed_port_is_a_refused_connection_to_its_address() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    for scheme in ["http", "https"] {
        let e = connect_err(&format!("{scheme}://{addr}"), ConnectOptions::new("k")).await;
        assert_eq!(e.code_name(), "UNAVAILABLE", "{e}");
        assert_eq!(
            e.to_string(),
            format!("transport: connection refused to {addr}")
        );
    }
}

#[tokio::test]
async fn a_tls_server_that_never_answers_times_out() {
    // Listening, never accepting: the kernel completes the TCP handshake,
    // nobody answers the ClientHello.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut options = ConnectOptions::new("k");
    options.connect_timeout = Duration::from_millis(300);
    let e = connect_err(&format!("https://{addr}"), options).await;
    assert_eq!(e.code_name(), "UNAVAILABLE", "{e}");
    assert_eq!(
        e.to_string(),
        format!("transport: timed out connecting to {addr} after 300ms")
    );
}

#[tokio::test]
async fn an_unusable_ca_is_an_invalid_argument() {
    let mut options = ConnectOptions::new("k");
    options.ca_cert_pem = Some(b"not a certificate".to_vec());
    let e = connect_err("https://127.0.0.1:1", options.clone()).await;
    assert_eq!(e.code_name(), "INVALID_ARGUMENT", "{e}");
    assert!(e.to_string().starts_with("ca_cert: no certificate"), "{e}");

    // A CA for a plain-text URL is a mistake, not silently ignored.
    let e = connect_err("http://127.0.0.1:1", options).await;
    assert_eq!(e.code_name(), "INVALID_ARGUMENT", "{e}");
    assert!(e.to_string().starts_with("ca_cert: given for"), "{e}");
}
