//! The core's parsers of text that comes from outside: event message
//! handles, ListTasks scroll tokens, task and file ids, and a few more
//! (event type names, signing secrets, outbound URLs, CIDR ranges, upload
//! file names, and ffprobe's JSON, which a hostile upload shapes).
//!
//! The input is split in two: its first 64 bytes (padded) give numbers and
//! the query's filters for the "build, format, parse" checks; the whole
//! input, as text (lossy UTF-8), is given to every parser.
//!
//! Checked: no panic; a parser refusing input does it with a clean error
//! (an InvalidArgument naming the field where the API says so); where a
//! parse succeeds, format-then-parse gives the same value back:
//! `decode(encode(h)) == h` for handles, `token_after(p)` parses back to
//! `p` under the same filters (and is refused under others), ids and
//! secrets format to what parses to the same id or key.

#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use vodtask_core::Error;
use vodtask_core::callbacks::signing::SigningSecret;
use vodtask_core::events::{EventType, MsgHandle};
use vodtask_core::ids::{FileId, TaskId};
use vodtask_core::media::MediaStream;
use vodtask_core::outbound::{AddressPolicy, validate_url};
use vodtask_core::task::query::{HourRange, Position, SortBy, SortOrder, TaskQuery, TimeRange};
use vodtask_core::task::{TaskStatus, TaskType};

fuzz_target!(|data: &[u8]| {
    let mut head = [0u8; 64];
    let n = data.len().min(64);
    head[..n].copy_from_slice(&data[..n]);
    let text = String::from_utf8_lossy(data);
    // The text without the head too, so that short structured tokens are
    // reachable whatever the head holds.
    let tail = String::from_utf8_lossy(data.get(64..).unwrap_or_default());

    for t in [text.as_ref(), tail.as_ref()] {
        handles(t);
        ids(t);
        scroll_token(&head, t);
        others(t);
    }
    built_handle(&head);
    built_token(&head);
    hour_range(&head);
    ffprobe_json(data);
});

fn u64_at(head: &[u8; 64], at: usize) -> u64 {
    u64::from_le_bytes(head[at..at + 8].try_into().expect("8 bytes"))
}

fn clean_invalid(e: &Error, field: &str) {
    match e {
        Error::InvalidArgument { field: f, .. } if f == field => {}
        other => panic!("expected InvalidArgument on {field:?}, got {other:?}"),
    }
}

/// `MsgHandle::decode` of any text, and the round trip of what it accepts.
/// (Text is not compared: "+1" and "01" decode like "1".)
fn handles(t: &str) {
    if let Some(h) = MsgHandle::decode(t) {
        let again = h.encode();
        assert_eq!(
            MsgHandle::decode(&again),
            Some(h),
            "handle {t:?} → {again:?}"
        );
    }
}

fn built_handle(head: &[u8; 64]) {
    let h = MsgHandle {
        epoch: u64_at(head, 0) as u32,
        seq: u64_at(head, 8) as i64,
        token: u64_at(head, 16),
    };
    assert_eq!(MsgHandle::decode(&h.encode()), Some(h));
}

fn ids(t: &str) {
    match TaskId::parse("task_id", t) {
        Ok(id) => {
            assert_eq!(id.as_str(), t);
            assert_eq!(
                TaskId::parse("task_id", &id.to_string()).ok(),
                Some(id.clone())
            );
        }
        Err(e) => clean_invalid(&e, "task_id"),
    }
    match FileId::parse("file_id", t) {
        Ok(id) => {
            assert_eq!(id.as_str(), t);
            assert!(!t.is_empty() && t.len() <= 64);
            assert!(
                t.bytes().all(|b| b.is_ascii_alphanumeric()),
                "file id {t:?}"
            );
            assert_eq!(FileId::parse("file_id", &id.to_string()).ok(), Some(id));
        }
        Err(e) => clean_invalid(&e, "file_id"),
    }
}

/// A query's filters from the head (the token is bound to them).
fn query(head: &[u8; 64], token: &str) -> vodtask_core::Result<TaskQuery> {
    let status = TaskStatus::from_code(i64::from(head[24] % 6));
    let task_type = TaskType::from_code(i64::from(head[25] % 10));
    let file_id = (head[26] & 1 == 1).then(|| FileId::from_stored("12345678901234567890".into()));
    let range = |b: u8, at: usize| {
        let secs = (u64_at(head, at) % 8_000_000_000) as i64;
        let t = chrono::DateTime::from_timestamp(secs, 0);
        match b % 4 {
            0 => TimeRange::default(),
            1 => TimeRange {
                after: t,
                before: None,
            },
            2 => TimeRange {
                after: None,
                before: t,
            },
            _ => TimeRange {
                after: t,
                before: t,
            },
        }
    };
    TaskQuery::new(
        status,
        task_type,
        file_id,
        range(head[27], 32),
        range(head[28], 40),
        if head[29] & 1 == 0 {
            SortBy::CreateTime
        } else {
            SortBy::FinishTime
        },
        if head[30] & 1 == 0 {
            SortOrder::Desc
        } else {
            SortOrder::Asc
        },
        i64::from(head[31] as i8),
        token,
    )
}

fn scroll_token(head: &[u8; 64], t: &str) {
    match query(head, t) {
        Ok(q) => {
            if let Some(p) = q.after {
                let again = q.token_after(p);
                let q2 = query(head, &again).expect("a token the query made parses");
                assert_eq!(q2.after, Some(p), "token {t:?} → {again:?}");
            }
        }
        Err(Error::InvalidArgument { field, .. }) => {
            assert!(
                field == "scroll_token" || field == "limit",
                "unexpected field {field:?}"
            );
        }
        Err(other) => panic!("expected InvalidArgument, got {other:?}"),
    }
}

/// Any position: its token parses back under the same filters only.
fn built_token(head: &[u8; 64]) {
    let Ok(q) = query(head, "") else {
        return;
    };
    let p = Position {
        key: u64_at(head, 0) as i64,
        tie: u64_at(head, 8) as i64,
    };
    let token = q.token_after(p);
    let back = query(head, &token).expect("own token");
    assert_eq!(back.after, Some(p));
    let mut other = *head;
    other[30] ^= 1; // the other sort order
    match query(&other, &token) {
        Err(Error::InvalidArgument { field, .. }) if field == "scroll_token" => {}
        r => panic!("a token was accepted under another order: {r:?}"),
    }
}

fn hour_range(head: &[u8; 64]) {
    let secs = (u64_at(head, 48) % 16_000_000_000_000) as i64 - 8_000_000_000_000;
    let nanos = (u64_at(head, 56) % 1_000_000_000) as u32;
    if let Some(t) = chrono::DateTime::from_timestamp(secs, nanos) {
        let r = HourRange::covering(TimeRange {
            after: Some(t),
            before: Some(t),
        });
        let (first, end) = (r.first_hour.expect("set"), r.end_hour.expect("set"));
        assert!(first <= end && end - first <= 1, "{t}: {r:?}");
        assert_eq!(
            vodtask_core::time::from_micros(vodtask_core::time::to_micros(t)).timestamp(),
            t.timestamp()
        );
    }
}

fn others(t: &str) {
    match EventType::parse("event_types", t) {
        Ok(ty) => assert_eq!(ty.as_str(), t),
        Err(e) => clean_invalid(&e, "event_types"),
    }
    match SigningSecret::parse("signing_secret", t) {
        Ok(s) => {
            let shown = s.expose();
            assert!(shown.starts_with("whsec_"));
            let again = SigningSecret::parse("signing_secret", &shown).expect("own secret");
            assert_eq!(again, s);
            assert_eq!(again.sign("id", 1, b"body"), s.sign("id", 1, b"body"));
        }
        Err(e) => clean_invalid(&e, "signing_secret"),
    }
    match validate_url("notification_url", t) {
        Ok(url) => {
            assert!(matches!(url.scheme(), "http" | "https"));
            assert!(url.host().is_some());
            // What was checked is what would be called.
            let again = validate_url("notification_url", url.as_str()).expect("own URL");
            assert_eq!(again, url);
        }
        Err(e) => clean_invalid(&e, "notification_url"),
    }
    match AddressPolicy::parse_cidr(t) {
        Ok(net) => {
            let again = AddressPolicy::parse_cidr(&net.to_string()).expect("own range");
            assert_eq!(again, net);
            let ip: IpAddr = net.addr();
            let _ = AddressPolicy::new(vec![net]).permits(ip);
        }
        Err(e) => clean_invalid(&e, "allow-outbound-cidr"),
    }
    if let Ok(ip) = t.parse::<IpAddr>() {
        let _ = AddressPolicy::default().permits(ip);
    }
    match vodtask_core::media::validate_file_name("file_name", t) {
        Ok(()) => assert!(!t.contains('/') && !t.contains('\\') && !t.is_empty()),
        Err(e) => clean_invalid(&e, "file_name"),
    }
}

/// ffprobe's JSON: any bytes give metadata or an error string, and the
/// metadata survives the store's JSON column (serde_json both ways; floats
/// within a few ULP unless VODTASK_FUZZ_EXACT_FLOATS=1).
fn ffprobe_json(data: &[u8]) {
    if let Ok(m) = vodtask_core::media::probe::parse(data) {
        assert!(!m.streams.is_empty());
        let _ = m.video_bitrate();
        let stored = serde_json::to_string(&m).expect("metadata serializes");
        let back: Result<vodtask_core::media::MediaMetadata, _> = serde_json::from_str(&stored);
        match back {
            Ok(back) => {
                let close = back.container == m.container
                    && vodtask_fuzz::float_close(back.duration_seconds, m.duration_seconds)
                    && (back.width, back.height, back.bitrate) == (m.width, m.height, m.bitrate)
                    && back.streams.len() == m.streams.len()
                    && back.streams.iter().zip(&m.streams).all(|(b, s)| {
                        vodtask_fuzz::float_close(b.fps, s.fps)
                            && MediaStream {
                                fps: s.fps,
                                ..b.clone()
                            } == *s
                    });
                assert!(
                    close,
                    "metadata changed in the store: {stored}\n{back:?}\n{m:?}"
                );
            }
            Err(e) => panic!("metadata does not read back from the store ({e}): {stored}"),
        }
    }
}
