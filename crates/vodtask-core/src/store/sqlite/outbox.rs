//! Which apps the current transaction wrote events for. Events are only
//! written by write jobs, which all run on the writer thread, so the list
//! is that thread's: `emit` adds to it, a job that rolls back drops its
//! part, and after the commit the writer hands the list to the outbox
//! listener (the queue hub).

use std::cell::RefCell;

use crate::ids::AppId;

thread_local! {
    static EMITTED: RefCell<Vec<AppId>> = const { RefCell::new(Vec::new()) };
}

/// An event of `app` was written in the current transaction.
pub(super) fn emitted(app: AppId) {
    EMITTED.with_borrow_mut(|apps| {
        if apps.last() != Some(&app) {
            apps.push(app);
        }
    });
}

/// Where the current job's events start.
pub(super) fn mark() -> usize {
    EMITTED.with_borrow(Vec::len)
}

/// The current job rolled back: its events are gone.
pub(super) fn roll_back_to(mark: usize) {
    EMITTED.with_borrow_mut(|apps| apps.truncate(mark));
}

/// The apps of the transaction that just ended (each once), and a fresh
/// list for the next.
pub(super) fn take() -> Vec<AppId> {
    let mut apps = EMITTED.with_borrow_mut(std::mem::take);
    apps.sort_unstable_by_key(|a| a.0);
    apps.dedup();
    apps
}
