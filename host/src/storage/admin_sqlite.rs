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

#[cfg(test)]
mod tests {
    use super::*;

    fn token(name: &str, byte: u8) -> NewAdminToken {
        NewAdminToken {
            name: name.into(),
            tenant: Some("acme".into()),
            permissions: "read".into(),
            secret_sha256: [byte; 32],
            created_at: 100,
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_token_is_found_by_its_hash_until_it_is_revoked() {
        let store = SqliteStore::in_memory().unwrap();
        let id = AdminStore::add_admin_token(&store, token("a", 1))
            .await
            .unwrap();
        AdminStore::add_admin_token(&store, token("b", 2))
            .await
            .unwrap();
        let found = AdminStore::admin_token_by_hash(&store, [1; 32])
            .await
            .unwrap();
        assert_eq!(found.map(|t| t.name), Some("a".to_string()));
        assert!(
            AdminStore::admin_token_by_hash(&store, [3; 32])
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            AdminStore::revoke_admin_token(&store, id, 200)
                .await
                .unwrap()
        );
        assert!(
            !AdminStore::revoke_admin_token(&store, id, 300)
                .await
                .unwrap()
        );
        assert!(
            AdminStore::admin_token_by_hash(&store, [1; 32])
                .await
                .unwrap()
                .is_none()
        );
        let all = AdminStore::admin_tokens(&store).await.unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].revoked_at, Some(200));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn admin_actions_are_listed_newest_first_and_by_tenant() {
        let store = SqliteStore::in_memory().unwrap();
        for (tenant, action) in [(Some("acme"), "a"), (None, "b"), (Some("wisla"), "c")] {
            let row = AdminActionRow {
                id: 0,
                at: 1,
                actor: "cli".into(),
                token_id: None,
                tenant: tenant.map(str::to_string),
                action: action.into(),
                target: "t".into(),
                detail: String::new(),
            };
            AdminStore::record_admin_action(&store, row).await.unwrap();
        }
        let all = AdminStore::admin_actions(&store, None, 10).await.unwrap();
        let names: Vec<_> = all.iter().map(|a| a.action.as_str()).collect();
        assert_eq!(names, ["c", "b", "a"]);
        let acme = AdminStore::admin_actions(&store, Some("acme"), 10)
            .await
            .unwrap();
        assert_eq!(acme.len(), 1);
        assert_eq!(
            AdminStore::admin_actions(&store, None, 1)
                .await
                .unwrap()
                .len(),
            1
        );
    }
}
