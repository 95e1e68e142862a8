//! What an installation may reach, layer by layer, and why: the operator's
//! permitted-domains table, the plugin manifest's egress entries, and the
//! origins of config values the operator approved for the installation.
//!
//! Effective allow-list = manifest entries that fall inside the permitted
//! table + approved config origins. A manifest entry outside the table is
//! kept in [`Grants::refused`] with the reason, so install and run can report
//! it instead of silently dropping it. Pure: no I/O beyond reading a table.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::policy::{EgressPolicy, EgressRule, HostPattern, RequestHost, RuleSource};
use crate::config::ConfigValues;
use crate::manifest::Manifest;

/// The table shipped with Airlock: the platform's "Permitted Third Party
/// Domains" (`permitted-domains.toml` at the repository root).
const BUILTIN: &str = include_str!("../../../permitted-domains.toml");

/// One domain the operator permits, covering its subdomains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PermittedDomain {
    /// Normalised domain (or IP address).
    pub domain: String,
    /// The service it belongs to.
    pub service: String,
    pattern: HostPattern,
}

/// The operator's permitted-domains table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermittedDomains {
    domains: Vec<PermittedDomain>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TableFile {
    domains: BTreeMap<String, String>,
}

impl Default for PermittedDomains {
    /// The shipped table.
    fn default() -> Self {
        Self::parse(BUILTIN).expect("the shipped permitted-domains.toml is valid")
    }
}

impl PermittedDomains {
    /// Parses a table: `[domains]` with `"domain" = "service"` lines.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: TableFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut table = Self {
            domains: Vec::new(),
        };
        for (domain, service) in file.domains {
            table.add(&domain, &service)?;
        }
        Ok(table)
    }

    /// Reads and parses a table file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Adds a domain (normalised like a manifest entry).
    pub fn add(&mut self, domain: &str, service: &str) -> Result<(), String> {
        let rule = EgressRule::from_manifest(&crate::manifest::EgressEntry {
            host: domain.to_string(),
            service: service.to_string(),
            scheme: None,
            port: None,
        })
        .map_err(|e| format!("permitted domain {e}"))?;
        let normalised = match &rule.host {
            HostPattern::DomainAndSubdomains(d) | HostPattern::ExactDomain(d) => d.clone(),
            HostPattern::Ip(ip) => ip.to_string(),
        };
        self.domains.push(PermittedDomain {
            domain: normalised,
            service: service.to_string(),
            pattern: rule.host,
        });
        Ok(())
    }

    /// The domains, in table order.
    pub fn domains(&self) -> &[PermittedDomain] {
        &self.domains
    }

    /// The permitted domain that covers everything `rule` allows, if any.
    pub fn covering(&self, rule: &EgressRule) -> Option<&PermittedDomain> {
        let host = match &rule.host {
            HostPattern::DomainAndSubdomains(d) | HostPattern::ExactDomain(d) => {
                RequestHost::Domain(d.clone())
            }
            HostPattern::Ip(ip) => RequestHost::Ip(*ip),
        };
        self.domains.iter().find(|p| p.pattern.matches(&host))
    }
}

/// A rule the installation has, with where it came from.
#[derive(Debug, Clone, Serialize)]
pub struct Granted {
    /// The rule.
    pub rule: EgressRule,
    /// The permitted-table domain that allows it (none for config origins,
    /// which the operator approves per installation).
    pub permitted_by: Option<PermittedDomain>,
}

/// A manifest entry that is not granted, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Refused {
    /// The entry's host as written.
    pub host: String,
    /// Its service.
    pub service: String,
    /// Why it is not granted.
    pub reason: String,
}

/// The effective egress of one installation.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Grants {
    /// What it may reach.
    pub granted: Vec<Granted>,
    /// Manifest entries not granted.
    pub refused: Vec<Refused>,
}

impl Grants {
    /// Works out what an installation of `manifest` with `config` may reach
    /// under `permitted`.
    pub fn resolve(
        manifest: &Manifest,
        config: &ConfigValues,
        permitted: &PermittedDomains,
    ) -> Result<Self, String> {
        let mut grants = Self::default();
        for entry in &manifest.egress.allow {
            let rule = EgressRule::from_manifest(entry)?;
            match permitted.covering(&rule) {
                Some(p) => grants.granted.push(Granted {
                    rule,
                    permitted_by: Some(p.clone()),
                }),
                None => grants.refused.push(Refused {
                    host: entry.host.clone(),
                    service: entry.service.clone(),
                    reason: format!(
                        "{} is not in the operator's permitted-domains table",
                        rule.host
                    ),
                }),
            }
        }
        grants.granted.extend(
            config_rules(manifest, config)?
                .into_iter()
                .map(|rule| Granted {
                    rule,
                    permitted_by: None,
                }),
        );
        Ok(grants)
    }

    /// Every rule `manifest` and `config` ask for, before the permitted
    /// table has its say.
    pub fn requested(
        manifest: &Manifest,
        config: &ConfigValues,
    ) -> Result<Vec<EgressRule>, String> {
        let mut rules = manifest
            .egress
            .allow
            .iter()
            .map(EgressRule::from_manifest)
            .collect::<Result<Vec<_>, _>>()?;
        rules.extend(config_rules(manifest, config)?);
        Ok(rules)
    }

    /// The policy the enforcement point applies.
    pub fn policy(&self) -> EgressPolicy {
        EgressPolicy::new(self.granted.iter().map(|g| g.rule.clone()).collect())
    }

    /// The granted rules as the operator approves them, to store with the
    /// installation.
    pub fn approved(&self) -> Vec<ApprovedRule> {
        self.granted
            .iter()
            .map(|g| ApprovedRule::from_rule(&g.rule))
            .collect()
    }

    /// What an installation may reach from the rules the operator approved
    /// and stored with it, never from the manifest on disk: each rebuilt
    /// with the constructor that made it. A manifest rule the operator's
    /// permitted-domains table no longer covers is refused (the table can
    /// narrow an approval, nothing widens it).
    pub fn from_approved(
        approved: &[ApprovedRule],
        permitted: &PermittedDomains,
    ) -> Result<Self, String> {
        let mut grants = Self::default();
        for stored in approved {
            let rule = stored.to_rule()?;
            if stored.config_key.is_some() {
                grants.granted.push(Granted {
                    rule,
                    permitted_by: None,
                });
                continue;
            }
            match permitted.covering(&rule) {
                Some(p) => grants.granted.push(Granted {
                    rule,
                    permitted_by: Some(p.clone()),
                }),
                None => grants.refused.push(Refused {
                    reason: format!(
                        "{} is no longer in the operator's permitted-domains table",
                        rule.host
                    ),
                    host: stored.host.clone(),
                    service: stored.service.clone(),
                }),
            }
        }
        Ok(grants)
    }
}

/// The origins of the config values the manifest names in `from_config`.
fn config_rules(manifest: &Manifest, config: &ConfigValues) -> Result<Vec<EgressRule>, String> {
    let mut rules = Vec::new();
    for key in &manifest.egress.from_config {
        if let Some(value) = config.get(key) {
            let service = format!("{} (installation config `{key}`)", manifest.plugin.id);
            rules.push(EgressRule::from_config_url(key, value, &service)?);
        }
    }
    Ok(rules)
}

/// One egress rule as the operator approved it, stored with the
/// installation (JSON). Rebuilt into an [`EgressRule`] by the same
/// constructor that made it, so a stored rule means what the reviewer saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovedRule {
    /// Normalised host or IP address (IPv6 in brackets).
    pub host: String,
    /// `http` or `https`.
    pub scheme: String,
    /// The port.
    pub port: u16,
    /// The service it belongs to.
    pub service: String,
    /// For the origin of a config value: its key (an exact origin); none for
    /// a manifest entry (a domain and its subdomains).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_key: Option<String>,
}

impl ApprovedRule {
    /// The stored form of `rule`.
    pub fn from_rule(rule: &EgressRule) -> Self {
        let host = match &rule.host {
            HostPattern::DomainAndSubdomains(d) | HostPattern::ExactDomain(d) => d.clone(),
            HostPattern::Ip(std::net::IpAddr::V6(ip)) => format!("[{ip}]"),
            HostPattern::Ip(ip) => ip.to_string(),
        };
        Self {
            host,
            scheme: rule.scheme.as_str().to_string(),
            port: rule.port,
            service: rule.service.clone(),
            config_key: match &rule.source {
                RuleSource::Manifest => None,
                RuleSource::Config { key } => Some(key.clone()),
            },
        }
    }

    /// The rule it stands for.
    pub fn to_rule(&self) -> Result<EgressRule, String> {
        match &self.config_key {
            None => EgressRule::from_manifest(&crate::manifest::EgressEntry {
                host: self.host.clone(),
                service: self.service.clone(),
                scheme: Some(self.scheme.clone()),
                port: Some(self.port),
            }),
            Some(key) => EgressRule::from_config_url(
                key,
                &format!("{}://{}:{}/", self.scheme, self.host, self.port),
                &self.service,
            ),
        }
        .map_err(|e| format!("stored egress rule {}: {e}", self.host))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(allow: &str) -> Manifest {
        let text = format!(
            "[plugin]\nid = \"p\"\nversion = \"1.0.0\"\n[[feeds]]\nname = \"f\"\ndirection = \"inbound\"\nschedule = \"0 0 * * * *\"\n\
             [config]\nendpoint = {{ type = \"url\" }}\n[egress]\nallow = [{allow}]\nfrom_config = [\"endpoint\"]\n"
        );
        Manifest::parse(&text, Path::new("plugin.toml")).unwrap()
    }

    #[test]
    fn the_shipped_table_is_the_seed_table() {
        let t = PermittedDomains::default();
        assert_eq!(t.domains().len(), 53);
        let stripe = t
            .domains()
            .iter()
            .find(|d| d.domain == "stripe.com")
            .unwrap();
        assert_eq!(stripe.service, "Stripe");
    }

    #[test]
    fn manifest_entries_outside_the_table_are_refused_not_dropped() {
        let m = manifest(
            r#"{ host = "api.stripe.com", service = "Stripe" }, { host = "evil.example", service = "Evil" }, { host = "paypal.com", service = "PayPal" }"#,
        );
        let config = ConfigValues::resolve(&m, [("endpoint", "https://shop.example/api")]).unwrap();
        let g = Grants::resolve(&m, &config, &PermittedDomains::default()).unwrap();
        let granted: Vec<String> = g.granted.iter().map(|g| g.rule.to_string()).collect();
        assert_eq!(
            granted,
            [
                "https://api.stripe.com (and subdomains)",
                "https://paypal.com (and subdomains)",
                "https://shop.example"
            ]
        );
        assert_eq!(
            g.granted[0].permitted_by.as_ref().unwrap().domain,
            "stripe.com"
        );
        assert!(
            g.granted[2].permitted_by.is_none(),
            "config origins are approved per installation"
        );
        assert_eq!(g.refused.len(), 1);
        assert_eq!(g.refused[0].host, "evil.example");
        assert!(
            g.refused[0]
                .reason
                .contains("not in the operator's permitted-domains table")
        );
        let policy = g.policy();
        assert!(policy.check("https://api.stripe.com/v1").is_ok());
        assert!(policy.check("https://evil.example/").is_err());
    }

    #[test]
    fn an_entry_wider_than_the_permitted_domain_is_refused() {
        let mut t = PermittedDomains { domains: vec![] };
        t.add("api.xero.com", "Xero").unwrap();
        let m = manifest(
            r#"{ host = "xero.com", service = "Xero" }, { host = "API.Xero.com.", service = "Xero" }"#,
        );
        let g = Grants::resolve(&m, &ConfigValues::default(), &t).unwrap();
        assert_eq!(g.refused.len(), 1, "xero.com is wider than api.xero.com");
        assert_eq!(g.granted.len(), 1);
    }

    #[test]
    fn approved_rules_rebuild_the_rules_the_operator_saw() {
        let m = manifest(
            r#"{ host = "api.stripe.com", service = "Stripe" }, { host = "paypal.com", service = "PayPal", scheme = "http", port = 8080 }"#,
        );
        for endpoint in [
            "https://shop.example:8443/api",
            "http://[::1]:9000/x",
            "http://10.0.0.1/",
        ] {
            let config = ConfigValues::resolve(&m, [("endpoint", endpoint)]).unwrap();
            let g = Grants::resolve(&m, &config, &PermittedDomains::default()).unwrap();
            let stored = serde_json::to_string(&g.approved()).unwrap();
            let back: Vec<ApprovedRule> = serde_json::from_str(&stored).unwrap();
            let rebuilt = Grants::from_approved(&back, &PermittedDomains::default()).unwrap();
            let rules = |g: &Grants| g.granted.iter().map(|g| g.rule.clone()).collect::<Vec<_>>();
            assert_eq!(rules(&rebuilt), rules(&g), "{endpoint}");
        }
    }

    #[test]
    fn a_table_that_no_longer_permits_an_approved_rule_narrows_it() {
        let m = manifest(r#"{ host = "api.stripe.com", service = "Stripe" }"#);
        let config = ConfigValues::resolve(&m, [("endpoint", "https://shop.example/")]).unwrap();
        let approved = Grants::resolve(&m, &config, &PermittedDomains::default())
            .unwrap()
            .approved();
        let empty = PermittedDomains { domains: vec![] };
        let g = Grants::from_approved(&approved, &empty).unwrap();
        let granted: Vec<String> = g.granted.iter().map(|g| g.rule.to_string()).collect();
        assert_eq!(
            granted,
            ["https://shop.example"],
            "config origins stay approved"
        );
        assert_eq!(g.refused.len(), 1);
        assert!(g.refused[0].reason.contains("no longer"));
    }

    #[test]
    fn bad_tables_are_rejected_clearly() {
        assert!(
            PermittedDomains::parse("[domains]\n\"*.x.com\" = \"X\"\n")
                .unwrap_err()
                .contains("not a host name")
        );
        assert!(
            PermittedDomains::parse("[domain]\n")
                .unwrap_err()
                .contains("unknown field")
        );
    }
}
