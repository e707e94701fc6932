//! The store conformance suite: one set of cases, written once against the
//! [`Store`] trait, that every store must pass. A store runs it with one
//! line, given a future that opens a fresh, empty store:
//!
//! ```ignore
//! async fn fresh() -> vodtask_core::store::conformance::Fixture {
//!     let dir = tempfile::tempdir().expect("tempdir");
//!     let store = MyStore::open(dir.path()).expect("open");
//!     Fixture::new(std::sync::Arc::new(store), dir)
//! }
//! vodtask_core::store_conformance!(fresh());
//! ```
//!
//! Each case becomes its own `#[test]` (`tasks::claim_follows_priority_then_fifo`,
//! …), so that test runners run them in parallel and name a failure. The
//! cases use nothing but the trait: no SQL, no store type, no sleeps. Time
//! is what the cases pass as `now`, from a fixed epoch ([`support::at`]).
//!
//! Compiled for the crate's tests, and for other crates with the
//! `conformance` feature.

pub mod apps;
pub mod callbacks;
pub mod events;
pub mod isolation;
pub mod leftovers;
pub mod list;
pub mod support;
pub mod tasks;

use std::any::Any;
use std::future::Future;
use std::sync::Arc;

use super::Store;

/// A fresh, empty store, and whatever must live as long as it (a temporary
/// directory, a database that is dropped at the end).
pub struct Fixture {
    pub store: Arc<dyn Store>,
    keep_alive: Box<dyn Any + Send>,
}

impl Fixture {
    pub fn new(store: Arc<dyn Store>, keep_alive: impl Any + Send) -> Fixture {
        Fixture {
            store,
            keep_alive: Box::new(keep_alive),
        }
    }
}

/// Runs one case on a store made by `fixture`, on a runtime of its own
/// (multi-threaded, so that concurrent cases really interleave).
pub fn run<F, C, R>(fixture: F, case: C)
where
    F: Future<Output = Fixture>,
    C: FnOnce(Arc<dyn Store>) -> R,
    R: Future<Output = ()>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime for the conformance case");
    runtime.block_on(async move {
        let Fixture { store, keep_alive } = fixture.await;
        case(store).await;
        // The store goes first (case is done with its clone), then what
        // kept it alive.
        drop(keep_alive);
    });
}

/// Generates one `#[test]` per conformance case, in modules named after
/// the areas (`tasks`, `list`, `events`, `callbacks`, `apps`, `leftovers`,
/// `isolation`).
/// The argument is an expression of type `impl Future<Output = Fixture>`,
/// evaluated once per case. A case a store is known to fail is listed with
/// `#[ignore = "why"]` in front of its name.
#[macro_export]
macro_rules! store_conformance {
    ($fixture:expr) => {
        async fn store_conformance_fixture() -> $crate::store::conformance::Fixture {
            $fixture.await
        }

        $crate::__store_conformance_cases! {
            tasks: [
                insert_then_get_round_trips,
                insert_with_an_unknown_input_is_not_found,
                insert_with_a_used_session_id,
                insert_of_a_delete_of_a_file_in_use_fails_precondition,
                claim_follows_priority_then_fifo,
                claim_tokens_grow_with_every_claim,
                a_stale_token_cannot_write,
                an_ended_task_takes_no_more_writes,
                progress_is_written_by_heartbeat_and_record_step,
                finish_records_the_end_outputs_and_new_media,
                finish_with_an_error_keeps_code_and_message,
                finish_deleted_removes_files_and_their_renditions,
                finish_deleted_of_a_file_in_use_deletes_nothing,
                finish_is_all_or_nothing,
                redo_keeps_the_history,
                redo_of_an_aborted_task,
                redo_refuses_unended_and_unknown_tasks,
                cancel_aborts_a_waiting_task_at_once,
                cancel_flags_a_running_task,
                cancel_of_an_ended_task_changes_nothing,
                release_requeues_without_counting_an_attempt,
                release_of_a_cancelled_task_aborts_it,
                recover_requeues_expired_leases_only,
                recover_gives_up_after_max_recoveries,
                recover_aborts_a_cancelled_task,
                concurrent_claims_never_share_a_task,
                a_finish_clears_a_pending_cancel,
                finish_of_a_pull_names_its_file,
            ],
            list: [
                list_without_filters_in_both_orders,
                list_filters_by_status,
                list_filters_by_type,
                list_filters_by_file_read_written_or_deleted,
                list_filters_by_create_time_range,
                list_filters_by_finish_time_range,
                list_sorted_by_finish_time_lists_ended_tasks_only,
                list_combines_filters,
                list_pages_end_with_an_empty_token,
                keyset_pages_by_create_time_under_concurrent_inserts,
                keyset_pages_by_finish_time_under_concurrent_finishes,
                overview_counts_stay_exact_through_transitions,
                overview_counts_by_hour_of_create_time,
                purge_finished_deletes_tasks_ended_before,
            ],
            events: [
                completion_event_is_written_with_the_end_only,
                a_stale_finish_writes_no_event,
                each_kind_of_end_writes_its_event,
                insert_media_writes_media_event_and_follow_up_together,
                load_events_keeps_per_task_order,
                load_events_pages_by_seq,
                settling_is_idempotent,
                event_states_report_the_durable_state,
                dead_letters_page_in_seq_order,
                redrive_revives_dead_letters_only,
                resend_revives_confirmed_and_dead_lettered,
                pending_event_seqs_name_pending_events_only,
                purge_events_follows_each_apps_retention,
                event_tail_counts_are_exact,
                event_config_defaults_and_round_trips,
                the_outbox_listener_hears_of_every_write_that_adds_events,
                a_loader_never_skips_an_event_under_concurrent_writes,
            ],
            callbacks: [
                record_attempt_without_settle_leaves_the_event_pending,
                record_attempt_settles_in_the_same_write,
                last_attempt_is_the_latest,
                callback_attempts_by_event_and_by_task,
                endpoint_failing_since_tracks_the_last_answer,
                push_apps_follow_the_config,
            ],
            apps: [
                create_and_find_by_key,
                app_names_are_unique,
                revoke_keeps_the_first_time,
                revoke_of_an_unknown_app_is_not_found,
                list_apps_and_count_include_revoked,
            ],
            leftovers: [
                writes_belong_to_their_owner_until_given_up,
                a_committed_row_clears_its_record,
                a_refused_finish_keeps_the_records,
                a_delete_records_the_files_it_removed,
                multipart_uploads_stay_with_their_record,
                a_given_up_write_cannot_be_recorded,
            ],
            isolation: [
                apps_do_not_see_each_others_tasks,
                apps_do_not_see_each_others_media,
                apps_do_not_see_each_others_events,
                apps_do_not_see_each_others_callback_attempts,
            ],
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __store_conformance_cases {
    ($($area:ident: [$($(#[$attr:meta])* $case:ident),* $(,)?]),* $(,)?) => {
        $(
            mod $area {
                $(
                    #[test]
                    $(#[$attr])*
                    fn $case() {
                        $crate::store::conformance::run(
                            super::store_conformance_fixture(),
                            $crate::store::conformance::$area::$case,
                        );
                    }
                )*
            }
        )*
    };
}
