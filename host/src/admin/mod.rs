//! Who may operate the host from outside it: admin tokens and the audit of
//! what they changed. Used by the admin HTTP API (`web::api`) and the web
//! console; made and revoked by `airlock tokens`.
//!
//! A token is `alk_` and 40 letters and digits from the OS RNG (238 bits),
//! shown once when it is made; only its sha256 is stored. A token is either
//! an operator's (every tenant) or one tenant's (that tenant only), and has
//! permissions:
//! - `read`: see installations, runs, notifications, records, artifacts,
//!   egress;
//! - `operate`: change them (enable, mode, schedules, Run now, acknowledge,
//!   install, remove…);
//! - `approve`: approve a change that widens an installation's egress or
//!   record access (a security reviewer's permission).
//!
//! `operate` and `approve` include `read`.

pub mod actions;

use std::fmt;

use crate::storage::{AdminActionRow, AdminStore, AdminTokenRow, NewAdminToken, StorageError};
use crate::url_secret;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Permission {
    /// See everything of the tenants it may see.
    Read,
    /// Change installations, run feeds, acknowledge notifications.
    Operate,
    /// Approve egress or record access a change widens.
    Approve,
}

impl Permission {
    /// Its name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::Operate => "operate",
            Permission::Approve => "approve",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        match name {
            "read" => Some(Permission::Read),
            "operate" => Some(Permission::Operate),
            "approve" => Some(Permission::Approve),
            _ => None,
        }
    }
}

/// The tenants a token may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenScope {
    /// Every tenant, and the host-wide views (tenants, the admin audit).
    Operator,
    /// This tenant only.
    Tenant(String),
}

/// An authenticated caller: the token that was presented.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's number.
    pub token_id: i64,
    /// The token's name.
    pub name: String,
    /// The tenants it may see.
    pub scope: TokenScope,
    permissions: Vec<Permission>,
}

impl Caller {
    /// Whether the caller has `permission` (`operate` and `approve` imply
    /// `read`).
    pub fn may(&self, permission: Permission) -> bool {
        self.permissions.contains(&permission)
            || (permission == Permission::Read && !self.permissions.is_empty())
    }

    /// Whether the caller may see `tenant`'s data.
    pub fn sees(&self, tenant: &str) -> bool {
        match &self.scope {
            TokenScope::Operator => true,
            TokenScope::Tenant(own) => own == tenant,
        }
    }

    /// Whether this is an operator's token.
    pub fn is_operator(&self) -> bool {
        self.scope == TokenScope::Operator
    }

    /// The tenant a tenant token is limited to.
    pub fn own_tenant(&self) -> Option<&str> {
        match &self.scope {
            TokenScope::Operator => None,
            TokenScope::Tenant(t) => Some(t),
        }
    }

    /// How the caller appears in the audit of admin actions.
    pub fn actor(&self) -> String {
        format!("token #{} ({})", self.token_id, self.name)
    }

    /// Its permissions, as shown.
    pub fn permissions(&self) -> Vec<&'static str> {
        self.permissions.iter().map(|p| p.as_str()).collect()
    }
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.actor())
    }
}

/// The prefix of every admin token's text (so a leaked one is recognisable
/// by secret scanners).
pub const TOKEN_PREFIX: &str = "alk_";

/// A token just made: its number and its text, which is shown once and
/// never stored.
#[derive(Debug)]
pub struct IssuedToken {
    /// Its number.
    pub id: i64,
    /// The token to hand to its holder.
    pub token: String,
}

/// Why a token could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// No permission was given.
    #[error("a token needs at least one permission (read, operate, approve)")]
    NoPermission,
    /// The name is empty or too long.
    #[error("a token's name must be 1 to 64 characters with no control characters")]
    BadName,
    /// The tenant does not exist.
    #[error("no tenant `{0}` (add it with `airlock tenant add {0}`)")]
    NoTenant(String),
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Makes a token named `name` for `scope` with `permissions`.
pub async fn issue_token(
    store: &(impl AdminStore + crate::storage::Registry + ?Sized),
    name: &str,
    scope: TokenScope,
    permissions: &[Permission],
    now: i64,
) -> Result<IssuedToken, TokenError> {
    if permissions.is_empty() {
        return Err(TokenError::NoPermission);
    }
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(TokenError::BadName);
    }
    if let TokenScope::Tenant(tenant) = &scope
        && !store.tenant_exists(tenant).await?
    {
        return Err(TokenError::NoTenant(tenant.clone()));
    }
    let mut permissions = permissions.to_vec();
    permissions.sort();
    permissions.dedup();
    let token = format!("{TOKEN_PREFIX}{}", url_secret::generate_alphanumeric(40));
    let id = store
        .add_admin_token(NewAdminToken {
            name: name.to_string(),
            tenant: match scope {
                TokenScope::Operator => None,
                TokenScope::Tenant(t) => Some(t),
            },
            permissions: permissions
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(","),
            secret_sha256: url_secret::hash(&token),
            created_at: now,
        })
        .await?;
    Ok(IssuedToken { id, token })
}

/// The caller that `presented` authenticates, if it is a live token.
pub async fn authenticate(
    store: &(impl AdminStore + ?Sized),
    presented: &str,
) -> Result<Option<Caller>, StorageError> {
    if !presented.starts_with(TOKEN_PREFIX) || presented.len() > 128 {
        return Ok(None);
    }
    let row = store
        .admin_token_by_hash(url_secret::hash(presented))
        .await?;
    Ok(row.map(caller_of))
}

/// The caller a stored token row stands for.
pub fn caller_of(row: AdminTokenRow) -> Caller {
    Caller {
        token_id: row.id,
        permissions: row
            .permissions
            .split(',')
            .filter_map(Permission::parse)
            .collect(),
        scope: match row.tenant {
            Some(t) => TokenScope::Tenant(t),
            None => TokenScope::Operator,
        },
        name: row.name,
    }
}

/// A change to record in the audit of admin actions.
#[derive(Debug, Clone)]
pub struct Action<'a> {
    /// The stable name of what was done (`installation.disable`).
    pub action: &'a str,
    /// The tenant it concerned, if one.
    pub tenant: Option<&'a str>,
    /// What it was done to.
    pub target: String,
    /// The change in words (never a secret).
    pub detail: String,
}

/// Records `action`, made by `caller` (none: the command line) at `now`.
pub async fn record(
    store: &(impl AdminStore + ?Sized),
    caller: Option<&Caller>,
    action: Action<'_>,
    now: i64,
) -> Result<i64, StorageError> {
    store
        .record_admin_action(AdminActionRow {
            id: 0,
            at: now,
            actor: caller.map_or_else(|| "cli".to_string(), Caller::actor),
            token_id: caller.map(|c| c.token_id),
            tenant: action.tenant.map(str::to_string),
            action: action.action.to_string(),
            target: action.target,
            detail: action.detail,
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Registry, SqliteStore, TenantRow};

    async fn store_with_tenant() -> SqliteStore {
        let store = SqliteStore::in_memory().unwrap();
        Registry::add_tenant(
            &store,
            TenantRow {
                id: "acme".into(),
                name: "Acme".into(),
                created_at: 0,
            },
        )
        .await
        .unwrap();
        store
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_issued_token_authenticates_as_what_it_was_made_for_and_only_its_text_does() {
        let store = store_with_tenant().await;
        let issued = issue_token(
            &store,
            "shop admin",
            TokenScope::Tenant("acme".into()),
            &[Permission::Operate],
            5,
        )
        .await
        .unwrap();
        assert!(issued.token.starts_with(TOKEN_PREFIX));
        assert_eq!(issued.token.len(), TOKEN_PREFIX.len() + 40);
        let caller = authenticate(&store, &issued.token).await.unwrap().unwrap();
        assert_eq!(caller.token_id, issued.id);
        assert!(caller.may(Permission::Read) && caller.may(Permission::Operate));
        assert!(!caller.may(Permission::Approve));
        assert!(caller.sees("acme") && !caller.sees("wisla"));
        let mut wrong = issued.token.clone();
        wrong.pop();
        wrong.push(if issued.token.ends_with('a') {
            'b'
        } else {
            'a'
        });
        assert!(authenticate(&store, &wrong).await.unwrap().is_none());
        assert!(authenticate(&store, "").await.unwrap().is_none());
        // The text is not stored: nothing in the rows holds it.
        let rows = AdminStore::admin_tokens(&store).await.unwrap();
        assert!(!format!("{rows:?}").contains(&issued.token[4..]));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_token_for_a_missing_tenant_or_without_permissions_is_refused() {
        let store = store_with_tenant().await;
        let missing = issue_token(
            &store,
            "x",
            TokenScope::Tenant("nope".into()),
            &[Permission::Read],
            0,
        )
        .await;
        assert!(matches!(missing, Err(TokenError::NoTenant(_))));
        let none = issue_token(&store, "x", TokenScope::Operator, &[], 0).await;
        assert!(matches!(none, Err(TokenError::NoPermission)));
        let bad = issue_token(&store, "a\nb", TokenScope::Operator, &[Permission::Read], 0).await;
        assert!(matches!(bad, Err(TokenError::BadName)));
    }
}
