//! The admin API's tokens (each kept as its sha256, never its text) and
//! the audit of admin actions, on PostgreSQL.

use tokio_postgres::Row;

use super::PgStore;
use crate::storage::{AdminActionRow, AdminStore, AdminTokenRow, NewAdminToken, StorageError};

const TOKEN_COLUMNS: &str = "id, name, tenant, permissions, created_at, revoked_at";

fn token_from_row(r: &Row) -> AdminTokenRow {
    AdminTokenRow {
        id: r.get(0),
        name: r.get(1),
        tenant: r.get(2),
        permissions: r.get(3),
        created_at: r.get(4),
        revoked_at: r.get(5),
    }
}

#[async_trait::async_trait]
impl AdminStore for PgStore {
    async fn add_admin_token(&self, token: NewAdminToken) -> Result<i64, StorageError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "INSERT INTO admin_tokens (name, tenant, permissions, secret_sha256, created_at)
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
                &[
                    &token.name,
                    &token.tenant,
                    &token.permissions,
                    &&token.secret_sha256[..],
                    &token.created_at,
                ],
            )
            .await?;
        Ok(row.get(0))
    }

    async fn admin_tokens(&self) -> Result<Vec<AdminTokenRow>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!("SELECT {TOKEN_COLUMNS} FROM admin_tokens ORDER BY id"),
                &[],
            )
            .await?;
        Ok(rows.iter().map(token_from_row).collect())
    }

    async fn admin_token_by_hash(
        &self,
        hash: [u8; 32],
    ) -> Result<Option<AdminTokenRow>, StorageError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {TOKEN_COLUMNS} FROM admin_tokens
                 WHERE secret_sha256 = $1 AND revoked_at IS NULL"
            ))
            .await?;
        let row = client.query_opt(&statement, &[&&hash[..]]).await?;
        Ok(row.as_ref().map(token_from_row))
    }

    async fn revoke_admin_token(&self, id: i64, now: i64) -> Result<bool, StorageError> {
        let client = self.client().await?;
        let changed = client
            .execute(
                "UPDATE admin_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                &[&id, &now],
            )
            .await?;
        Ok(changed == 1)
    }

    async fn record_admin_action(&self, action: AdminActionRow) -> Result<i64, StorageError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "INSERT INTO admin_actions (at, actor, token_id, tenant, action, target, detail)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                &[
                    &action.at,
                    &action.actor,
                    &action.token_id,
                    &action.tenant,
                    &action.action,
                    &action.target,
                    &action.detail,
                ],
            )
            .await?;
        Ok(row.get(0))
    }

    async fn admin_actions(
        &self,
        tenant: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AdminActionRow>, StorageError> {
        let client = self.client().await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(
                "SELECT id, at, actor, token_id, tenant, action, target, detail
                 FROM admin_actions
                 WHERE ($1::text IS NULL OR tenant = $1) ORDER BY id DESC LIMIT $2",
                &[&tenant, &limit],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| AdminActionRow {
                id: r.get(0),
                at: r.get(1),
                actor: r.get(2),
                token_id: r.get(3),
                tenant: r.get(4),
                action: r.get(5),
                target: r.get(6),
                detail: r.get(7),
            })
            .collect())
    }
}
