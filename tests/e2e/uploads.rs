//! Uploads that end early, and what the data dir keeps: a client that
//! cancels an UploadMedia stream or whose deadline passes leaves no temp
//! file and no partial media file behind; DescribeMedia names no server
//! path; the data dir is readable by the server's user only.

// A failed unwrap is a failed test, with its reason in the panic.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use vodtask_e2e::v1 as pb;
use vodtask_e2e::*;

const CHUNK: usize = 64 * 1024;
const CHUNKS: usize = 8;
const UPLOADS: usize = 100;

fn header(file_name: &str) -> pb::UploadMediaRequest {
    pb::UploadMediaRequest {
        part: Some(pb::upload_media_request::Part::Header(
            pb::UploadMediaHeader {
                file_name: file_name.to_string(),
                source_context: String::new(),
                procedure: None,
            },
        )),
    }
}

fn chunk(bytes: &[u8]) -> pb::UploadMediaRequest {
    pb::UploadMediaRequest {
        part: Some(pb::upload_media_request::Part::Chunk(bytes.to_vec())),
    }
}

/// Upload temp files in `<data>/tmp`, by name, with their sizes.
fn temp_uploads(data: &Path) -> Vec<(String, u64)> {
    let Ok(entries) = std::fs::read_dir(data.join("tmp")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let size = e.metadata().map_or(0, |m| m.len());
            name.starts_with("upload-").then_some((name, size))
        })
        .collect()
}

/// Every file under `<data>/media`, with its size.
fn media_files(data: &Path) -> Vec<(String, u64)> {
    let mut found = Vec::new();
    for dir in std::fs::read_dir(data.join("media")).unwrap().flatten() {
        for file in std::fs::read_dir(dir.path()).unwrap().flatten() {
            let size = file.metadata().unwrap().len();
            found.push((file.path().display().to_string(), size));
        }
    }
    found
}

/// Where an upload is cut off.
#[derive(Debug, Clone, Copy)]
enum Cut {
    /// The client drops the call after sending `chunks` chunks (0: the
    /// header only) and never ends the stream: at once, or once the server
    /// has written them to its temp file.
    Dropped {
        chunks: usize,
        wait_for_server: bool,
    },
    /// A per-call deadline passes while the stream is still open.
    Deadline { chunks: usize, millis: u64 },
    /// The whole file and the end of the stream are sent, then the call is
    /// dropped after a while: it may or may not have been recorded, but
    /// only whole.
    AfterEnd { micros: u64 },
}

fn pick(rng: &mut StdRng, i: usize) -> Cut {
    match i % 5 {
        0 => Cut::Dropped {
            chunks: 0,
            wait_for_server: rng.random(),
        },
        1 => Cut::Dropped {
            chunks: rng.random_range(1..CHUNKS - 1),
            wait_for_server: rng.random(),
        },
        2 => Cut::Dropped {
            chunks: CHUNKS - 1,
            wait_for_server: rng.random(),
        },
        3 => Cut::Deadline {
            chunks: rng.random_range(0..CHUNKS),
            millis: rng.random_range(1..40),
        },
        _ => Cut::AfterEnd {
            micros: rng.random_range(0..30_000),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancelled_uploads_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--workers", "0"]);
    let mut media = server.media().await;
    let mut rng = StdRng::seed_from_u64(29);
    let payload: Vec<u8> = (0..CHUNK * CHUNKS).map(|_| rng.random()).collect();
    // Senders of streams that must never end cleanly: dropping one would
    // end its stream, which is a (short) complete upload.
    let mut open_streams = Vec::new();
    let mut recorded = Vec::new();

    for i in 0..UPLOADS {
        let cut = pick(&mut rng, i);
        match cut {
            Cut::Dropped {
                chunks,
                wait_for_server,
            } => {
                let before: HashSet<String> =
                    temp_uploads(&data).into_iter().map(|(n, _)| n).collect();
                let (tx, rx) = mpsc::channel(CHUNKS + 1);
                tx.send(header("cut.bin")).await.unwrap();
                for c in payload.chunks(CHUNK).take(chunks) {
                    tx.send(chunk(c)).await.unwrap();
                }
                let delay = Duration::from_micros(rng.random_range(0..3000));
                let written = (chunks * CHUNK) as u64;
                let server_has_it = async {
                    if !wait_for_server {
                        tokio::time::sleep(delay).await;
                        return;
                    }
                    let start = Instant::now();
                    while !temp_uploads(&data)
                        .iter()
                        .any(|(n, size)| !before.contains(n) && *size >= written)
                    {
                        assert!(
                            start.elapsed() < DEADLINE,
                            "upload {i} ({cut:?}) never began"
                        );
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                };
                tokio::select! {
                    r = media.upload_media(ReceiverStream::new(rx)) => {
                        panic!("upload {i} ({cut:?}) ended although its stream is open: {r:?}")
                    }
                    () = server_has_it => {}
                }
                open_streams.push(tx);
            }
            Cut::Deadline { chunks, millis } => {
                let (tx, rx) = mpsc::channel(CHUNKS + 1);
                tx.send(header("late.bin")).await.unwrap();
                for c in payload.chunks(CHUNK).take(chunks) {
                    tx.send(chunk(c)).await.unwrap();
                }
                let mut req = tonic::Request::new(ReceiverStream::new(rx));
                req.set_timeout(Duration::from_millis(millis));
                let r = media.upload_media(req).await;
                let e = r.expect_err("the deadline passes before the stream ends");
                assert!(
                    matches!(
                        e.code(),
                        tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
                    ),
                    "upload {i} ({cut:?}): {e:?}"
                );
                open_streams.push(tx);
            }
            Cut::AfterEnd { micros } => {
                let mut messages = vec![header("whole.bin")];
                messages.extend(payload.chunks(CHUNK).map(chunk));
                tokio::select! {
                    r = media.upload_media(tokio_stream::iter(messages)) => {
                        recorded.push(r.unwrap().into_inner().file_id);
                    }
                    () = tokio::time::sleep(Duration::from_micros(micros)) => {}
                }
            }
        }
    }

    let start = Instant::now();
    loop {
        let left = temp_uploads(&data);
        if left.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "{} temp files left by {UPLOADS} cut uploads: {left:?}",
            left.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Every cut stream was cut before its end, so none may be stored; a
    // stream that did end is stored whole or not at all. (A file appears
    // in media/ by a rename of the synced temp file, so whole at once.)
    let stored = media_files(&data);
    assert!(
        stored.len() <= UPLOADS / 5,
        "more files than complete streams: {stored:?}"
    );
    for (path, size) in &stored {
        assert_eq!(
            *size,
            payload.len() as u64,
            "{path} is a partial upload ({} of {UPLOADS} uploads were answered)",
            recorded.len()
        );
    }
    for file_id in &recorded {
        let info = media
            .describe_media(pb::DescribeMediaRequest {
                file_id: file_id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(info.size as u64, payload.len() as u64);
    }
    drop(open_streams);

    // A normal upload still works, and leaves no temp file either.
    let file = dir.path().join("after.bin");
    std::fs::write(&file, &payload).unwrap();
    let (file_id, _) = upload(&mut media, &file, "after.bin").await.unwrap();
    let info = media
        .describe_media(pb::DescribeMediaRequest { file_id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.size as u64, payload.len() as u64);
    assert_eq!(info.md5, md5_hex(&file));
    assert!(temp_uploads(&data).is_empty());
}

#[tokio::test]
async fn probe_errors_name_no_server_path() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--workers", "0"]);
    let mut media = server.media().await;
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, b"not a video").unwrap();
    let (file_id, _) = upload(&mut media, &text, "notes.txt").await.unwrap();
    let info = media
        .describe_media(pb::DescribeMediaRequest { file_id })
        .await
        .unwrap()
        .into_inner();
    assert!(info.metadata.is_none());
    let reason = &info.probe_error;
    assert!(
        reason.contains("Invalid data found when processing input"),
        "{reason}"
    );
    let data_dir = std::fs::canonicalize(&data).unwrap();
    for path in [data.display().to_string(), data_dir.display().to_string()] {
        assert!(!reason.contains(&path), "{reason} names {path}");
    }
    assert!(!reason.contains('/'), "{reason} names a path");
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

#[tokio::test]
async fn the_data_dir_is_private_to_the_servers_user() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data, &["--workers", "0"]);
    let mut media = server.media().await;
    let text = dir.path().join("a.txt");
    std::fs::write(&text, b"some bytes").unwrap();
    upload(&mut media, &text, "a.txt").await.unwrap();

    for d in [&data, &data.join("media"), &data.join("tmp")] {
        assert_eq!(mode(d), 0o700, "{}", d.display());
    }
    for f in [
        "vodtask.db",
        "vodtask.db-wal",
        "vodtask.db-shm",
        "default.key",
    ] {
        assert_eq!(mode(&data.join(f)), 0o600, "{f}");
    }

    // A data dir made looser (by hand, or by an older vodtask) is
    // tightened at the next start.
    server.terminate().await;
    for d in [&data, &data.join("media"), &data.join("tmp")] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    for f in ["vodtask.db", "vodtask.db-wal", "vodtask.db-shm"] {
        let path = data.join(f);
        if path.exists() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    server.restart();
    // Serving means opening the data dir is done.
    let _ = server.media().await;
    for d in [&data, &data.join("media"), &data.join("tmp")] {
        assert_eq!(mode(d), 0o700, "{}", d.display());
    }
    for f in ["vodtask.db", "vodtask.db-wal", "vodtask.db-shm"] {
        let path = data.join(f);
        if path.exists() {
            assert_eq!(mode(&path), 0o600, "{f}");
        }
    }
}
