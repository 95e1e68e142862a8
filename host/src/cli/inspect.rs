//! `airlock inspect`: what a reviewer needs to know about a plugin, without
//! running it.

use std::path::PathBuf;

use airlock::egress::{EgressRule, RuleSource};
use airlock::runtime::{HostLimits, Runtime};
use airlock::{Manifest, Plugin};

use super::{CacheArgs, PermittedArgs};
use airlock::egress::PermittedDomains;

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// The plugin directory (holding plugin.toml and its component).
    plugin_dir: PathBuf,
    #[command(flatten)]
    permitted: PermittedArgs,
    #[command(flatten)]
    cache: CacheArgs,
}

fn print_manifest(plugin: &Plugin) {
    let m: &Manifest = &plugin.manifest;
    outln!("plugin     {}", plugin.label());
    if let Some(kind) = &m.plugin.kind {
        outln!("kind       {kind}");
    }
    if let Some(d) = &m.plugin.description {
        outln!("about      {d}");
    }
    outln!("component  {}", plugin.component_path.display());
    outln!("sha256     {}", plugin.digest);
    outln!(
        "limits     memory {} MiB, run timeout {} s",
        m.limits.memory_mb,
        m.limits.run_timeout_secs
    );
    outln!(
        "artifacts  at most {} MiB each, {} MiB per run, {} kept by an installation",
        m.limits.artifact_mb,
        m.limits.artifact_run_mb,
        m.limits.artifacts
    );
    outln!();
    outln!("feeds:");
    outln!(
        "  {:<20} {:<9} {:<20} description",
        "name",
        "direction",
        "schedule"
    );
    for f in &m.feeds {
        let direction = format!("{:?}", f.direction).to_lowercase();
        outln!(
            "  {:<20} {:<9} {:<20} {}",
            f.name,
            direction,
            f.schedule,
            f.description.as_deref().unwrap_or("")
        );
    }
    if !m.webhooks.is_empty() {
        outln!();
        outln!(
            "webhooks (at /hooks/{{tenant}}/{{installation}}/{{name}}/{{secret}}; {} deliveries a \
             minute per installation):",
            m.limits.webhook_deliveries_per_minute
        );
        for w in &m.webhooks {
            let signed = match &w.signature {
                Some(s) => format!(
                    "signed: hmac-sha256 in {} with config {}",
                    s.header, s.secret_field
                ),
                None => "unsigned".to_string(),
            };
            outln!(
                "  {:<20} {:<9} max {} KiB, {signed}  {}",
                w.name,
                w.methods.join(","),
                w.max_body_kb,
                w.description.as_deref().unwrap_or("")
            );
        }
    }
    outln!();
    outln!("config:");
    outln!(
        "  {:<24} {:<7} {:<9} default / values",
        "key",
        "type",
        "required"
    );
    for (key, field) in &m.config {
        let kind = format!("{:?}", field.kind).to_lowercase();
        let extra = if !field.values.is_empty() {
            field.values.join(" | ")
        } else {
            field
                .default
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default()
        };
        outln!(
            "  {key:<24} {kind:<7} {:<9} {extra}",
            if field.required { "yes" } else { "no" }
        );
    }
}

fn print_egress(m: &Manifest, permitted: &PermittedDomains) {
    outln!();
    outln!("egress (deny by default; only these may be reached):");
    outln!(
        "  {:<36} {:<6} {:<6} {:<24} source",
        "host",
        "scheme",
        "port",
        "service"
    );
    for entry in &m.egress.allow {
        match EgressRule::from_manifest(entry) {
            Ok(rule) => print_rule(&rule, permitted),
            Err(e) => outln!("  {:<36} INVALID: {e}", entry.host),
        }
    }
    for key in &m.egress.from_config {
        outln!(
            "  {:<36} {:<6} {:<6} {:<24} config `{key}` (the origin of the installation's value, approved per installation)",
            format!("<origin of config `{key}`>"),
            "*",
            "*",
            "installation's own"
        );
    }
    if m.egress.allow.is_empty() && m.egress.from_config.is_empty() {
        outln!("  (none: this plugin cannot make HTTP requests)");
    }
}

fn print_data(m: &Manifest) {
    outln!();
    outln!("records (the tenant's shared data; none unless listed):");
    let list = |names: &[String]| {
        if names.is_empty() {
            "(none)".to_string()
        } else {
            names.join(", ")
        }
    };
    outln!(
        "  reads    {}   (change feed, pending set, acknowledge, annotate)",
        list(&m.data.reads)
    );
    outln!("  writes   {}   (put, delete)", list(&m.data.writes));
    outln!(
        "  per run  at most {} record changes",
        m.limits.record_changes
    );
}

fn print_oauth(m: &Manifest) {
    let Some(oauth) = &m.oauth else {
        return;
    };
    outln!();
    outln!("oauth (tokens held by the host; the guest gets access tokens only):");
    if let Some(url) = &oauth.authorize_url {
        outln!("  authorize     {url}");
    }
    outln!("  token         {}", oauth.token_url);
    let grants: Vec<&str> = oauth.grants.iter().map(|g| g.as_str()).collect();
    outln!("  grants        {}", grants.join(", "));
    outln!("  scopes        {}", oauth.scopes.join(" "));
    let auth = match oauth.client_auth {
        airlock::manifest::ClientAuth::Basic => "basic",
        airlock::manifest::ClientAuth::Body => "body",
    };
    outln!(
        "  client auth   {auth}, PKCE {}",
        if oauth.pkce { "S256" } else { "off" }
    );
    outln!(
        "  client        id in config `{}`, secret in `{}` (host-only: the guest cannot read it)",
        oauth.client_id_field,
        oauth.client_secret_field
    );
}

fn print_rule(rule: &EgressRule, permitted: &PermittedDomains) {
    let source = match (&rule.source, permitted.covering(rule)) {
        (RuleSource::Manifest, Some(p)) => {
            format!("manifest; permitted as {} ({})", p.domain, p.service)
        }
        (RuleSource::Manifest, None) => {
            "manifest; NOT in the permitted-domains table: will not be granted".to_string()
        }
        (RuleSource::Config { key }, _) => format!("config `{key}`"),
    };
    outln!(
        "  {:<36} {:<6} {:<6} {:<24} {source}",
        rule.host.to_string(),
        rule.scheme.as_str(),
        rule.port,
        rule.service
    );
}

pub fn inspect(args: InspectArgs) -> anyhow::Result<u8> {
    let plugin = Plugin::load(&args.plugin_dir)?;
    print_manifest(&plugin);
    print_egress(&plugin.manifest, &args.permitted.load()?);
    print_data(&plugin.manifest);
    print_oauth(&plugin.manifest);
    let runtime = Runtime::new(HostLimits::default(), args.cache.dir())?;
    let component = runtime.load(&plugin.digest, &plugin.component)?;
    outln!();
    outln!("component imports (WIT):");
    for (name, kind) in component.imports(runtime.engine()) {
        outln!("  {name:<48} {kind}");
    }
    outln!("component exports (WIT):");
    for (name, kind) in component.exports(runtime.engine()) {
        outln!("  {name:<48} {kind}");
    }
    Ok(0)
}
