//! `airlock tokens`: the admin API's tokens (made, listed, revoked) and
//! `airlock tokens actions`, the audit of what they changed.

use chrono::Utc;

use airlock::admin::{self, Permission, TokenScope};

use super::{DbArgs, show_time};

#[derive(Debug, clap::Subcommand)]
pub enum TokensCommand {
    /// Make a token for the admin API and the web console. It is printed
    /// once: store it where its holder keeps secrets (only its sha256 is
    /// kept here).
    Create {
        /// What to call it: who or what holds it (`shop-admin`, `grafana`).
        name: String,
        /// Limit it to this tenant (its holder never sees another's data).
        #[arg(
            long,
            conflicts_with = "operator",
            required_unless_present = "operator"
        )]
        tenant: Option<String>,
        /// An operator's token: every tenant, and the host-wide views.
        #[arg(long)]
        operator: bool,
        /// What it may do: read (see everything of its tenants), operate
        /// (change installations, run feeds, acknowledge), approve (approve
        /// egress or record access a change widens). Repeatable or
        /// comma-separated; operate and approve include read.
        #[arg(
            long = "permission",
            value_enum,
            value_delimiter = ',',
            required = true
        )]
        permissions: Vec<Permission>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List tokens (never their text).
    List {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Revoke a token: the next request with it is refused.
    Revoke {
        /// The token's number (from `airlock tokens list`).
        id: i64,
        #[command(flatten)]
        db: DbArgs,
    },
    /// The audit of admin actions: who changed what through the API or
    /// the console, newest first.
    Actions {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[command(flatten)]
        db: DbArgs,
    },
}

pub async fn tokens(command: TokensCommand) -> anyhow::Result<u8> {
    match command {
        TokensCommand::Create {
            name,
            tenant,
            operator: _,
            permissions,
            db,
        } => {
            let store = db.open().await?;
            let scope = match tenant {
                Some(t) => TokenScope::Tenant(t),
                None => TokenScope::Operator,
            };
            let who = match &scope {
                TokenScope::Operator => "every tenant".to_string(),
                TokenScope::Tenant(t) => format!("tenant {t}"),
            };
            let now = Utc::now().timestamp();
            let issued = admin::issue_token(&*store, &name, scope, &permissions, now).await?;
            let names: Vec<_> = permissions.iter().map(|p| p.as_str()).collect();
            eprintln!(
                "made token #{} `{name}` for {who} ({}); it is shown once, below:",
                issued.id,
                names.join(", ")
            );
            outln!("{}", issued.token);
        }
        TokensCommand::List { db } => {
            let store = db.open().await?;
            let tokens = store.admin_tokens().await?;
            if tokens.is_empty() {
                outln!("no tokens (make one with `airlock tokens create`)");
            }
            for t in tokens {
                let scope = t.tenant.as_deref().unwrap_or("(operator)");
                let state = match t.revoked_at {
                    Some(at) => format!("revoked {}", show_time(at)),
                    None => format!("made {}", show_time(t.created_at)),
                };
                outln!(
                    "#{:<4} {:<24} {:<20} {:<22} {state}",
                    t.id,
                    t.name,
                    scope,
                    t.permissions
                );
            }
        }
        TokensCommand::Revoke { id, db } => {
            let store = db.open().await?;
            if !store.revoke_admin_token(id, Utc::now().timestamp()).await? {
                return super::bad_input_exits(Err(super::bad(format!(
                    "no live token #{id} (see `airlock tokens list`)"
                ))));
            }
            let action = admin::Action {
                action: "token.revoke",
                tenant: None,
                target: format!("token #{id}"),
                detail: String::new(),
            };
            admin::record(&*store, None, action, Utc::now().timestamp()).await?;
            outln!("revoked token #{id}");
        }
        TokensCommand::Actions { tenant, limit, db } => {
            let store = db.open().await?;
            for a in store.admin_actions(tenant.as_deref(), limit).await? {
                let detail = if a.detail.is_empty() {
                    String::new()
                } else {
                    format!(": {}", a.detail)
                };
                outln!(
                    "{} {} {} {}{detail}",
                    show_time(a.at),
                    a.actor,
                    a.action,
                    a.target
                );
            }
        }
    }
    Ok(0)
}
