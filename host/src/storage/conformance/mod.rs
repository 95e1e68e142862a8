//! The store's conformance suite: what every backend must do, written once
//! against the traits and run on each backend, so SQLite and PostgreSQL
//! stay siblings that behave alike rather than two code paths.
//!
//! A behaviour is a `pub(crate) async fn(Arc<dyn Concern>)` in the module
//! of its concern (`kv.rs`: `Arc<dyn KvBackend>`), given a fresh, empty
//! store; it panics when the backend misbehaves. [`conformance_suite!`]
//! declares one test per behaviour for a backend: SQLite's in `sqlite.rs`,
//! PostgreSQL's in `postgres/mod.rs` (on the database `scripts/test.sh`
//! starts). A new behaviour is added to its module and to the list in the
//! macro, and so runs on every backend at once.

pub(crate) mod admin;
pub(crate) mod artifacts;
pub(crate) mod kv;
pub(crate) mod oauth;
pub(crate) mod queue;
pub(crate) mod records;
pub(crate) mod registry;
pub(crate) mod state_history;
pub(crate) mod webhooks;

use crate::storage::{ArtifactEffects, RecordEffects, Scope, StorageError};

/// What a finished run commits of its records and artifacts, each in one
/// transaction of its own, through the backend's `apply_in` (the function
/// its `RunLedger::finish_run` calls inside the run's transaction): for the
/// behaviours of those concerns, which choose the run's id themselves.
#[async_trait::async_trait]
pub(crate) trait CommitEffects: Send + Sync {
    /// Commits `effects` as `scope`'s run at `now`.
    async fn commit_record_effects(
        &self,
        scope: &Scope,
        effects: &RecordEffects,
        now: i64,
    ) -> Result<(), StorageError>;

    /// Commits `effects` as `scope`'s run `run_id` at `now`.
    async fn commit_artifact_effects(
        &self,
        scope: &Scope,
        effects: &ArtifactEffects,
        run_id: i64,
        now: i64,
    ) -> Result<(), StorageError>;
}

/// Declares, in the module it is used in, one `#[tokio::test]` per
/// behaviour of the suite, each on a fresh store made by `$fresh` (an async
/// fn giving `Option<Arc<B>>` for a backend `B` with every concern the
/// suite tests so far; None skips the test, for a database not set up).
/// Multi-threaded, as `serve` runs.
macro_rules! conformance_suite {
    ($fresh:path) => {
        $crate::storage::conformance::conformance_suite!(@tests $fresh;
            kv::writes_are_invisible_until_commit_and_lost_on_drop,
            kv::a_scratch_view_keeps_checkpointed_writes_to_itself,
            kv::list_merges_pending_writes_and_deletes_across_pages,
            kv::keys_compare_as_bytes_and_prefixes_are_literal,
            kv::limits_are_enforced,
            kv::the_installation_quota_holds_across_checkpoints_and_runs,
            kv::usage_counts_the_bytes_of_keys_and_values,
            kv::the_backend_lists_within_its_limit_and_deletes_idempotently,
            registry::a_tenant_is_added_once_and_removed_as_a_tombstone,
            registry::an_installation_changes_only_from_the_revision_it_was_read_at,
            registry::removal_keeps_a_tombstone_and_drops_the_installations_data,
            admin::a_token_is_found_by_its_hash_until_it_is_revoked,
            admin::admin_actions_are_listed_newest_first_and_by_tenant,
            oauth::a_token_set_is_replaced_and_deleted,
            oauth::a_pending_authorization_is_taken_once_and_not_after_it_expires,
            webhooks::a_webhook_secret_is_replaced_and_kept_per_installation,
            queue::claims_are_exclusive_one_per_feed_and_within_the_tenants_limit,
            queue::a_record_is_refused_once_its_claim_was_recovered,
            queue::a_due_schedule_is_planned_once_whoever_plans_it,
            queue::failures_raise_one_open_notification_per_feed,
            state_history::history_is_written_with_a_runs_commit_and_its_checkpoints,
            state_history::values_are_shown_cut_with_their_size,
            state_history::discarded_writes_leave_no_history,
            state_history::rewind_restores_exactly_the_state_before_the_run,
            state_history::rewind_covers_the_runs_checkpoints_made_before_an_earlier_run_was_recorded,
            state_history::rewind_is_refused_while_a_run_is_in_progress_and_changes_nothing,
            state_history::rewind_refuses_another_installations_or_tenants_run,
            state_history::a_rewind_shown_before_a_run_committed_is_refused,
            state_history::retention_bounds_versions_per_key_and_age_and_a_rewind_needing_more_is_refused,
            state_history::pruning_by_age_keeps_what_is_newer,
            state_history::a_direct_write_is_recorded_as_such_and_removal_deletes_the_history,
            state_history::concurrent_changes_each_replace_the_value_before,
            state_history::a_rewind_and_a_runs_commit_at_once_do_not_interleave,
            records::versions_rise_per_tenant_and_a_delete_leaves_a_tombstone,
            records::a_page_ends_at_its_record_or_byte_limit_and_says_whether_more_follow,
            records::each_consumer_has_its_own_pending_set_and_a_change_makes_a_record_pending_again,
            records::an_ack_cannot_run_ahead_of_the_record_nor_name_a_missing_one,
            records::annotations_of_a_missing_record_are_dropped_and_old_notes_make_room,
            records::a_run_writes_as_its_installation_and_annotates_only_its_own_view,
            records::concurrent_writers_of_one_tenant_get_distinct_versions,
            artifacts::a_staged_version_is_served_only_once_published,
            artifacts::a_version_published_in_the_same_second_is_a_second_later,
            artifacts::retention_keeps_the_newest_versions_and_serves_no_other,
            artifacts::abandoned_staging_is_deleted_at_the_next_publish_and_on_demand,
            artifacts::a_dropped_or_abandoned_staging_cannot_be_published,
            artifacts::an_id_is_never_given_again_so_a_drop_list_names_only_its_own_versions,
            artifacts::the_feed_token_is_kept_as_its_hash_and_replaced_at_once,
            artifacts::concurrent_publishers_of_one_artifact_are_numbered_in_turn,
        );
    };
    (@tests $fresh:path; $($concern:ident :: $behaviour:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $behaviour() {
                let Some(store) = $fresh().await else { return };
                $crate::storage::conformance::$concern::$behaviour(store).await;
            }
        )*
    };
}
pub(crate) use conformance_suite;
