//! What the cases share: apps, media, tasks and outcomes built at fixed
//! times, and short readers of the store's state. Everything goes through
//! the `Store` trait.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, TimeZone, Utc};
use serde_json::Value;

use crate::app::KeyHash;
use crate::error::Error;
use crate::events::EventType;
use crate::events::envelope::Draft;
use crate::ids::{AppId, FileId, TaskId};
use crate::media::{MediaFile, SourceType};
use crate::store::{Claim, Lease, PendingEvent, Store, Stored};
use crate::task::Outcome;
use crate::task::query::{HourRange, MAX_LIMIT, TaskQuery};
use crate::task::{
    ClipSpec, ConcatSpec, DeleteSpec, FileType, NewTask, PlayItem, SnapshotSpec, SpritesSpec, Task,
    TaskOutput, TaskRequest, TaskSpec, TaskStatus, TaskType, TranscodeSpec,
};
use crate::time::Timestamp;

/// The store a case runs on.
pub type Dyn = Arc<dyn Store>;

/// How long a claim's lease lasts in the cases, unless they say otherwise.
pub const LEASE: Duration = Duration::from_secs(30);

/// The suite's epoch, 2026-01-01T00:00:00Z, on a whole hour: every time a
/// case passes is `at(seconds)` from here.
pub fn t0() -> Timestamp {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .expect("2026-01-01 is a valid time")
}

/// `seconds` after the epoch.
pub fn at(seconds: i64) -> Timestamp {
    t0() + TimeDelta::seconds(seconds)
}

/// The epoch's hour, as `HourRange` counts hours.
pub fn hour0() -> i64 {
    crate::time::hour_of(t0())
}

pub async fn new_app(store: &dyn Store, name: &str) -> AppId {
    store
        .create_app(name, &KeyHash::of(name), t0())
        .await
        .expect("create_app")
        .id
}

/// An uploaded file of `app`. File ids are unique across apps, so cases
/// name them apart.
pub fn upload_of(app: AppId, id: &str, create_time: Timestamp) -> MediaFile {
    MediaFile {
        file_id: FileId::from_stored(id.into()),
        app_id: app,
        file_name: format!("{id}.mp4"),
        stored_name: "source.mp4".into(),
        size: 1000,
        md5: "0123456789abcdef0123456789abcdef".into(),
        create_time,
        source_type: SourceType::ClientUpload,
        source_context: "ctx".into(),
        source_task_id: None,
        metadata: Err("not probed".into()),
    }
}

/// A file a task wrote.
pub fn output_of(app: AppId, task: &TaskId, id: &str, create_time: Timestamp) -> MediaFile {
    MediaFile {
        source_type: SourceType::TaskOutput,
        source_task_id: Some(task.clone()),
        source_context: String::new(),
        ..upload_of(app, id, create_time)
    }
}

/// Records an uploaded file (no event, no follow-up) and returns its id.
pub async fn upload(store: &dyn Store, app: AppId, id: &str) -> FileId {
    let media = upload_of(app, id, t0());
    store
        .insert_media(&media, None, None)
        .await
        .expect("insert_media");
    media.file_id
}

pub fn transcode(file: &FileId) -> TaskSpec {
    TaskSpec::Transcode(TranscodeSpec {
        file_id: file.clone(),
        definitions: vec![100010],
    })
}

pub fn snapshot(file: &FileId) -> TaskSpec {
    TaskSpec::SnapshotByTimeOffset(SnapshotSpec {
        file_id: file.clone(),
        definition: 10,
        time_offsets_ms: vec![0, 1000],
    })
}

pub fn sprites(file: &FileId) -> TaskSpec {
    TaskSpec::ImageSprites(SpritesSpec {
        file_id: file.clone(),
        definition: 10,
    })
}

pub fn clip(file: &FileId) -> TaskSpec {
    TaskSpec::Clip(ClipSpec {
        file_id: file.clone(),
        start_time_offset: 0.0,
        end_time_offset: 1.0,
    })
}

pub fn concat(a: &FileId, b: &FileId) -> TaskSpec {
    TaskSpec::Concat(ConcatSpec {
        file_ids: vec![a.clone(), b.clone()],
        output_types: vec![FileType::Mp4],
    })
}

pub fn delete(files: &[&FileId]) -> TaskSpec {
    TaskSpec::DeleteMedia(DeleteSpec {
        file_ids: files.iter().map(|f| (*f).clone()).collect(),
    })
}

/// A validated request for `spec`, without a session id.
pub fn request(spec: TaskSpec, priority: i32) -> TaskRequest {
    TaskRequest::new(spec, priority, String::new(), "session context".into())
        .expect("the suite's requests are valid")
}

pub fn new_task(app: AppId, spec: TaskSpec, priority: i32, create_time: Timestamp) -> NewTask {
    let request = request(spec, priority);
    NewTask {
        id: request.spec.task_type().new_id(),
        app_id: app,
        request,
        create_time,
    }
}

/// Inserts a task; returns its id.
pub async fn insert(
    store: &dyn Store,
    app: AppId,
    spec: TaskSpec,
    priority: i32,
    create_time: Timestamp,
) -> TaskId {
    let task = new_task(app, spec, priority, create_time);
    let id = task.id.clone();
    let inserted = store.insert_task(task).await.expect("insert_task");
    assert_eq!(inserted.task_id(), &id, "insert_task answers the new id");
    id
}

/// A transcode of `file` at priority 0.
pub async fn queue(store: &dyn Store, app: AppId, file: &FileId, create_time: Timestamp) -> TaskId {
    insert(store, app, transcode(file), 0, create_time).await
}

/// Claims the next task at `now`, with a lease of `LEASE`.
pub async fn claim(store: &dyn Store, now: Timestamp) -> Claim {
    store
        .claim_next(now + LEASE, now)
        .await
        .expect("claim_next")
        .expect("a queued task to claim")
}

/// Claims the next task and checks it is `id`.
pub async fn claim_of(store: &dyn Store, id: &TaskId, now: Timestamp) -> Claim {
    let c = claim(store, now).await;
    assert_eq!(&c.task.id, id, "the task claimed");
    c
}

pub fn play_set(file: &FileId) -> TaskOutput {
    TaskOutput::Transcode {
        play_set: vec![PlayItem {
            definition: 100010,
            file_id: file.clone(),
            url: format!("http://media.example/{file}/out.mp4"),
            vbitrate: 800_000,
            vwidth: 640,
            vheight: 360,
            duration_seconds: 12.5,
            size: 4096,
        }],
    }
}

pub fn done() -> Outcome {
    Outcome::Finished {
        err_code: 0,
        message: String::new(),
        output: None,
        new_media: Vec::new(),
        follow_up: None,
    }
}

pub fn failed(err_code: i32, message: &str) -> Outcome {
    Outcome::Finished {
        err_code,
        message: message.into(),
        output: None,
        new_media: Vec::new(),
        follow_up: None,
    }
}

/// Ends a held lease; returns the files whose rows went.
pub async fn finish(
    store: &dyn Store,
    lease: &Lease,
    outcome: Outcome,
    now: Timestamp,
) -> Vec<FileId> {
    store
        .finish(lease, outcome, now)
        .await
        .expect("finish")
        .expect("the lease is held")
}

/// Claims the next task (which must be `id`) and finishes it successfully.
pub async fn run_to_end(store: &dyn Store, id: &TaskId, claimed: Timestamp, ended: Timestamp) {
    let c = claim_of(store, id, claimed).await;
    finish(store, &c.lease, done(), ended).await;
}

pub async fn task(store: &dyn Store, app: AppId, id: &TaskId) -> Task {
    store
        .get_task(app, id, false)
        .await
        .expect("get_task")
        .expect("the task exists")
}

pub async fn task_with_attempts(store: &dyn Store, app: AppId, id: &TaskId) -> Task {
    store
        .get_task(app, id, true)
        .await
        .expect("get_task")
        .expect("the task exists")
}

pub fn status_count(o: &crate::task::query::Overview, status: TaskStatus) -> i64 {
    o.by_status
        .iter()
        .filter(|(s, _)| *s == status)
        .map(|(_, n)| n)
        .sum()
}

pub fn type_count(o: &crate::task::query::Overview, task_type: TaskType) -> i64 {
    o.by_type
        .iter()
        .filter(|(t, _)| *t == task_type)
        .map(|(_, n)| n)
        .sum()
}

/// The app's all-time count of tasks in `status`.
pub async fn count(store: &dyn Store, app: AppId, status: TaskStatus) -> i64 {
    let o = store
        .overview(app, HourRange::default())
        .await
        .expect("overview");
    status_count(&o, status)
}

/// A query of every task, the largest page.
pub fn query() -> TaskQuery {
    TaskQuery {
        limit: MAX_LIMIT,
        ..TaskQuery::default()
    }
}

/// The query for the page after `token`, as ListTasks builds it.
pub fn next_page(q: &TaskQuery, token: &str) -> TaskQuery {
    TaskQuery::new(
        q.status,
        q.task_type,
        q.file_id.clone(),
        q.create_time,
        q.finish_time,
        q.sort_by,
        q.order,
        i64::from(q.limit),
        token,
    )
    .expect("a token the store returned is valid for its query")
}

/// Every page of `q`, in order, as task ids.
pub async fn list_all(store: &dyn Store, app: AppId, q: &TaskQuery) -> Vec<TaskId> {
    let mut out = Vec::new();
    let mut q = q.clone();
    for _ in 0..10_000 {
        let page = store.list_tasks(app, &q).await.expect("list_tasks");
        assert!(
            page.tasks.len() <= q.limit as usize,
            "a page holds at most `limit` tasks"
        );
        out.extend(page.tasks.into_iter().map(|t| t.id));
        if page.scroll_token.is_empty() {
            return out;
        }
        q = next_page(&q, &page.scroll_token);
    }
    panic!("list_tasks never ended its pages");
}

/// The app's pending events, in the store's order.
pub async fn pending(store: &dyn Store, app: AppId) -> Vec<PendingEvent> {
    store
        .load_events(app, 0, 10_000)
        .await
        .expect("load_events")
}

/// The envelope of an event, parsed.
pub fn envelope(p: &PendingEvent) -> Value {
    let v: Value = serde_json::from_str(&p.event.content_json).expect("an event's content is JSON");
    assert_eq!(v["eventId"], p.event.event_id.as_str(), "envelope eventId");
    assert_eq!(
        v["eventType"],
        p.event.event_type.as_str(),
        "envelope eventType"
    );
    assert_eq!(
        v["taskSequence"], p.event.task_sequence,
        "envelope taskSequence"
    );
    v
}

/// Runs `n` tasks of `app` to the end, one after the other, task i ending
/// at `at(first_end + i)`; returns their completion events in order.
pub async fn ended_tasks(
    store: &dyn Store,
    app: AppId,
    n: i64,
    first_end: i64,
) -> Vec<PendingEvent> {
    let file = FileId::from_stored(format!("src{}", app.0));
    if store
        .get_media(app, &file)
        .await
        .expect("get_media")
        .is_none()
    {
        upload(store, app, file.as_str()).await;
    }
    let before = pending(store, app).await.len();
    for i in 0..n {
        let id = queue(store, app, &file, at(first_end + i)).await;
        run_to_end(store, &id, at(first_end + i), at(first_end + i)).await;
    }
    let events = pending(store, app).await;
    assert_eq!(events.len(), before + n as usize, "one event per end");
    events[before..].to_vec()
}

pub fn seqs(events: &[PendingEvent]) -> Vec<i64> {
    events.iter().map(|p| p.seq).collect()
}

pub async fn state(store: &dyn Store, app: AppId, seq: i64) -> Option<Stored> {
    store
        .event_states(app, vec![seq])
        .await
        .expect("event_states")
        .get(&seq)
        .copied()
}

/// A task's own event (a procedure's step), as a worker writes it.
pub fn step_draft(task: &TaskId, n: i64) -> Draft {
    Draft {
        event_type: EventType::ProcedureStateChanged,
        order_key: task.as_str().to_string(),
        task_id: Some(task.as_str().to_string()),
        data: serde_json::json!({"vodTaskId": task.as_str(), "status": "PROCESSING", "step": n}),
    }
}

/// A file's upload event.
pub fn upload_draft(media: &MediaFile) -> Draft {
    crate::events::envelope::file_uploaded(media, "http://media.example/f", "")
}

pub fn is_not_found<T>(r: &crate::error::Result<T>) -> bool {
    matches!(r, Err(Error::NotFound(_)))
}

pub fn is_failed_precondition<T>(r: &crate::error::Result<T>) -> bool {
    matches!(r, Err(Error::FailedPrecondition(_)))
}

/// A small deterministic generator (xorshift), so that the long cases walk
/// the same path on every run.
pub struct Walk(u64);

impl Walk {
    pub fn new(seed: u64) -> Walk {
        Walk(seed.max(1))
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x % n.max(1)
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            None
        } else {
            items.get(self.below(items.len() as u64) as usize)
        }
    }
}
