//! `upload_file` streams the file, and a file that cannot be read cancels
//! the upload instead of finishing it short.

// A failed unwrap is a failed test, with its reason in the panic.
#![allow(clippy::unwrap_used)]

use md5::{Digest, Md5};
use vodtask_client::{Client, Error, OpenOptions};

async fn open() -> (tempfile::TempDir, Client) {
    let dir = tempfile::tempdir().unwrap();
    let options = OpenOptions {
        workers: Some(1),
        ..OpenOptions::default()
    };
    let client = Client::open(dir.path().join("data"), options)
        .await
        .unwrap();
    (dir, client)
}

#[tokio::test]
async fn a_file_of_several_chunks_arrives_whole() {
    let (dir, client) = open().await;
    // Three and a half chunks, none of them alike.
    let bytes: Vec<u8> = (0..(7 << 19) as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let path = dir.path().join("big.bin");
    std::fs::write(&path, &bytes).unwrap();

    let uploaded = client.upload_file(&path, None, "", None).await.unwrap();
    let media = client.describe_media(&uploaded.file_id).await.unwrap();
    assert_eq!(media.file_name, "big.bin");
    assert_eq!(media.size, bytes.len() as i64);
    assert_eq!(media.md5, hex::encode(Md5::digest(&bytes)));
    client.close().await;
}

#[tokio::test]
async fn an_unreadable_file_is_a_file_error_and_uploads_nothing() {
    let (dir, client) = open().await;
    // A directory opens, and its first read fails.
    let e = client
        .upload_file(dir.path(), None, "", None)
        .await
        .unwrap_err();
    assert_eq!(e.code_name(), "INVALID_ARGUMENT");
    match &e {
        Error::File { path, source } => {
            assert_eq!(path, dir.path());
            assert_eq!(source.raw_os_error(), Some(21), "EISDIR: {e}");
        }
        other => panic!("expected a file error, got {other:?}"),
    }
    let missing = dir.path().join("nope.mp4");
    let e = client
        .upload_file(&missing, None, "", None)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::File { source, .. } if source.kind() == std::io::ErrorKind::NotFound),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .starts_with(&format!("path: {}: ", missing.display())),
        "{e}"
    );

    // No upload was finished: the app's queue has no NewFileUpload event.
    let events = client.pull_events(16, 0).await.unwrap();
    assert!(events.is_empty(), "{events:?}");
    client.close().await;
}
