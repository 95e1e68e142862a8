//! [`AdminStore`] on SQLite: tables `admin_tokens` (each token's sha256,
//! never its text) and `admin_actions` (the audit of admin changes).

use rusqlite::{OptionalExtension as _, Row, params};

use super::admin::{AdminActionRow, AdminStore, AdminTokenRow, NewAdminToken};
use super::{SqliteStore, StorageError};

const TOKEN_COLUMNS: &str = "id, name, tenant, permissions, created_at, revoked_at";

fn token_from_row(r: &Row<'_>) -> rusqlite::Result<AdminTokenRow> {
    Ok(AdminTokenRow {
        id: r.get(0)?,
        name: r.get(1)?,
        tenant: r.get(2)?,
        permissions: r.get(3)?,
        created_at: r.get(4)?,
        revoked_at: r.get(5)?,
    })
}

impl SqliteStore {
    fn add_admin_token(&self, token: NewAdminToken) -> Result<i64, StorageError> {
        self.write_grouped(move |tx| {
            tx.execute(
                "INSERT INTO admin_tokens (name, tenant, permissions, secret_sha256, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    token.name,
                    token.tenant,
                    token.permissions,
                    &token.secret_sha256[..],
                    token.created_at
                ],
            )?;
            Ok(tx.last_insert_rowid())
        })
    }

    fn admin_tokens(&self) -> Result<Vec<AdminTokenRow>, StorageError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {TOKEN_COLUMNS} FROM admin_tokens ORDER BY id"
        ))?;
        let rows = stmt.query_map([], token_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn admin_token_by_hash(&self, hash: [u8; 32]) -> Result<Option<AdminTokenRow>, StorageError> {
        Ok(self
            .reader()
            .prepare_cached(&format!(
                "SELECT {TOKEN_COLUMNS} FROM admin_tokens
                 WHERE secret_sha256 = ?1 AND revoked_at IS NULL"
            ))?
            .query_row([&hash[..]], token_from_row)
            .optional()?)
    }

    fn revoke_admin_token(&self, id: i64, now: i64) -> Result<bool, StorageError> {
        self.write_grouped(move |tx| {
            let changed = tx.execute(
                "UPDATE admin_tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, now],
            )?;
            Ok(changed == 1)
        })
    }

    fn record_admin_action(&self, action: AdminActionRow) -> Result<i64, StorageError> {
        self.write_grouped(move |tx| {
            tx.execute(
                "INSERT INTO admin_actions (at, actor, token_id, tenant, action, target, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    action.at,
                    action.actor,
                    action.token_id,
                    action.tenant,
                    action.action,
                    action.target,
                    action.detail
                ],
            )?;
            Ok(tx.last_insert_rowid())
        })
    }

    fn admin_actions(
        &self,
        tenant: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AdminActionRow>, StorageError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT id, at, actor, token_id, tenant, action, target, detail FROM admin_actions
             WHERE (?1 IS NULL OR tenant = ?1) ORDER BY id DESC LIMIT ?2",
        )?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![tenant, limit], |r| {
            Ok(AdminActionRow {
                id: r.get(0)?,
                at: r.get(1)?,
                actor: r.get(2)?,
                token_id: r.get(3)?,
                tenant: r.get(4)?,
                action: r.get(5)?,
                target: r.get(6)?,
                detail: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[async_trait::async_trait]
impl AdminStore for SqliteStore {
    async fn add_admin_token(&self, token: NewAdminToken) -> Result<i64, StorageError> {
        self.off_worker(move |s| SqliteStore::add_admin_token(s, token))
            .await
    }

    async fn admin_tokens(&self) -> Result<Vec<AdminTokenRow>, StorageError> {
        self.off_worker(SqliteStore::admin_tokens).await
    }

    async fn admin_token_by_hash(
        &self,
        hash: [u8; 32],
    ) -> Result<Option<AdminTokenRow>, StorageError> {
        self.off_worker(move |s| SqliteStore::admin_token_by_hash(s, hash))
            .await
    }

    async fn revoke_admin_token(&self, id: i64, now: i64) -> Result<bool, StorageError> {
        self.off_worker(move |s| SqliteStore::revoke_admin_token(s, id, now))
            .await
    }

    async fn record_admin_action(&self, action: AdminActionRow) -> Result<i64, StorageError> {
        self.off_worker(move |s| SqliteStore::record_admin_action(s, action))
            .await
    }

    async fn admin_actions(
        &self,
        tenant: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AdminActionRow>, StorageError> {
        let tenant = tenant.map(str::to_string);
        self.off_worker(move |s| SqliteStore::admin_actions(s, tenant.as_deref(), limit))
            .await
    }
}

// Tested by the store's conformance suite (`conformance/admin.rs`), on
// every backend.
