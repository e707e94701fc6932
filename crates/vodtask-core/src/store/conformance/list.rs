//! ListTasks (every filter, both sort keys and orders, the keyset cursor
//! under concurrent writes), the overview's counters, and retention of
//! ended tasks.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::support::*;
use crate::error::Error;
use crate::ids::{AppId, FileId, TaskId};
use crate::store::{Lease, LeaseState, Orphans, Store};
use crate::task::Outcome;
use crate::task::query::{HourRange, SortBy, SortOrder, TaskQuery, TimeRange};
use crate::task::{TaskStatus, TaskType, errcode};
use crate::time::{Timestamp, hour_of};

/// Six tasks of app `a` in every state, on two uploads and an output, and
/// one of app `b` that no list of `a` may show.
///
/// | task | type       | files          | created | state                 |
/// |------|------------|----------------|---------|-----------------------|
/// | t1   | transcode  | f1, wrote o1   | 0       | FINISH at 100, ok     |
/// | t2   | snapshot   | f1             | 10      | FINISH at 90, failed  |
/// | t3   | transcode  | f2             | 20      | PROCESSING            |
/// | t4   | sprites    | f2             | 30      | WAITING               |
/// | t5   | concat     | f1, f2         | 40      | ABORTED at 95         |
/// | t6   | delete     | deletes o1     | 50      | WAITING               |
struct Data {
    a: AppId,
    f1: FileId,
    f2: FileId,
    o1: FileId,
    fb: FileId,
    t: [TaskId; 6],
}

async fn data(store: &dyn Store) -> Data {
    let a = new_app(store, "a").await;
    let b = new_app(store, "b").await;
    let f1 = upload(store, a, "f1").await;
    let f2 = upload(store, a, "f2").await;
    let fb = upload(store, b, "fb").await;
    let t1 = insert(store, a, transcode(&f1), 0, at(0)).await;
    let t2 = insert(store, a, snapshot(&f1), 0, at(10)).await;
    let t3 = insert(store, a, transcode(&f2), 0, at(20)).await;
    let c = claim_of(store, &t1, at(60)).await;
    let o1 = output_of(a, &t1, "o1", at(100));
    finish(
        store,
        &c.lease,
        Outcome::Finished {
            err_code: 0,
            message: String::new(),
            output: Some(play_set(&o1.file_id)),
            new_media: vec![o1.clone()],
            follow_up: None,
        },
        at(100),
    )
    .await;
    let c = claim_of(store, &t2, at(61)).await;
    finish(
        store,
        &c.lease,
        failed(errcode::SNAPSHOT_FAILED, "no"),
        at(90),
    )
    .await;
    claim_of(store, &t3, at(62)).await;
    let t4 = insert(store, a, sprites(&f2), 0, at(30)).await;
    let t5 = insert(store, a, concat(&f1, &f2), 0, at(40)).await;
    let t6 = insert(store, a, delete(&[&o1.file_id]), 0, at(50)).await;
    store.cancel_task(a, &t5, at(95)).await.expect("cancel");
    insert(store, b, transcode(&fb), 0, at(15)).await;
    Data {
        a,
        f1,
        f2,
        o1: o1.file_id,
        fb,
        t: [t1, t2, t3, t4, t5, t6],
    }
}

impl Data {
    /// Tasks by number, 1-based as in the table.
    fn ids(&self, numbers: &[usize]) -> Vec<TaskId> {
        numbers.iter().map(|n| self.t[n - 1].clone()).collect()
    }
}

/// `q` lists exactly `expected`, in order, in one page and in pages of one
/// and of two tasks.
async fn check(store: &dyn Store, d: &Data, q: TaskQuery, expected: &[usize]) {
    let expected = d.ids(expected);
    for limit in [100, 1, 2] {
        let q = TaskQuery { limit, ..q.clone() };
        assert_eq!(
            list_all(store, d.a, &q).await,
            expected,
            "limit {limit}, {q:?}"
        );
    }
}

fn by_status(status: TaskStatus) -> TaskQuery {
    TaskQuery {
        status: Some(status),
        ..query()
    }
}

fn by_type(task_type: TaskType) -> TaskQuery {
    TaskQuery {
        task_type: Some(task_type),
        ..query()
    }
}

fn by_file(file: &FileId) -> TaskQuery {
    TaskQuery {
        file_id: Some(file.clone()),
        ..query()
    }
}

fn range(after: Option<i64>, before: Option<i64>) -> TimeRange {
    TimeRange {
        after: after.map(at),
        before: before.map(at),
    }
}

/// By create time, newest first by default; oldest first when asked. The
/// listed tasks are the tasks as get_task reads them.
pub async fn list_without_filters_in_both_orders(store: Dyn) {
    let d = data(&*store).await;
    check(&*store, &d, query(), &[6, 5, 4, 3, 2, 1]).await;
    check(
        &*store,
        &d,
        TaskQuery {
            order: SortOrder::Desc,
            ..query()
        },
        &[6, 5, 4, 3, 2, 1],
    )
    .await;
    check(
        &*store,
        &d,
        TaskQuery {
            order: SortOrder::Asc,
            ..query()
        },
        &[1, 2, 3, 4, 5, 6],
    )
    .await;
    let page = store.list_tasks(d.a, &query()).await.expect("list_tasks");
    for listed in page.tasks {
        assert_eq!(listed, task(&*store, d.a, &listed.id).await);
    }
}

pub async fn list_filters_by_status(store: Dyn) {
    let d = data(&*store).await;
    check(&*store, &d, by_status(TaskStatus::Finish), &[2, 1]).await;
    check(&*store, &d, by_status(TaskStatus::Waiting), &[6, 4]).await;
    check(&*store, &d, by_status(TaskStatus::Processing), &[3]).await;
    check(&*store, &d, by_status(TaskStatus::Aborted), &[5]).await;
}

pub async fn list_filters_by_type(store: Dyn) {
    let d = data(&*store).await;
    check(&*store, &d, by_type(TaskType::Transcode), &[3, 1]).await;
    check(&*store, &d, by_type(TaskType::SnapshotByTimeOffset), &[2]).await;
    check(&*store, &d, by_type(TaskType::ImageSprites), &[4]).await;
    check(&*store, &d, by_type(TaskType::Concat), &[5]).await;
    check(&*store, &d, by_type(TaskType::DeleteMedia), &[6]).await;
    check(&*store, &d, by_type(TaskType::Clip), &[]).await;
}

/// "Tasks that read, wrote or deleted this file."
pub async fn list_filters_by_file_read_written_or_deleted(store: Dyn) {
    let d = data(&*store).await;
    check(&*store, &d, by_file(&d.f1), &[5, 2, 1]).await;
    check(&*store, &d, by_file(&d.f2), &[5, 4, 3]).await;
    check(&*store, &d, by_file(&d.o1), &[6, 1]).await;
    check(&*store, &d, by_file(&d.fb), &[]).await;
    check(
        &*store,
        &d,
        by_file(&FileId::from_stored("404".into())),
        &[],
    )
    .await;
}

/// after <= create_time < before, either side optional.
pub async fn list_filters_by_create_time_range(store: Dyn) {
    let d = data(&*store).await;
    let q = |after, before| TaskQuery {
        create_time: range(after, before),
        ..query()
    };
    check(&*store, &d, q(Some(10), Some(40)), &[4, 3, 2]).await;
    check(&*store, &d, q(Some(30), None), &[6, 5, 4]).await;
    check(&*store, &d, q(None, Some(10)), &[1]).await;
    check(&*store, &d, q(Some(20), Some(20)), &[]).await;
    check(&*store, &d, q(Some(51), None), &[]).await;
}

/// after <= finish_time < before; a task without a finish time is outside
/// every finish-time range.
pub async fn list_filters_by_finish_time_range(store: Dyn) {
    let d = data(&*store).await;
    let q = |after, before| TaskQuery {
        finish_time: range(after, before),
        ..query()
    };
    check(&*store, &d, q(Some(90), Some(100)), &[5, 2]).await;
    check(&*store, &d, q(Some(95), None), &[5, 1]).await;
    check(&*store, &d, q(None, Some(95)), &[2]).await;
    check(&*store, &d, q(None, Some(1000)), &[5, 2, 1]).await;
}

/// Sorted by finish time, only ended tasks are listed.
pub async fn list_sorted_by_finish_time_lists_ended_tasks_only(store: Dyn) {
    let d = data(&*store).await;
    let q = |order| TaskQuery {
        sort_by: SortBy::FinishTime,
        order,
        ..query()
    };
    check(&*store, &d, q(SortOrder::Desc), &[1, 5, 2]).await;
    check(&*store, &d, q(SortOrder::Asc), &[2, 5, 1]).await;
    check(
        &*store,
        &d,
        TaskQuery {
            status: Some(TaskStatus::Finish),
            ..q(SortOrder::Asc)
        },
        &[2, 1],
    )
    .await;
    check(
        &*store,
        &d,
        TaskQuery {
            status: Some(TaskStatus::Waiting),
            ..q(SortOrder::Desc)
        },
        &[],
    )
    .await;
}

/// Filters combine with AND.
pub async fn list_combines_filters(store: Dyn) {
    let d = data(&*store).await;
    check(
        &*store,
        &d,
        TaskQuery {
            status: Some(TaskStatus::Finish),
            task_type: Some(TaskType::Transcode),
            ..query()
        },
        &[1],
    )
    .await;
    check(
        &*store,
        &d,
        TaskQuery {
            status: Some(TaskStatus::Aborted),
            ..by_file(&d.f1)
        },
        &[5],
    )
    .await;
    check(
        &*store,
        &d,
        TaskQuery {
            task_type: Some(TaskType::ImageSprites),
            create_time: range(Some(25), None),
            ..by_file(&d.f2)
        },
        &[4],
    )
    .await;
    check(
        &*store,
        &d,
        TaskQuery {
            sort_by: SortBy::FinishTime,
            order: SortOrder::Asc,
            create_time: range(Some(5), None),
            finish_time: range(Some(0), Some(99)),
            ..by_file(&d.f1)
        },
        &[2, 5],
    )
    .await;
}

/// A page holds `limit` tasks; the token is empty on the last page, also
/// when that page is full.
pub async fn list_pages_end_with_an_empty_token(store: Dyn) {
    let d = data(&*store).await;
    let q = TaskQuery {
        limit: 2,
        ..query()
    };
    let mut pages = Vec::new();
    let mut next = q.clone();
    loop {
        let page = store.list_tasks(d.a, &next).await.expect("list_tasks");
        pages.push(page.tasks.iter().map(|t| t.id.clone()).collect::<Vec<_>>());
        if page.scroll_token.is_empty() {
            break;
        }
        assert!(pages.len() < 10, "pages never end");
        next = next_page(&q, &page.scroll_token);
    }
    assert_eq!(pages, vec![d.ids(&[6, 5]), d.ids(&[4, 3]), d.ids(&[2, 1])]);

    let page = store
        .list_tasks(
            d.a,
            &TaskQuery {
                limit: 2,
                ..by_status(TaskStatus::Waiting)
            },
        )
        .await
        .expect("list_tasks");
    assert_eq!(page.tasks.len(), 2);
    assert!(page.scroll_token.is_empty(), "exactly one full page");

    let page = store
        .list_tasks(
            d.a,
            &TaskQuery {
                limit: 4,
                ..query()
            },
        )
        .await
        .expect("list_tasks");
    assert_eq!(
        page.tasks.iter().map(|t| t.id.clone()).collect::<Vec<_>>(),
        d.ids(&[6, 5, 4, 3])
    );
    assert!(!page.scroll_token.is_empty());
}

/// Pages one query through, checking that no task comes twice, that the
/// order holds across pages, and that every one of `existing` comes;
/// `between` runs after each page, with the last listed key.
async fn page_through<F, Fut>(
    store: &dyn Store,
    app: AppId,
    q: &TaskQuery,
    existing: &[TaskId],
    mut between: F,
) where
    F: FnMut(Timestamp) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut seen = HashSet::new();
    let mut last_key: Option<Timestamp> = None;
    let mut next = q.clone();
    for _ in 0..1000 {
        let page = store.list_tasks(app, &next).await.expect("list_tasks");
        assert!(page.tasks.len() <= q.limit as usize);
        for t in &page.tasks {
            assert!(seen.insert(t.id.clone()), "{} listed twice ({q:?})", t.id);
            let key = match q.sort_by {
                SortBy::CreateTime => t.create_time,
                SortBy::FinishTime => t.finish_time.expect("listed by finish time"),
            };
            if let Some(prev) = last_key {
                match q.order {
                    SortOrder::Desc => assert!(key <= prev, "order broken ({q:?})"),
                    SortOrder::Asc => assert!(key >= prev, "order broken ({q:?})"),
                }
            }
            last_key = Some(key);
        }
        if page.scroll_token.is_empty() {
            let missed: Vec<_> = existing.iter().filter(|id| !seen.contains(*id)).collect();
            assert!(missed.is_empty(), "skipped {missed:?} ({q:?})");
            return;
        }
        between(last_key.expect("a page before a token")).await;
        next = next_page(q, &page.scroll_token);
    }
    panic!("pages never end ({q:?})");
}

/// A writer that inserts up to `budget` tasks (and, with `run`, runs them
/// to the end) while the case pages, until stopped.
fn busy_writer(
    store: Dyn,
    app: AppId,
    file: FileId,
    run: bool,
    budget: u64,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut walk = Walk::new(99 + budget);
        let mut n = 0u64;
        while n < budget && !stop.load(Ordering::Relaxed) {
            let t = at(walk.below(400) as i64 - 50);
            insert(&*store, app, transcode(&file), 0, t).await;
            if run && let Some(c) = store.claim_next(t, t).await.expect("claim_next") {
                // Claimed by another? Then this one's finish is stale: fine.
                let _ = store.finish(&c.lease, done(), t).await.expect("finish");
            }
            n += 1;
            tokio::task::yield_now().await;
        }
        n
    })
}

/// How many pages of each query are followed by writes of the case's own
/// (newer, older, and at the last listed key); bounded so that paging ends.
const PAGES_WITH_WRITES: u32 = 6;
/// How many tasks the concurrent writer inserts during each query.
const CONCURRENT_WRITES: u64 = 40;

/// The keyset cursor by create time: while other tasks are inserted
/// between pages (newer, older, and with the last listed key itself) and
/// all along by a concurrent writer, no task is listed twice and none that
/// existed before is skipped.
pub async fn keyset_pages_by_create_time_under_concurrent_inserts(store: Dyn) {
    let app = new_app(&*store, "a").await;
    let f = upload(&*store, app, "f").await;
    let mut existing = Vec::new();
    for i in 0..30 {
        // Three tasks per create time: ties only the tie-breaker orders.
        existing.push(queue(&*store, app, &f, at((i / 3) * 10)).await);
    }
    let mut k = 0;
    for order in [SortOrder::Desc, SortOrder::Asc] {
        for limit in [1, 4, 7] {
            let q = TaskQuery {
                order,
                limit,
                ..query()
            };
            let stop = Arc::new(AtomicBool::new(false));
            let writer = busy_writer(
                Arc::clone(&store),
                app,
                f.clone(),
                false,
                CONCURRENT_WRITES,
                Arc::clone(&stop),
            );
            let mut pages = 0;
            page_through(&*store, app, &q, &existing, |last| {
                pages += 1;
                k += 1;
                let write = pages <= PAGES_WITH_WRITES;
                let (store, f) = (Arc::clone(&store), f.clone());
                async move {
                    if write {
                        for t in [last, at(10_000 + k), at(-10_000 - k)] {
                            queue(&*store, app, &f, t).await;
                        }
                    }
                }
            })
            .await;
            stop.store(true, Ordering::Relaxed);
            writer.await.expect("the writer ran");
        }
    }
}

/// The keyset cursor by finish time, while tasks end between pages (at the
/// last listed key, later, earlier) and a concurrent writer runs tasks.
pub async fn keyset_pages_by_finish_time_under_concurrent_finishes(store: Dyn) {
    let app = new_app(&*store, "a").await;
    let f = upload(&*store, app, "f").await;
    let mut existing = Vec::new();
    for i in 0..20 {
        let id = queue(&*store, app, &f, at(i)).await;
        // Two tasks per finish time.
        run_to_end(&*store, &id, at(i), at(100 + (i / 2) * 10)).await;
        existing.push(id);
    }
    let mut k = 0;
    for order in [SortOrder::Desc, SortOrder::Asc] {
        for limit in [1, 3] {
            let q = TaskQuery {
                sort_by: SortBy::FinishTime,
                status: Some(TaskStatus::Finish),
                order,
                limit,
                ..query()
            };
            let stop = Arc::new(AtomicBool::new(false));
            let writer = busy_writer(
                Arc::clone(&store),
                app,
                f.clone(),
                true,
                CONCURRENT_WRITES,
                Arc::clone(&stop),
            );
            let mut pages = 0;
            page_through(&*store, app, &q, &existing, |last| {
                pages += 1;
                k += 1;
                let write = pages <= PAGES_WITH_WRITES;
                let (store, f) = (Arc::clone(&store), f.clone());
                async move {
                    if write {
                        for t in [last, at(10_000 + k), at(-10_000 - k)] {
                            queue(&*store, app, &f, t).await;
                            if let Some(c) = store.claim_next(t, t).await.expect("claim_next") {
                                let _ = store.finish(&c.lease, done(), t).await.expect("finish");
                            }
                        }
                    }
                }
            })
            .await;
            stop.store(true, Ordering::Relaxed);
            writer.await.expect("the writer ran");
        }
    }
}

/// What the tasks themselves say, to hold the counters against.
#[derive(Default)]
struct Tally {
    by_status: HashMap<TaskStatus, i64>,
    by_type: HashMap<TaskType, i64>,
}

impl Tally {
    fn add(&mut self, status: TaskStatus, task_type: TaskType) {
        *self.by_status.entry(status).or_default() += 1;
        *self.by_type.entry(task_type).or_default() += 1;
    }

    fn status(&self, s: TaskStatus) -> i64 {
        self.by_status.get(&s).copied().unwrap_or(0)
    }

    fn task_type(&self, t: TaskType) -> i64 {
        self.by_type.get(&t).copied().unwrap_or(0)
    }

    fn total(&self) -> i64 {
        self.by_status.values().sum()
    }
}

async fn assert_overview(
    store: &dyn Store,
    app: AppId,
    range: HourRange,
    counted: &Tally,
    all_time: &Tally,
) {
    let o = store.overview(app, range).await.expect("overview");
    for s in TaskStatus::ALL {
        assert_eq!(status_count(&o, s), counted.status(s), "{s:?} in {range:?}");
    }
    for t in TaskType::ALL {
        assert_eq!(
            type_count(&o, t),
            counted.task_type(t),
            "{t:?} in {range:?}"
        );
    }
    assert_eq!(o.total(), counted.total(), "total in {range:?}");
    assert_eq!(
        o.queue_depth,
        all_time.status(TaskStatus::Waiting),
        "queue depth"
    );
    assert_eq!(
        o.running,
        all_time.status(TaskStatus::Processing),
        "running"
    );
    assert_eq!(o.counted, range);
}

/// A long deterministic walk through every transition (inserts over three
/// hours, claims, heartbeats, finishes ok and failed, stale writes, cancels,
/// aborts, redos, releases, recoveries, retention) of two apps; then each
/// app's counters, all time and per hour, equal what its tasks say.
pub async fn overview_counts_stay_exact_through_transitions(store: Dyn) {
    let apps = [new_app(&*store, "a").await, new_app(&*store, "b").await];
    let files = [
        upload(&*store, apps[0], "fa").await,
        upload(&*store, apps[1], "fb").await,
    ];
    let mut walk = Walk::new(0x5eed);
    let mut tasks: Vec<(AppId, TaskId)> = Vec::new();
    let mut leases: Vec<(AppId, Lease)> = Vec::new();
    // What the walk did, to be sure it went everywhere.
    let mut did: HashMap<&'static str, u64> = HashMap::new();
    let mut note = |what: &'static str, n: u64| *did.entry(what).or_default() += n;
    for step in 0..600i64 {
        let now = at(step * 10);
        match walk.below(13) {
            0..=3 => {
                let i = walk.below(2) as usize;
                let spec = match walk.below(3) {
                    0 => transcode(&files[i]),
                    1 => snapshot(&files[i]),
                    _ => sprites(&files[i]),
                };
                let created = at(walk.below(3) as i64 * 3600 + walk.below(3600) as i64);
                let priority = walk.below(3) as i32 - 1;
                let id = insert(&*store, apps[i], spec, priority, created).await;
                tasks.push((apps[i], id));
            }
            4 | 5 => {
                let until = now + std::time::Duration::from_secs(walk.below(200) + 5);
                if let Some(c) = store.claim_next(until, now).await.expect("claim_next") {
                    leases.push((c.task.app_id, c.lease));
                }
            }
            6 | 7 => {
                if leases.is_empty() {
                    continue;
                }
                // The newest lease half the time (a cancelled task's lease
                // is moved there), else any.
                let i = match walk.below(2) {
                    0 => leases.len() - 1,
                    _ => walk.below(leases.len() as u64) as usize,
                };
                let (_, lease) = leases.swap_remove(i);
                let outcome = match store
                    .heartbeat(&lease, 50, now + std::time::Duration::from_secs(30))
                    .await
                    .expect("heartbeat")
                {
                    LeaseState::Held {
                        cancel_requested: true,
                    } => {
                        note("abort", 1);
                        Outcome::Aborted
                    }
                    _ if walk.below(3) == 0 => failed(errcode::TRANSCODE_FAILED, "x"),
                    _ => done(),
                };
                // A lost lease writes nothing: that is part of the walk.
                match store.finish(&lease, outcome, now).await.expect("finish") {
                    Some(_) => note("finish", 1),
                    None => note("stale finish", 1),
                }
            }
            8 => {
                // Half the time a task that runs (or ran) under a lease.
                let target = match walk.below(2) {
                    0 => walk.pick(&leases).map(|(app, l)| (*app, l.task_id.clone())),
                    _ => walk.pick(&tasks).cloned(),
                };
                if let Some((app, id)) = target {
                    match store.cancel_task(app, &id, now).await {
                        Ok(t) if t.cancel_requested => {
                            note("cancel running", 1);
                            if let Some(i) = leases.iter().position(|(_, l)| l.task_id == id) {
                                let held = leases.remove(i);
                                leases.push(held);
                            }
                        }
                        Ok(t) if t.finish_time == Some(now) => note("cancel waiting", 1),
                        // Purged tasks are not found.
                        Ok(_) | Err(Error::FailedPrecondition(_) | Error::NotFound(_)) => {}
                        Err(e) => panic!("cancel: {e}"),
                    }
                }
            }
            9 => {
                if let Some((app, id)) = walk.pick(&tasks).cloned() {
                    match store.redo_task(app, &id, now).await {
                        Ok(_) => note("redo", 1),
                        Err(Error::FailedPrecondition(_) | Error::NotFound(_)) => {}
                        Err(e) => panic!("redo: {e}"),
                    }
                }
            }
            10 => {
                if !leases.is_empty() {
                    let i = walk.below(leases.len() as u64) as usize;
                    let (_, lease) = leases.swap_remove(i);
                    if store.release(&lease).await.expect("release") {
                        note("release", 1);
                    }
                }
            }
            11 => {
                let r = store
                    .recover(Orphans::ExpiredBefore(now), 1, now)
                    .await
                    .expect("recover");
                note("requeue", r.requeued);
                note("worker lost", r.failed);
            }
            _ => {
                // Retention in the first half: the end keeps ended tasks.
                if step < 300 && walk.below(4) == 0 {
                    let n = store
                        .purge_finished(at(step * 10 - 300))
                        .await
                        .expect("purge_finished");
                    note("purge", n);
                }
            }
        }
    }

    for what in [
        "finish",
        "stale finish",
        "abort",
        "cancel running",
        "cancel waiting",
        "redo",
        "release",
        "requeue",
        "worker lost",
        "purge",
    ] {
        assert!(
            did.get(what).copied().unwrap_or(0) > 0,
            "the walk did no {what}: {did:?}"
        );
    }
    for app in apps {
        let mut all_time = Tally::default();
        let mut per_hour: [Tally; 3] = Default::default();
        for (_, id) in tasks.iter().filter(|(a, _)| *a == app) {
            let Some(t) = store.get_task(app, id, false).await.expect("get_task") else {
                continue; // purged
            };
            all_time.add(t.status, t.task_type());
            let h = (hour_of(t.create_time) - hour0()) as usize;
            per_hour[h].add(t.status, t.task_type());
        }
        assert!(all_time.total() > 20, "the walk made tasks of app {app:?}");
        for s in TaskStatus::ALL {
            assert!(
                all_time.status(s) > 0,
                "the walk reached {s:?}: {:?}",
                all_time.by_status
            );
            let listed = list_all(&*store, app, &by_status(s)).await.len() as i64;
            assert_eq!(listed, all_time.status(s), "listed {s:?}");
        }
        assert_overview(&*store, app, HourRange::default(), &all_time, &all_time).await;
        for (h, tally) in per_hour.iter().enumerate() {
            let range = HourRange {
                first_hour: Some(hour0() + h as i64),
                end_hour: Some(hour0() + h as i64 + 1),
            };
            assert_overview(&*store, app, range, tally, &all_time).await;
        }
    }
}

/// The overview counts by hour of create time; queue depth and running are
/// all-time whatever the range.
pub async fn overview_counts_by_hour_of_create_time(store: Dyn) {
    let app = new_app(&*store, "a").await;
    let f = upload(&*store, app, "f").await;
    for t in [0, 3599, 3600, 7300] {
        queue(&*store, app, &f, at(t)).await;
    }
    let t = insert(&*store, app, snapshot(&f), 5, at(10_900)).await;
    claim_of(&*store, &t, at(11_000)).await;
    let h = hour0();
    for (range, expected) in [
        (HourRange::default(), 5),
        (
            HourRange {
                first_hour: Some(h),
                end_hour: Some(h + 1),
            },
            2,
        ),
        (
            HourRange {
                first_hour: Some(h + 1),
                end_hour: None,
            },
            3,
        ),
        (
            HourRange {
                first_hour: None,
                end_hour: Some(h + 2),
            },
            3,
        ),
        (
            HourRange::covering(TimeRange {
                after: Some(at(1800)),
                before: Some(at(3601)),
            }),
            3,
        ),
        (
            HourRange {
                first_hour: Some(h + 5),
                end_hour: Some(h + 6),
            },
            0,
        ),
    ] {
        let o = store.overview(app, range).await.expect("overview");
        assert_eq!(o.total(), expected, "{range:?}");
        assert_eq!(o.counted, range);
        assert_eq!((o.queue_depth, o.running), (4, 1), "all time, {range:?}");
    }
    let o = store
        .overview(
            app,
            HourRange {
                first_hour: Some(h + 3),
                end_hour: Some(h + 4),
            },
        )
        .await
        .expect("overview");
    assert_eq!(status_count(&o, TaskStatus::Processing), 1);
    assert_eq!(type_count(&o, TaskType::SnapshotByTimeOffset), 1);
    assert_eq!(type_count(&o, TaskType::Transcode), 0);
}

/// purge_finished deletes the tasks (of every app) that ended before the
/// time, with their history and counts; nothing else.
pub async fn purge_finished_deletes_tasks_ended_before(store: Dyn) {
    let a = new_app(&*store, "a").await;
    let b = new_app(&*store, "b").await;
    let fa = upload(&*store, a, "fa").await;
    let fb = upload(&*store, b, "fb").await;
    let finished = queue(&*store, a, &fa, at(0)).await;
    run_to_end(&*store, &finished, at(1), at(100)).await;
    let aborted = queue(&*store, a, &fa, at(2)).await;
    store
        .cancel_task(a, &aborted, at(50))
        .await
        .expect("cancel");
    let redone = queue(&*store, a, &fa, at(3)).await;
    run_to_end(&*store, &redone, at(4), at(20)).await;
    store.redo_task(a, &redone, at(21)).await.expect("redo");
    let running = queue(&*store, a, &fa, at(5)).await;
    let other = queue(&*store, b, &fb, at(6)).await;
    claim_of(&*store, &redone, at(22)).await;
    claim_of(&*store, &running, at(23)).await;
    run_to_end(&*store, &other, at(24), at(60)).await;
    let waiting = queue(&*store, a, &fa, at(7)).await;

    assert_eq!(
        store.purge_finished(at(50)).await.expect("purge"),
        0,
        "ended at 50, not before"
    );
    assert_eq!(store.purge_finished(at(51)).await.expect("purge"), 1);
    assert!(
        store
            .get_task(a, &aborted, false)
            .await
            .expect("get_task")
            .is_none()
    );
    assert_eq!(store.purge_finished(at(101)).await.expect("purge"), 2);
    assert!(
        store
            .get_task(a, &finished, false)
            .await
            .expect("get_task")
            .is_none()
    );
    assert!(
        store
            .get_task(b, &other, false)
            .await
            .expect("get_task")
            .is_none()
    );
    // A redone task runs again: its earlier end does not count.
    let r = task_with_attempts(&*store, a, &redone).await;
    assert_eq!(
        (r.status, r.previous_attempts.len()),
        (TaskStatus::Processing, 1)
    );
    assert_eq!(
        list_all(&*store, a, &query()).await,
        vec![waiting.clone(), running, redone]
    );
    assert!(list_all(&*store, a, &by_file(&fa)).await.len() == 3);
    let o = store
        .overview(a, HourRange::default())
        .await
        .expect("overview");
    assert_eq!(o.total(), 3);
    assert_eq!(status_count(&o, TaskStatus::Finish), 0);
    assert_eq!(status_count(&o, TaskStatus::Aborted), 0);
    assert_eq!((o.queue_depth, o.running), (1, 2));
    let o = store
        .overview(b, HourRange::default())
        .await
        .expect("overview");
    assert_eq!(o.total(), 0);
    assert_eq!(store.purge_finished(at(1_000_000)).await.expect("purge"), 0);
    assert_eq!(task(&*store, a, &waiting).await.status, TaskStatus::Waiting);
}
