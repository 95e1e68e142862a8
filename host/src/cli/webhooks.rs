//! `airlock webhooks list|secret`: an installation's inbound webhooks, for
//! the operator: which webhooks its plugin declares, their URLs on `airlock
//! serve --listen`, and the secret every one of those URLs holds.
//!
//! Exit status: 0 done, 2 bad input (an unknown installation, a plugin
//! without webhooks, a bad secret), 1 the host failed.

use std::io::Read as _;

use airlock::storage::{Scope, Store};
use airlock::webhooks::{check_secret, new_secret};

use super::artifacts::{label, parse_base_url, parse_target};
use super::{DbArgs, bad, bad_input_exits};

#[derive(Debug, clap::Subcommand)]
pub enum WebhooksCommand {
    /// List the webhooks an installation's plugin declares: name, methods,
    /// body cap, signature, and the URL path under `airlock serve --listen`.
    #[command(after_help = "Example:\n  airlock webhooks list acme/salesmanago")]
    List(ListArgs),
    /// The installation's webhook secret, which every one of its webhook
    /// URLs holds (`/hooks/{tenant}/{installation}/{webhook}/{secret}`).
    ///
    /// The first call makes one (16 letters and digits) and prints the URLs.
    /// It is stored hashed (sha256), so it cannot be shown again: --rotate
    /// makes a new one (the old URLs stop working at once). --from-stdin sets
    /// one you choose instead (8-64 letters, digits, `-`, `_`), for a third
    /// party that already has a URL.
    #[command(
        after_help = "Example:\n  airlock webhooks secret acme/salesmanago --base-url https://hooks.example.com\n  airlock webhooks secret acme/salesmanago --rotate\n  printf '%s' \"$SECRET\" | airlock webhooks secret acme/salesmanago --from-stdin"
    )]
    Secret(SecretArgs),
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// The installation: TENANT/INSTALLATION.
    #[arg(value_parser = parse_target, value_name = "TENANT/INSTALLATION")]
    target: Scope,
    #[command(flatten)]
    db: DbArgs,
}

#[derive(Debug, clap::Args)]
pub struct SecretArgs {
    /// The installation: TENANT/INSTALLATION.
    #[arg(value_parser = parse_target, value_name = "TENANT/INSTALLATION")]
    target: Scope,
    /// Make a new secret (the old URLs stop working at once) and print it.
    #[arg(long, conflicts_with = "from_stdin")]
    rotate: bool,
    /// Set the secret read from stdin (surrounding whitespace removed).
    #[arg(long)]
    from_stdin: bool,
    /// Where `airlock serve --listen` is reached from outside (e.g.
    /// https://hooks.example.com), to print whole URLs.
    #[arg(long, value_name = "URL", value_parser = parse_base_url)]
    base_url: Option<String>,
    #[command(flatten)]
    db: DbArgs,
}

/// Runs one `airlock webhooks` command.
pub async fn webhooks(command: WebhooksCommand) -> anyhow::Result<u8> {
    let result = match command {
        WebhooksCommand::List(args) => list(args).await,
        WebhooksCommand::Secret(args) => secret(args).await,
    };
    bad_input_exits(result)
}

/// The names, methods and caps of the webhooks of `scope`'s installed
/// plugin; bad input if it is not installed or declares none.
async fn declared(
    store: &dyn Store,
    scope: &Scope,
) -> anyhow::Result<Vec<airlock::manifest::Webhook>> {
    let row = store
        .installation(&scope.tenant, &scope.installation)
        .await?
        .filter(|row| row.removed_at.is_none())
        .ok_or_else(|| bad(format!("no installation `{}`", label(scope))))?;
    let plugin = airlock::manifest::Plugin::load(std::path::Path::new(&row.plugin_dir))
        .map_err(|e| bad(format!("cannot read the installed plugin: {e}")))?;
    if plugin.manifest.webhooks.is_empty() {
        return Err(bad(format!(
            "`{}` ({}) declares no webhooks",
            label(scope),
            plugin.label()
        )));
    }
    Ok(plugin.manifest.webhooks)
}

fn hook_path(scope: &Scope, webhook: &str, secret: &str) -> String {
    format!(
        "/hooks/{}/{}/{webhook}/{secret}",
        scope.tenant, scope.installation
    )
}

async fn list(args: ListArgs) -> anyhow::Result<u8> {
    let store = args.db.open().await?;
    let scope = &args.target;
    let hooks = declared(&*store, scope).await?;
    let has_secret = store.webhook_secret_hash(scope).await?.is_some();
    for hook in &hooks {
        let signed = match &hook.signature {
            Some(s) => format!(
                "signed (hmac-sha256 in {}, key: config {})",
                s.header, s.secret_field
            ),
            None => "unsigned".to_string(),
        };
        outln!(
            "{}  {}  max {} KiB  {signed}{}",
            hook.name,
            hook.methods.join(","),
            hook.max_body_kb,
            hook.delivery_id_header
                .as_deref()
                .map(|h| format!("  delivery id: {h}"))
                .unwrap_or_default()
        );
        outln!("    {}", hook_path(scope, &hook.name, "{secret}"));
        if let Some(d) = &hook.description {
            outln!("    {d}");
        }
    }
    if !has_secret {
        outln!(
            "no webhook secret yet: every delivery gets 404 until `airlock webhooks secret {}` \
             makes one",
            label(scope)
        );
    }
    Ok(0)
}

async fn secret(args: SecretArgs) -> anyhow::Result<u8> {
    let store = args.db.open().await?;
    let scope = &args.target;
    let hooks = declared(&*store, scope).await?;
    let has_one = store.webhook_secret_hash(scope).await?.is_some();
    let base = args
        .base_url
        .as_deref()
        .unwrap_or("http://HOST:PORT-of-serve--listen");
    let new = if args.from_stdin {
        let mut text = String::new();
        std::io::stdin()
            .take(4096)
            .read_to_string(&mut text)
            .map_err(|e| bad(format!("cannot read the secret from stdin: {e}")))?;
        let text = text.trim().to_string();
        check_secret(&text).map_err(bad)?;
        text
    } else if has_one && !args.rotate {
        outln!(
            "{} has a webhook secret. It is stored hashed (sha256), so it cannot be shown again; \
             `airlock webhooks secret {} --rotate` makes a new one and prints the URLs (the old \
             ones stop working at once).",
            label(scope),
            label(scope)
        );
        for hook in &hooks {
            outln!("  {base}{}", hook_path(scope, &hook.name, "{secret}"));
        }
        return Ok(0);
    } else {
        new_secret()
    };
    let now = chrono::Utc::now().timestamp();
    store
        .set_webhook_secret_hash(scope, airlock::url_secret::hash(&new), now)
        .await?;
    let what = if has_one {
        "new webhook secret (the old URLs no longer work)"
    } else {
        "webhook secret"
    };
    if args.from_stdin {
        outln!("{what} for {} set from stdin; its URLs:", label(scope));
    } else {
        outln!(
            "{what} for {}, shown only now (it is stored hashed): {new}",
            label(scope)
        );
        outln!("its URLs:");
    }
    for hook in &hooks {
        let secret = if args.from_stdin { "{secret}" } else { &new };
        outln!(
            "  {}  {base}{}",
            hook.name,
            hook_path(scope, &hook.name, secret)
        );
    }
    Ok(0)
}
