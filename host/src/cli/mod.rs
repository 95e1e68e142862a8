//! Command-line parsing and dispatch. Each subcommand lives in its own file
//! and only calls the library; nothing here decides policy.

mod inspect;
mod run;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Exit code: the host itself failed (bad input, unreadable plugin, database).
pub const EXIT_HOST_FAILURE: u8 = 1;
/// Exit code: the run ended `retry`.
pub const EXIT_RETRY: u8 = 3;
/// Exit code: the run ended `error` (including trap, timeout, memory limit).
pub const EXIT_ERROR: u8 = 4;

/// Airlock runs commerce connectors as sandboxed WebAssembly components.
///
/// A plugin is a directory with a `plugin.toml` manifest and the component it
/// names. Connectors reach only the HTTP destinations their installation was
/// granted, and keep state in storage private to their installation.
#[derive(Debug, Parser)]
#[command(name = "airlock", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one feed of a plugin once and print what happened.
    ///
    /// Prints the outcome, the guest's log and output, every HTTP request with
    /// the egress decision, and the storage changes (committed when the run
    /// ends ok or info, discarded otherwise). The run is recorded in the
    /// database.
    ///
    /// Exit status: 0 ok or info, 3 retry, 4 error (including trap, timeout and
    /// memory limit), 1 the host failed, 2 bad arguments.
    #[command(
        after_help = "Example:\n  airlock run plugins/custom-store --feed orders --tenant acme \\\n    --config endpoint=http://shop.test:8080/api/v1 --config username=demo \\\n    --config-file secrets.toml --resolve shop.test=127.0.0.1 \\\n    --allow-network 127.0.0.0/8"
    )]
    Run(Box<run::RunArgs>),
    /// Describe a plugin: manifest, component digest, WIT imports and exports,
    /// and the egress table a security reviewer checks.
    Inspect(inspect::InspectArgs),
}

/// Options shared by commands that load components.
#[derive(Debug, clap::Args)]
pub struct CacheArgs {
    /// Directory for compiled components (default: $XDG_CACHE_HOME/airlock or
    /// ~/.cache/airlock).
    #[arg(long, env = "AIRLOCK_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile components in memory only; do not read or write the cache.
    #[arg(long)]
    no_cache: bool,
}

impl CacheArgs {
    fn dir(&self) -> Option<PathBuf> {
        if self.no_cache {
            return None;
        }
        if let Some(d) = &self.cache_dir {
            return Some(d.clone());
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
        Some(base.join("airlock").join("components"))
    }
}

/// Runs the parsed command; returns the process exit code.
pub async fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Run(args) => run::run(*args).await,
        Command::Inspect(args) => inspect::inspect(args),
    }
}
