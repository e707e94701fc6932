//! `vodtask serve --tls-cert --tls-key`: both ports speak TLS, with a
//! certificate from a CA made here (rcgen); the Rust client and reqwest
//! trust that CA, and whoever does not is refused with a reason.

// A failed unwrap is a failed test, with its reason in the panic.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tokio::io::AsyncReadExt;
use vodtask_client::{Client, ConnectOptions, pb};
use vodtask_e2e::*;

/// PEM files of a test CA and of a server certificate it signed for
/// `localhost` and `127.0.0.1`.
struct Certs {
    ca_pem: Vec<u8>,
    cert: PathBuf,
    key: PathBuf,
}

fn make_certs(dir: &Path) -> Certs {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "vodtask test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate().unwrap();
    let mut server =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    server
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = server.signed_by(&key, &issuer).unwrap();

    let certs = Certs {
        ca_pem: ca_cert.pem().into_bytes(),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    };
    std::fs::write(&certs.cert, cert.pem()).unwrap();
    std::fs::write(&certs.key, key.serialize_pem()).unwrap();
    certs
}

fn tls_args(certs: &Certs) -> Vec<String> {
    vec![
        "--tls-cert".into(),
        certs.cert.display().to_string(),
        "--tls-key".into(),
        certs.key.display().to_string(),
    ]
}

fn start(data: &Path, certs: &Certs, extra: &[&str]) -> Server {
    let mut args = tls_args(certs);
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start(data, &args)
}

fn trusting(server: &Server, ca: Option<&[u8]>) -> ConnectOptions {
    let mut options = ConnectOptions::new(server.default_key());
    options.ca_cert_pem = ca.map(<[u8]>::to_vec);
    options
}

/// A reqwest client that trusts the test CA alone.
fn https_client(ca: &[u8], http1: bool) -> reqwest::Client {
    let _ = http_client();
    let builder =
        reqwest::Client::builder().tls_certs_only([reqwest::Certificate::from_pem(ca).unwrap()]);
    let builder = if http1 { builder.http1_only() } else { builder };
    builder.build().unwrap()
}

#[tokio::test]
async fn both_ports_speak_tls_to_clients_that_trust_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path());
    let clip = make_clip(dir.path(), "in.mp4", 1, 160, 120);
    let server = start(&dir.path().join("data"), &certs, &["--workers", "0"]);

    // The Rust client over https://, by IP and by name.
    let port = server.grpc_addr.rsplit(':').next().unwrap().to_string();
    for url in [
        format!("https://{}", server.grpc_addr),
        format!("https://localhost:{port}"),
    ] {
        let client = Client::connect(&url, trusting(&server, Some(&certs.ca_pem)))
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        client
            .task_overview(pb::GetTaskOverviewRequest::default())
            .await
            .unwrap();
    }
    let client = Client::connect(
        &format!("https://{}", server.grpc_addr),
        trusting(&server, Some(&certs.ca_pem)),
    )
    .await
    .unwrap();
    let uploaded = client.upload_file(&clip, None, "", None).await.unwrap();
    // --public-url defaults to https:// with TLS.
    let want_prefix = format!("https://{}/", server.http_addr);
    assert!(
        uploaded.file_url.starts_with(&want_prefix),
        "{}",
        uploaded.file_url
    );

    // The HTTP port: /healthz and the file, in HTTP/2 (ALPN) and HTTP/1.1.
    for (http1, version) in [
        (false, reqwest::Version::HTTP_2),
        (true, reqwest::Version::HTTP_11),
    ] {
        let http = https_client(&certs.ca_pem, http1);
        let health = http
            .get(format!("https://{}/healthz", server.http_addr))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), 200);
        assert_eq!(health.version(), version);
        assert_eq!(health.text().await.unwrap(), "ok\n");
        let file = http.get(&uploaded.file_url).send().await.unwrap();
        assert_eq!(file.status(), 200);
        assert_eq!(file.version(), version);
        let body = file.bytes().await.unwrap();
        assert_eq!(body.as_ref(), std::fs::read(&clip).unwrap().as_slice());
    }
}

#[tokio::test]
async fn clients_that_do_not_trust_the_certificate_or_speak_plain_text_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path());
    let server = start(&dir.path().join("data"), &certs, &["--workers", "0"]);

    // Without the CA: the system's roots do not know it.
    let url = format!("https://{}", server.grpc_addr);
    let e = Client::connect(&url, trusting(&server, None))
        .await
        .err()
        .expect("an unknown issuer is refused");
    assert_eq!(e.code_name(), "UNAVAILABLE", "{e}");
    let message = e.to_string();
    assert!(
        message.contains(&format!("TLS handshake with {} failed", server.grpc_addr))
            && message.contains("UnknownIssuer"),
        "{message}"
    );

    // Plain HTTP/2 to the TLS gRPC port fails (at connect or at the call).
    let plain = async {
        let client = Client::connect(
            &format!("http://{}", server.grpc_addr),
            trusting(&server, None),
        )
        .await?;
        client
            .task_overview(pb::GetTaskOverviewRequest::default())
            .await
    };
    let e = tokio::time::timeout(DEADLINE, plain)
        .await
        .expect("a plain client fails promptly")
        .expect_err("plain text is refused");
    assert_eq!(e.code_name(), "UNAVAILABLE", "{e}");

    // And https:// to a plain server: the handshake fails, and says so.
    let plain_server = Server::start(&dir.path().join("plain"), &["--workers", "0"]);
    let e = Client::connect(
        &format!("https://{}", plain_server.grpc_addr),
        trusting(&plain_server, Some(&certs.ca_pem)),
    )
    .await
    .err()
    .expect("no TLS there");
    assert_eq!(e.code_name(), "UNAVAILABLE", "{e}");
    let message = e.to_string();
    assert!(
        message.contains(&format!(
            "TLS handshake with {} failed",
            plain_server.grpc_addr
        )) && message.contains("does the server speak TLS?"),
        "{message}"
    );

    // Plain HTTP to the TLS file port fails too.
    let plain_http = http_client()
        .get(format!("http://{}/healthz", server.http_addr))
        .send()
        .await;
    assert!(plain_http.is_err(), "{plain_http:?}");

    // reqwest without the CA is refused as well.
    let untrusting = reqwest::Client::builder()
        .tls_certs_only([])
        .build()
        .unwrap()
        .get(format!("https://{}/healthz", server.http_addr))
        .send()
        .await;
    assert!(untrusting.is_err(), "{untrusting:?}");
}

/// A connection that never sends a ClientHello holds its slot only until
/// the idle timeout (or the handshake timeout) closes it.
#[tokio::test]
async fn a_silent_connection_does_not_hold_a_slot_of_a_tls_port() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path());
    let server = start(
        &dir.path().join("data"),
        &certs,
        &[
            "--workers",
            "0",
            "--idle-timeout",
            "1s",
            "--max-connections",
            "2",
        ],
    );
    for addr in [&server.grpc_addr, &server.http_addr] {
        let start = Instant::now();
        let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(20), silent.read(&mut buf))
            .await
            .expect("the server closes a silent connection");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{:?}",
            start.elapsed()
        );
    }
    // The port still serves.
    let client = Client::connect(
        &format!("https://{}", server.grpc_addr),
        trusting(&server, Some(&certs.ca_pem)),
    )
    .await
    .unwrap();
    client
        .task_overview(pb::GetTaskOverviewRequest::default())
        .await
        .unwrap();
}

/// `vodtask serve` with `args` fails at start; returns what it said.
fn serve_fails(data_dir: &Path, args: &[&str]) -> String {
    let out = Command::new(vodtask_bin())
        .arg("serve")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
        .args(args)
        .env_remove("VODTASK_TLS_CERT")
        .env_remove("VODTASK_TLS_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success(), "{args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn tls_flags_go_together_and_name_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path());
    let data = dir.path().join("data");
    let cert = certs.cert.display().to_string();
    let key = certs.key.display().to_string();

    let message = serve_fails(&data, &["--tls-cert", &cert]);
    assert!(message.contains("--tls-cert needs --tls-key"), "{message}");
    let message = serve_fails(&data, &["--tls-key", &key]);
    assert!(message.contains("--tls-key needs --tls-cert"), "{message}");

    let missing = dir.path().join("missing.pem").display().to_string();
    let message = serve_fails(&data, &["--tls-cert", &missing, "--tls-key", &key]);
    assert!(
        message.contains(&format!("{missing}: cannot read")),
        "{message}"
    );
    // A key where the certificate should be, and the reverse.
    let message = serve_fails(&data, &["--tls-cert", &key, "--tls-key", &key]);
    assert!(
        message.contains(&format!("{key}: no certificate in it")),
        "{message}"
    );
    let message = serve_fails(&data, &["--tls-cert", &cert, "--tls-key", &cert]);
    assert!(
        message.contains(&format!("{cert}: no private key in it")),
        "{message}"
    );
    // A key that is not the certificate's.
    let other_dir = dir.path().join("other");
    std::fs::create_dir(&other_dir).unwrap();
    let other = make_certs(&other_dir);
    let other_key = other.key.display().to_string();
    let message = serve_fails(&data, &["--tls-cert", &cert, "--tls-key", &other_key]);
    assert!(message.contains(&other_key), "{message}");
}
