//! The PostgreSQL schema, versioned: each migration is applied once, in
//! order, in its own transaction, recorded in `airlock_schema`. Several
//! nodes may start at once: the first takes a transaction-scoped advisory
//! lock and migrates, the others wait for it and find nothing to do.

use super::PgStore;
use crate::storage::StorageError;

/// The advisory lock key migrations hold ("airlock" in ASCII).
const MIGRATION_LOCK: i64 = 0x0061_6972_6c6f_636b;

/// The migrations, in order; the schema's version is how many are applied.
const MIGRATIONS: &[&str] = &[
    // 1: an installation's key-value data. Keys compare as bytes.
    "CREATE TABLE kv (
        tenant       text NOT NULL,
        installation text NOT NULL,
        key          text COLLATE \"C\" NOT NULL,
        value        bytea NOT NULL,
        updated_at   bigint NOT NULL,
        PRIMARY KEY (tenant, installation, key)
    );",
    // 2: the registry: tenants (kept as tombstones), installations with
    // revisions, their sealed secrets and schedules. Ids compare as bytes.
    "CREATE TABLE tenants (
        id         text COLLATE \"C\" PRIMARY KEY,
        name       text NOT NULL,
        created_at bigint NOT NULL,
        removed_at bigint
    );
    CREATE TABLE installations (
        tenant          text COLLATE \"C\" NOT NULL REFERENCES tenants (id),
        id              text COLLATE \"C\" NOT NULL,
        plugin_id       text NOT NULL,
        plugin_version  text NOT NULL,
        plugin_dir      text NOT NULL,
        plugin_digest   text NOT NULL,
        plugin_store    text,
        config          text NOT NULL,
        approved_egress text NOT NULL,
        approved_rules  text,
        approved_data   text,
        mode            text NOT NULL,
        enabled         boolean NOT NULL,
        created_at      bigint NOT NULL,
        updated_at      bigint NOT NULL,
        removed_at      bigint,
        revision        bigint NOT NULL,
        PRIMARY KEY (tenant, id)
    );
    CREATE TABLE secrets (
        tenant       text COLLATE \"C\" NOT NULL,
        installation text COLLATE \"C\" NOT NULL,
        key          text COLLATE \"C\" NOT NULL,
        key_id       text NOT NULL,
        nonce        bytea NOT NULL,
        ciphertext   bytea NOT NULL,
        PRIMARY KEY (tenant, installation, key),
        FOREIGN KEY (tenant, installation) REFERENCES installations (tenant, id)
    );
    CREATE TABLE schedules (
        tenant       text COLLATE \"C\" NOT NULL,
        installation text COLLATE \"C\" NOT NULL,
        feed         text COLLATE \"C\" NOT NULL,
        cron         text NOT NULL,
        time_zone    text NOT NULL,
        overridden   boolean NOT NULL,
        next_fire_at bigint,
        due_at       bigint,
        PRIMARY KEY (tenant, installation, feed),
        FOREIGN KEY (tenant, installation) REFERENCES installations (tenant, id)
    );
    CREATE INDEX schedules_by_due ON schedules (due_at);",
    // 3: the admin API's tokens (their sha256 only) and its audit.
    "CREATE TABLE admin_tokens (
        id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name          text NOT NULL,
        tenant        text,
        permissions   text NOT NULL,
        secret_sha256 bytea NOT NULL UNIQUE,
        created_at    bigint NOT NULL,
        revoked_at    bigint
    );
    CREATE TABLE admin_actions (
        id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at       bigint NOT NULL,
        actor    text NOT NULL,
        token_id bigint,
        tenant   text,
        action   text NOT NULL,
        target   text NOT NULL,
        detail   text NOT NULL
    );
    CREATE INDEX admin_actions_by_tenant ON admin_actions (tenant, id);",
    // 4: OAuth2: each installation's sealed token set, and the
    // authorizations started (by their state's hash), used once.
    "CREATE TABLE oauth_tokens (
        tenant       text COLLATE \"C\" NOT NULL,
        installation text COLLATE \"C\" NOT NULL,
        key_id       text NOT NULL,
        nonce        bytea NOT NULL,
        ciphertext   bytea NOT NULL,
        expires_at   bigint,
        scopes       text NOT NULL,
        updated_at   bigint NOT NULL,
        PRIMARY KEY (tenant, installation)
    );
    CREATE TABLE oauth_pending (
        state_key    text PRIMARY KEY,
        tenant       text COLLATE \"C\" NOT NULL,
        installation text COLLATE \"C\" NOT NULL,
        key_id       text,
        nonce        bytea,
        ciphertext   bytea,
        redirect_uri text NOT NULL,
        created_at   bigint NOT NULL,
        expires_at   bigint NOT NULL,
        used_at      bigint
    );
    CREATE INDEX oauth_pending_by_expiry ON oauth_pending (expires_at);",
    // 5: inbound webhooks: each installation's secret (sha256 only), and
    // the delivery ids its committed runs handled.
    "CREATE TABLE webhook_secrets (
        tenant        text COLLATE \"C\" NOT NULL,
        installation  text COLLATE \"C\" NOT NULL,
        secret_sha256 bytea NOT NULL,
        created_at    bigint NOT NULL,
        PRIMARY KEY (tenant, installation)
    );
    CREATE TABLE webhook_deliveries (
        tenant       text COLLATE \"C\" NOT NULL,
        installation text COLLATE \"C\" NOT NULL,
        webhook      text COLLATE \"C\" NOT NULL,
        delivery_id  text COLLATE \"C\" NOT NULL,
        run_id       bigint NOT NULL,
        received_at  bigint NOT NULL,
        PRIMARY KEY (tenant, installation, webhook, delivery_id)
    );",
    // 6: the run ledger and the work queue: recorded runs, the egress
    // audit, queued runs, the runs in progress (one per installation and
    // feed, each held under a lease: its owner and, by the database's
    // clock, when it expires unless renewed) and notifications (at most one
    // open per feed, which the unique index enforces).
    "CREATE TABLE runs (
        id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        tenant         text COLLATE \"C\" NOT NULL,
        installation   text COLLATE \"C\" NOT NULL,
        plugin_id      text NOT NULL,
        plugin_version text NOT NULL,
        plugin_digest  text NOT NULL,
        feed           text COLLATE \"C\" NOT NULL,
        mode           text NOT NULL,
        trigger        text NOT NULL,
        attempt        bigint NOT NULL,
        scheduled_at   bigint NOT NULL,
        started_at     bigint NOT NULL,
        ended_at       bigint NOT NULL,
        status         text NOT NULL,
        message        text NOT NULL,
        report         text NOT NULL
    );
    CREATE INDEX runs_by_feed ON runs (tenant, installation, feed, status, ended_at);
    CREATE INDEX runs_by_time ON runs (started_at);
    CREATE TABLE egress_audit (
        id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at_ms          bigint NOT NULL,
        run_id         bigint REFERENCES runs (id),
        tenant         text COLLATE \"C\" NOT NULL,
        installation   text COLLATE \"C\" NOT NULL,
        plugin_id      text NOT NULL,
        plugin_version text NOT NULL,
        feed           text NOT NULL,
        method         text NOT NULL,
        scheme         text,
        host           text NOT NULL,
        port           integer,
        path           text NOT NULL,
        remote_addr    text,
        decision       text NOT NULL,
        rule           text,
        service        text,
        reason         text,
        status         integer,
        bytes          bigint NOT NULL,
        duration_ms    bigint NOT NULL,
        error          text
    );
    CREATE INDEX egress_audit_by_time ON egress_audit (at_ms);
    CREATE INDEX egress_audit_by_plugin ON egress_audit (plugin_id, tenant, installation);
    CREATE TABLE queue (
        id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        tenant       text COLLATE \"C\" NOT NULL,
        installation text COLLATE \"C\" NOT NULL,
        feed         text COLLATE \"C\" NOT NULL,
        trigger      text NOT NULL,
        attempt      bigint NOT NULL,
        scheduled_at bigint NOT NULL,
        due_at       bigint NOT NULL,
        created_at   bigint NOT NULL,
        FOREIGN KEY (tenant, installation) REFERENCES installations (tenant, id)
    );
    CREATE INDEX queue_by_due ON queue (due_at, id);
    CREATE INDEX queue_by_feed ON queue (tenant, installation, feed, trigger);
    CREATE TABLE active_runs (
        tenant           text COLLATE \"C\" NOT NULL,
        installation     text COLLATE \"C\" NOT NULL,
        feed             text COLLATE \"C\" NOT NULL,
        trigger          text NOT NULL,
        attempt          bigint NOT NULL,
        scheduled_at     bigint NOT NULL,
        started_at       bigint NOT NULL,
        lease_owner      text NOT NULL,
        lease_expires_ms bigint NOT NULL,
        PRIMARY KEY (tenant, installation, feed),
        FOREIGN KEY (tenant, installation) REFERENCES installations (tenant, id)
    );
    CREATE INDEX active_runs_by_owner ON active_runs (lease_owner);
    CREATE INDEX active_runs_by_expiry ON active_runs (lease_expires_ms);
    CREATE TABLE notifications (
        id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        tenant       text COLLATE \"C\" NOT NULL,
        installation text COLLATE \"C\" NOT NULL,
        feed         text COLLATE \"C\" NOT NULL,
        message      text NOT NULL,
        run_id       bigint,
        count        bigint NOT NULL,
        first_at     bigint NOT NULL,
        last_at      bigint NOT NULL,
        acked_at     bigint,
        acked_by     text
    );
    CREATE UNIQUE INDEX notifications_one_open ON notifications (tenant, installation, feed)
        WHERE acked_at IS NULL;
    CREATE INDEX notifications_by_time ON notifications (last_at);",
    // 7: the history of key-value storage (`state_history.rs`), as SQLite's:
    // one row per committed change of a key with the value it replaced
    // (NULL: none), who made it (a recorded run; a checkpoint of a run not
    // recorded yet, by its token; a rewind's actor) and the newest run
    // recorded then; and per installation the newest change dropped by
    // retention. `seq` orders an installation's changes (its writers take
    // the installation's lock, so they commit in `seq` order) and is never
    // reused. The history reads `runs` (id, tenant, installation) and a
    // rewind `active_runs` (tenant, installation, feed), of migration 6.
    "CREATE TABLE kv_history (
        seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        tenant       text COLLATE \"C\" NOT NULL,
        installation text COLLATE \"C\" NOT NULL,
        key          text COLLATE \"C\" NOT NULL,
        old_value    bytea,
        at           bigint NOT NULL,
        run_id       bigint,
        checkpoint   bigint,
        actor        text,
        rewound_to   bigint,
        after_run    bigint NOT NULL
    );
    CREATE INDEX kv_history_by_key ON kv_history (tenant, installation, key, seq);
    CREATE INDEX kv_history_by_time ON kv_history (at);
    CREATE INDEX kv_history_by_checkpoint ON kv_history (tenant, installation, checkpoint)
        WHERE checkpoint IS NOT NULL;
    CREATE TABLE kv_history_pruned (
        tenant       text COLLATE \"C\" NOT NULL,
        installation text COLLATE \"C\" NOT NULL,
        through_seq  bigint NOT NULL,
        through_run  bigint NOT NULL,
        PRIMARY KEY (tenant, installation)
    );",
    // 8: the tenant's shared records (`records.rs`): each tenant's version
    // counter (its row locked by a writer until it commits), the records (a
    // deleted one keeps its row, body NULL, so change feeds see it), each
    // consumer's acknowledgements and each installation's annotations
    // (notes oldest first). No foreign keys: a run's effects must never fail
    // to commit because of what its guest named, and a tenant's records
    // outlive its installations. The live records of a collection by
    // version are what the pending query walks.
    "CREATE TABLE record_versions (
        tenant  text COLLATE \"C\" PRIMARY KEY,
        version bigint NOT NULL
    );
    CREATE TABLE records (
        tenant     text COLLATE \"C\" NOT NULL,
        collection text COLLATE \"C\" NOT NULL,
        id         text COLLATE \"C\" NOT NULL,
        version    bigint NOT NULL,
        updated_at bigint NOT NULL,
        writer     text NOT NULL,
        body       text,
        PRIMARY KEY (tenant, collection, id)
    );
    CREATE UNIQUE INDEX records_by_version ON records (tenant, collection, version);
    CREATE INDEX records_live_by_version ON records (tenant, collection, version)
        WHERE body IS NOT NULL;
    CREATE TABLE record_acks (
        tenant       text COLLATE \"C\" NOT NULL,
        installation text COLLATE \"C\" NOT NULL,
        collection   text COLLATE \"C\" NOT NULL,
        id           text COLLATE \"C\" NOT NULL,
        version      bigint NOT NULL,
        acked_at     bigint NOT NULL,
        PRIMARY KEY (tenant, installation, collection, id)
    );
    CREATE INDEX record_acks_by_record ON record_acks (tenant, collection, id);
    CREATE TABLE record_annotations (
        tenant       text COLLATE \"C\" NOT NULL,
        installation text COLLATE \"C\" NOT NULL,
        collection   text COLLATE \"C\" NOT NULL,
        id           text COLLATE \"C\" NOT NULL,
        external_ref text,
        notes        text[] NOT NULL,
        flag         text,
        updated_at   bigint NOT NULL,
        PRIMARY KEY (tenant, installation, collection, id)
    );
    CREATE INDEX record_annotations_by_record ON record_annotations (tenant, collection, id);",
    // 9: published artifacts (`artifacts.rs`): each version of an
    // installation's artifact (staged while a run writes it: no version
    // number yet), its bytes in chunks deleted with it, and each
    // installation's feed access token, as its sha256 only. No foreign key
    // to installations: a trial run publishes under a name that may not be
    // installed; removing an installation deletes them. Ids come from an
    // identity, never reused. Published version numbers are unique per
    // artifact (staged versions, NULL, are distinct); the index also finds
    // an installation's staged versions when it is removed.
    "CREATE TABLE artifact_versions (
        id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        tenant       text COLLATE \"C\" NOT NULL,
        installation text COLLATE \"C\" NOT NULL,
        name         text COLLATE \"C\" NOT NULL,
        version      bigint,
        content_type text NOT NULL,
        size         bigint NOT NULL DEFAULT 0,
        sha256       text,
        staged_at    bigint NOT NULL,
        published_at bigint,
        run_id       bigint,
        chunks       bigint NOT NULL DEFAULT 0
    );
    CREATE UNIQUE INDEX artifact_versions_published
        ON artifact_versions (tenant, installation, name, version);
    CREATE INDEX artifact_versions_staged ON artifact_versions (staged_at)
        WHERE version IS NULL;
    CREATE TABLE artifact_chunks (
        version_id bigint NOT NULL REFERENCES artifact_versions (id) ON DELETE CASCADE,
        seq        bigint NOT NULL,
        data       bytea NOT NULL,
        PRIMARY KEY (version_id, seq)
    );
    CREATE TABLE feed_tokens (
        tenant       text COLLATE \"C\" NOT NULL,
        installation text COLLATE \"C\" NOT NULL,
        token_sha256 bytea NOT NULL,
        created_at   bigint NOT NULL,
        PRIMARY KEY (tenant, installation)
    );",
];

impl PgStore {
    /// Brings the schema to this build's version; refuses a database
    /// migrated by a newer build.
    pub(super) async fn migrate(&self) -> Result<(), StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS airlock_schema (
                version    integer PRIMARY KEY,
                applied_at timestamptz NOT NULL DEFAULT now()
            )",
        )
        .await?;
        let applied: i32 = tx
            .query_one("SELECT COALESCE(MAX(version), 0) FROM airlock_schema", &[])
            .await?
            .get(0);
        let supported = MIGRATIONS.len() as i32;
        if applied > supported {
            return Err(StorageError::SchemaTooNew {
                found: applied.into(),
                supported: supported.into(),
            });
        }
        for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
            let version = index as i32 + 1;
            tx.batch_execute(sql).await?;
            tx.execute(
                "INSERT INTO airlock_schema (version) VALUES ($1)",
                &[&version],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn migrating_again_changes_nothing_and_a_newer_schema_is_refused() {
        let Some(store) = super::super::test_store().await else {
            return;
        };
        store
            .migrate()
            .await
            .expect("a second migration is a no-op");
        let client = store.client().await.unwrap();
        let versions: i64 = client
            .query_one("SELECT COUNT(*) FROM airlock_schema", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(versions, MIGRATIONS.len() as i64);
        client
            .execute(
                "INSERT INTO airlock_schema (version) VALUES ($1)",
                &[&(MIGRATIONS.len() as i32 + 1)],
            )
            .await
            .unwrap();
        assert!(matches!(
            store.migrate().await,
            Err(StorageError::SchemaTooNew { .. })
        ));
    }
}
