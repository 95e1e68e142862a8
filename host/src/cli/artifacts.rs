//! `airlock artifacts list|get|token`: the files an installation's feeds
//! publish, for the operator: what is published, a download ("as a file
//! for manual import"), and the feed access token that `airlock serve
//! --listen` wants in each feed URL. Each calls the store's
//! [`ArtifactStore`] and [`crate::cli`]'s helpers only.
//!
//! Exit status: 0 done, 2 bad input (an unknown installation, artifact or
//! version), 1 the host failed (the database, writing the output).

use std::io::Write as _;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use airlock::artifacts::{check_name, token};
use airlock::storage::{ArtifactVersion, Scope, Store};

use super::{DbArgs, bad, bad_input_exits, show_time, shown};

#[derive(Debug, clap::Subcommand)]
pub enum ArtifactsCommand {
    /// List the artifacts an installation publishes: name, content type,
    /// size, ETag (sha256), when the current version was published, how
    /// many versions are kept, and its URL path under `airlock serve
    /// --listen` (add `?token=…`: see `airlock artifacts token`).
    #[command(after_help = "Example:\n  airlock artifacts list acme/google-shopping")]
    List(ListArgs),
    /// Download an artifact's current version (or an older one still
    /// kept) to stdout or a file, streamed; its sha256 is checked.
    #[command(
        after_help = "Example:\n  airlock artifacts get acme/google-shopping products.xml -o products.xml\n  airlock artifacts get acme/google-shopping products.xml --version 3 > old.xml"
    )]
    Get(GetArgs),
    /// The installation's feed access token, which `airlock serve --listen`
    /// wants in every feed URL (`?token=…` or `Authorization: Bearer …`).
    ///
    /// The first call makes one and prints it with the URL template. It is
    /// stored hashed (sha256), so it cannot be shown again: with --rotate a
    /// new one is made and printed, and the old one stops working at once.
    #[command(
        after_help = "Example:\n  airlock artifacts token acme/google-shopping --base-url https://feeds.example.com\n  airlock artifacts token acme/google-shopping --rotate"
    )]
    Token(TokenArgs),
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// The installation: TENANT/INSTALLATION.
    #[arg(value_parser = parse_target, value_name = "TENANT/INSTALLATION")]
    target: Scope,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    db: DbArgs,
}

#[derive(Debug, clap::Args)]
#[command(disable_version_flag = true)]
pub struct GetArgs {
    /// The installation: TENANT/INSTALLATION.
    #[arg(value_parser = parse_target, value_name = "TENANT/INSTALLATION")]
    target: Scope,
    /// The artifact's name (as `airlock artifacts list` shows it).
    #[arg(value_parser = parse_name)]
    name: String,
    /// Write to this file (replaced whole once the download is complete)
    /// instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// An older version still kept, instead of the current one.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(1..))]
    version: Option<i64>,
    #[command(flatten)]
    db: DbArgs,
}

#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// The installation: TENANT/INSTALLATION.
    #[arg(value_parser = parse_target, value_name = "TENANT/INSTALLATION")]
    target: Scope,
    /// Make a new token (the old one stops working at once) and print it.
    #[arg(long)]
    rotate: bool,
    /// Where `airlock serve --listen` is reached from outside (e.g.
    /// https://feeds.example.com), to print whole URLs: an http or https
    /// URL without a query or fragment.
    #[arg(long, value_name = "URL", value_parser = parse_base_url)]
    base_url: Option<String>,
    #[command(flatten)]
    db: DbArgs,
}

pub(super) fn parse_target(s: &str) -> Result<Scope, String> {
    let Some((tenant, installation)) = s.split_once('/') else {
        return Err(format!(
            "`{}` is not TENANT/INSTALLATION (e.g. acme/google-shopping)",
            shown(s)
        ));
    };
    for (what, id) in [("tenant", tenant), ("installation", installation)] {
        airlock::lifecycle::check_id(id).map_err(|_| {
            format!(
                "`{}` is not a valid {what} id: use 1-64 lower-case letters, digits, `-` and `_`",
                shown(id)
            )
        })?;
    }
    Ok(Scope {
        tenant: tenant.to_string(),
        installation: installation.to_string(),
    })
}

pub(super) fn parse_base_url(s: &str) -> Result<String, String> {
    let url = url::Url::parse(s).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("an http or https URL with a host, e.g. https://feeds.example.com".into());
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err("no query, fragment or user name: the feed path and token follow it".into());
    }
    Ok(s.trim_end_matches('/').to_string())
}

fn parse_name(s: &str) -> Result<String, String> {
    check_name(s).map_err(|e| e.to_string())?;
    Ok(s.to_string())
}

pub async fn artifacts(command: ArtifactsCommand) -> anyhow::Result<u8> {
    let result = match command {
        ArtifactsCommand::List(args) => list(args).await,
        ArtifactsCommand::Get(args) => get(args).await,
        ArtifactsCommand::Token(args) => token_command(args).await,
    };
    bad_input_exits(result)
}

fn feed_path(scope: &Scope, name: &str) -> String {
    format!("/feeds/{}/{}/{name}", scope.tenant, scope.installation)
}

pub(super) fn label(scope: &Scope) -> String {
    format!("{}/{}", scope.tenant, scope.installation)
}

async fn list(args: ListArgs) -> anyhow::Result<u8> {
    let store = args.db.open().await?;
    let scope = &args.target;
    let current = store.artifacts(scope).await?;
    let mut rows = Vec::new();
    for v in current {
        let kept = store.artifact_versions(scope, &v.name).await?.len();
        rows.push((v, kept));
    }
    if args.json {
        let json: Vec<_> = rows
            .iter()
            .map(|(v, kept)| {
                serde_json::json!({
                    "name": v.name,
                    "content_type": v.content_type,
                    "size": v.size,
                    "etag": format!("\"{}\"", v.sha256),
                    "version": v.version,
                    "published_at": v.published_at,
                    "run_id": v.run_id,
                    "versions_kept": kept,
                    "path": feed_path(scope, &v.name),
                })
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(0);
    }
    if rows.is_empty() {
        outln!("{} has published no artifacts", label(scope));
        return Ok(0);
    }
    for (v, kept) in &rows {
        outln!(
            "{}  {}  {} bytes  etag \"{}\"  v{} published {}  ({kept} kept)  {}",
            v.name,
            v.content_type,
            v.size,
            v.sha256,
            v.version,
            show_time(v.published_at),
            feed_path(scope, &v.name)
        );
    }
    Ok(0)
}

/// The version asked for, or an error saying what there is.
async fn version_of(
    store: &dyn Store,
    scope: &Scope,
    name: &str,
    version: Option<i64>,
) -> anyhow::Result<ArtifactVersion> {
    if let Some(found) = store.artifact(scope, name, version).await? {
        return Ok(found);
    }
    let kept = store.artifact_versions(scope, name).await?;
    if kept.is_empty() {
        let names: Vec<String> = store
            .artifacts(scope)
            .await?
            .into_iter()
            .map(|v| v.name)
            .collect();
        let has = if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        };
        return Err(bad(format!(
            "no artifact `{name}` in {} (it has: {has})",
            label(scope)
        )));
    }
    let kept: Vec<String> = kept.iter().map(|v| v.version.to_string()).collect();
    Err(bad(format!(
        "no version {} of `{name}` in {} (kept: {})",
        version.unwrap_or_default(),
        label(scope),
        kept.join(", ")
    )))
}

async fn get(args: GetArgs) -> anyhow::Result<u8> {
    let store = args.db.open().await?;
    let version = version_of(&*store, &args.target, &args.name, args.version).await?;
    let (mut out, temp): (Box<dyn std::io::Write>, _) = match &args.output {
        Some(path) => {
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            let temp = tempfile::NamedTempFile::new_in(dir)
                .map_err(|e| bad(format!("cannot write in {}: {e}", dir.display())))?;
            (Box::new(temp.reopen()?), Some(temp))
        }
        None => (Box::new(std::io::stdout().lock()), None),
    };
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    for seq in 0..version.chunks {
        let Some(chunk) = store.artifact_chunk(&args.target, version.id, seq).await? else {
            anyhow::bail!(
                "version {} of `{}` was deleted while it was read (a newer one was published)",
                version.version,
                args.name
            );
        };
        hasher.update(&chunk);
        size += chunk.len() as u64;
        if let Err(e) = out.write_all(&chunk) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(0);
            }
            return Err(e.into());
        }
    }
    out.flush()?;
    drop(out);
    let sha256 = hex::encode(hasher.finalize());
    if sha256 != version.sha256 || size != version.size {
        anyhow::bail!(
            "`{}` read back as {size} bytes with sha256 {sha256}, not the {} bytes with sha256 {} \
             it was published with",
            args.name,
            version.size,
            version.sha256
        );
    }
    if let (Some(temp), Some(path)) = (temp, &args.output) {
        temp.persist(path)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {}", path.display(), e.error))?;
        eprintln!(
            "wrote {} ({} bytes, version {}, sha256 {})",
            path.display(),
            size,
            version.version,
            sha256
        );
    }
    Ok(0)
}

async fn token_command(args: TokenArgs) -> anyhow::Result<u8> {
    let store = args.db.open().await?;
    let scope = &args.target;
    let installed = store
        .installation(&scope.tenant, &scope.installation)
        .await?
        .is_some_and(|row| row.removed_at.is_none());
    if !installed && store.artifacts(scope).await?.is_empty() {
        return Err(bad(format!(
            "no installation `{}`, and no artifacts published under that name",
            label(scope)
        )));
    }
    let base = args
        .base_url
        .as_deref()
        .unwrap_or("http://HOST:PORT-of-serve--listen");
    let has_one = store.feed_token_hash(scope).await?.is_some();
    if has_one && !args.rotate {
        outln!(
            "{} has a feed token. It is stored hashed (sha256), so it cannot be shown again; \
             `airlock artifacts token {} --rotate` makes a new one and prints it (the old one \
             stops working at once).",
            label(scope),
            label(scope)
        );
        outln!("feed URLs: {base}{}?token=…", feed_path(scope, "{name}"));
        return Ok(0);
    }
    let new = token::generate();
    let now = chrono::Utc::now().timestamp();
    store
        .set_feed_token_hash(scope, token::hash(&new), now)
        .await?;
    let what = if has_one {
        "new feed token (the old one no longer works)"
    } else {
        "feed token"
    };
    outln!(
        "{what} for {}, shown only now (it is stored hashed):",
        label(scope)
    );
    outln!("  {new}");
    outln!("feed URLs ({{name}}: an artifact's name, see `airlock artifacts list`):");
    outln!("  {base}{}?token={new}", feed_path(scope, "{name}"));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::parse_base_url;

    #[test]
    fn a_base_url_is_an_http_origin_or_path_and_nothing_else() {
        assert_eq!(
            parse_base_url("https://feeds.example.com/").unwrap(),
            "https://feeds.example.com"
        );
        assert_eq!(
            parse_base_url("http://127.0.0.1:8440/airlock").unwrap(),
            "http://127.0.0.1:8440/airlock"
        );
        for bad in [
            "javascript:alert(1)",
            "feeds.example.com",
            "ftp://feeds.example.com",
            "https://feeds.example.com/?a=b",
            "https://feeds.example.com/#x",
            "https://user@feeds.example.com",
        ] {
            assert!(parse_base_url(bad).is_err(), "{bad} was accepted");
        }
    }
}
