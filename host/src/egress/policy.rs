//! The pure egress policy: which URLs an installation may request, and why.
//!
//! No I/O and no wasmtime here: a policy is built from rules and answers
//! [`EgressPolicy::check`] with a [`Grant`] naming the rule that matched or a
//! [`Denial`] naming the rule that refused. `docs/egress-policy.md` states
//! these semantics in prose.

use std::fmt;
use std::net::IpAddr;

use serde::Serialize;

use crate::manifest::EgressEntry;

/// Where a rule came from, so a reviewer can trace every grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum RuleSource {
    /// `[[egress.allow]]` in the plugin's manifest.
    Manifest,
    /// The origin of the installation's config value under `key`
    /// (`[egress] from_config`).
    Config {
        /// The config key.
        key: String,
    },
}

/// What a rule's host part matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum HostPattern {
    /// A domain and all its subdomains (`stripe.com` covers `api.stripe.com`).
    DomainAndSubdomains(String),
    /// Exactly this host name (config-derived origins).
    ExactDomain(String),
    /// Exactly this IP address.
    Ip(IpAddr),
}

impl HostPattern {
    pub(crate) fn matches(&self, host: &RequestHost) -> bool {
        match (self, host) {
            (HostPattern::DomainAndSubdomains(d), RequestHost::Domain(h)) => {
                h == d
                    || (h.len() > d.len() && h.ends_with(d.as_str()) && {
                        let boundary = h.len() - d.len() - 1;
                        h.as_bytes()[boundary] == b'.'
                    })
            }
            (HostPattern::ExactDomain(d), RequestHost::Domain(h)) => h == d,
            (HostPattern::Ip(ip), RequestHost::Ip(h)) => ip == h,
            _ => false,
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::DomainAndSubdomains(d) => write!(f, "{d} (and subdomains)"),
            HostPattern::ExactDomain(d) => write!(f, "{d}"),
            HostPattern::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            HostPattern::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// URL schemes a rule can allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// Plain HTTP: only when a rule says so.
    Http,
    /// HTTPS: the default.
    Https,
}

impl Scheme {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "http" => Some(Self::Http),
            "https" => Some(Self::Https),
            _ => None,
        }
    }

    /// The scheme's default port.
    pub fn default_port(self) -> u16 {
        match self {
            Self::Http => 80,
            Self::Https => 443,
        }
    }

    /// `http` or `https`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }
}

/// One allowed destination: host pattern, scheme and port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EgressRule {
    /// Which hosts it covers.
    pub host: HostPattern,
    /// The only scheme it allows.
    pub scheme: Scheme,
    /// The only port it allows.
    pub port: u16,
    /// The service the destination belongs to (Stripe, Xero, "merchant's shop").
    pub service: String,
    /// Where the rule came from.
    pub source: RuleSource,
}

impl fmt::Display for EgressRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme.as_str(), self.host)?;
        if self.port != self.scheme.default_port() {
            write!(f, " port {}", self.port)?;
        }
        Ok(())
    }
}

/// Normalises a host name from a manifest, the permitted table or config:
/// ASCII only (internationalised names in their `xn--` form, so a reviewer
/// reading the entry sees what it grants), lower-case, one trailing dot
/// removed, no empty label. IP literals become [`IpAddr`]s.
fn normalise_rule_host(raw: &str) -> Result<Result<String, IpAddr>, String> {
    if raw.is_empty() || raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("`{raw}` is not a host name"));
    }
    if !raw.is_ascii() {
        return Err(format!(
            "`{raw}` is not ASCII: write an internationalised name in its xn-- form, \
             so that what it grants cannot be mistaken for another name"
        ));
    }
    let unbracketed = raw
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(raw);
    if let Ok(ip) = unbracketed.parse::<std::net::Ipv6Addr>() {
        return Ok(Err(IpAddr::V6(ip)));
    }
    if raw.contains(['*', '/', ':', '@', '\\', '%', '?', '#', '[', ']']) {
        return Err(format!(
            "`{raw}` is not a host name (no wildcards, schemes, ports or paths: \
             an entry covers its subdomains already)"
        ));
    }
    let trimmed = raw.strip_suffix('.').unwrap_or(raw);
    match url::Host::parse(trimmed) {
        Ok(url::Host::Domain(d)) => {
            if d.is_empty() || d.split('.').any(|l| l.is_empty() || l.len() > 63) {
                return Err(format!("`{raw}` is not a valid host name"));
            }
            Ok(Ok(d))
        }
        Ok(url::Host::Ipv4(ip)) => Ok(Err(IpAddr::V4(ip))),
        Ok(url::Host::Ipv6(ip)) => Ok(Err(IpAddr::V6(ip))),
        Err(e) => Err(format!("`{raw}` is not a valid host name: {e}")),
    }
}

impl EgressRule {
    /// A rule from a manifest `[[egress.allow]]` entry. A domain entry covers
    /// its subdomains; an IP entry matches only that address.
    pub fn from_manifest(entry: &EgressEntry) -> Result<Self, String> {
        let scheme = match entry.scheme.as_deref() {
            None => Scheme::Https,
            Some(s) => Scheme::parse(s)
                .ok_or_else(|| format!("scheme `{s}` is not allowed: use https or http"))?,
        };
        let host = match normalise_rule_host(&entry.host)? {
            Ok(domain) if is_public_suffix(&domain) => {
                return Err(format!(
                    "`{}` is a public suffix: an entry covers its subdomains, so it would \
                     grant every site registered under it; name the service's own domain",
                    entry.host
                ));
            }
            Ok(domain) => HostPattern::DomainAndSubdomains(domain),
            Err(ip) => HostPattern::Ip(ip),
        };
        Ok(Self {
            host,
            scheme,
            port: entry.port.unwrap_or(scheme.default_port()),
            service: entry.service.clone(),
            source: RuleSource::Manifest,
        })
    }

    /// A rule allowing exactly the origin (scheme, host, port) of a URL found
    /// in an installation's config under `key`.
    pub fn from_config_url(key: &str, value: &str, service: &str) -> Result<Self, String> {
        let url = url::Url::parse(value).map_err(|e| format!("config `{key}`: {e}"))?;
        let scheme = Scheme::parse(url.scheme())
            .ok_or_else(|| format!("config `{key}`: scheme must be http or https"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!(
                "config `{key}`: user names in URLs are not allowed"
            ));
        }
        if raw_authority(value).is_some_and(|a| a.ends_with(':')) {
            return Err(format!("config `{key}`: URL has an empty port"));
        }
        let raw_host = url
            .host_str()
            .ok_or_else(|| format!("config `{key}`: URL has no host"))?;
        let host = match normalise_rule_host(raw_host)? {
            Ok(domain) => HostPattern::ExactDomain(domain),
            Err(ip) => HostPattern::Ip(ip),
        };
        Ok(Self {
            host,
            scheme,
            port: url.port_or_known_default().unwrap_or(scheme.default_port()),
            service: service.to_string(),
            source: RuleSource::Config {
                key: key.to_string(),
            },
        })
    }
}

/// Whether `domain` (normalised) is a public suffix: a top-level domain
/// (`com`, or any single label), a registry's (`co.uk`) or a hosting
/// platform's (`myshopify.com`), under which anyone can register a name.
fn is_public_suffix(domain: &str) -> bool {
    psl::suffix_str(domain).is_none_or(|suffix| suffix == domain)
}

/// The rule that refused a request, as the guest sees it (`denial.rule`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DenialRule {
    /// The URL could not be parsed, or its authority is ambiguous.
    MalformedUrl,
    /// The URL carries a user name or password.
    Userinfo,
    /// The host is an IP address no rule names.
    IpLiteral,
    /// No rule covers the host.
    NoMatchingEntry,
    /// A rule covers the host but not this scheme.
    Scheme,
    /// A rule covers the host and scheme but not this port.
    Port,
    /// The guest set a header only the host may set.
    Header,
    /// Too many redirects.
    RedirectLimit,
    /// The name resolved to (or the literal is) an address the operator has
    /// not allowed: loopback, private, link-local, metadata…
    ResolvedAddress,
}

impl DenialRule {
    /// The kebab-case name the guest and the audit see.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MalformedUrl => "malformed-url",
            Self::Userinfo => "userinfo",
            Self::IpLiteral => "ip-literal",
            Self::NoMatchingEntry => "no-matching-entry",
            Self::Scheme => "scheme",
            Self::Port => "port",
            Self::Header => "header",
            Self::RedirectLimit => "redirect-limit",
            Self::ResolvedAddress => "resolved-address",
        }
    }
}

/// A refusal: which rule and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Denial {
    /// The rule that refused.
    pub rule: DenialRule,
    /// A sentence naming the host and what would allow it.
    pub reason: String,
}

impl Denial {
    pub(crate) fn new(rule: DenialRule, reason: impl Into<String>) -> Self {
        Self {
            rule,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "denied by {}: {}", self.rule.as_str(), self.reason)
    }
}

/// A request host after normalisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestHost {
    /// A domain name: ASCII, lower-case, punycode, no trailing dot.
    Domain(String),
    /// An IP literal, whatever notation the URL used.
    Ip(IpAddr),
}

impl fmt::Display for RequestHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestHost::Domain(d) => f.write_str(d),
            RequestHost::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            RequestHost::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// An allowed request: the parsed URL and the rule that allowed it.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The parsed URL to send.
    pub url: url::Url,
    /// The normalised host.
    pub host: RequestHost,
    /// The scheme.
    pub scheme: Scheme,
    /// The effective port.
    pub port: u16,
    /// The rule that matched.
    pub rule: EgressRule,
}

/// The allow-list of one installation. Deny by default: an empty policy
/// refuses everything.
#[derive(Debug, Clone, Default)]
pub struct EgressPolicy {
    rules: Vec<EgressRule>,
}

/// Extracts the authority (between `//` and the next `/`, `?` or `#`) of an
/// absolute URL as written, before any parser normalises it.
fn raw_authority(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some(&rest[..end])
}

impl EgressPolicy {
    /// A policy allowing exactly `rules`.
    pub fn new(rules: Vec<EgressRule>) -> Self {
        Self { rules }
    }

    /// The rules, in the order they were given.
    pub fn rules(&self) -> &[EgressRule] {
        &self.rules
    }

    /// Decides whether `url` may be requested, without any I/O.
    pub fn check(&self, url: &str) -> Result<Grant, Denial> {
        let (parsed, host, scheme) = parse_request_url(url)?;
        let port = parsed
            .port_or_known_default()
            .unwrap_or(scheme.default_port());
        let covering: Vec<&EgressRule> = self
            .rules
            .iter()
            .filter(|r| r.host.matches(&host))
            .collect();
        if covering.is_empty() {
            return Err(match host {
                RequestHost::Ip(_) => Denial::new(
                    DenialRule::IpLiteral,
                    format!("{host} is an IP address and no egress entry names it"),
                ),
                RequestHost::Domain(_) => Denial::new(
                    DenialRule::NoMatchingEntry,
                    format!("no egress entry covers {host}"),
                ),
            });
        }
        let same_scheme: Vec<&&EgressRule> =
            covering.iter().filter(|r| r.scheme == scheme).collect();
        if same_scheme.is_empty() {
            return Err(Denial::new(
                DenialRule::Scheme,
                format!(
                    "{host} is allowed only over {} ({})",
                    covering[0].scheme.as_str(),
                    covering[0]
                ),
            ));
        }
        match same_scheme.iter().find(|r| r.port == port) {
            Some(rule) => Ok(Grant {
                url: parsed,
                host,
                scheme,
                port,
                rule: (**rule).clone(),
            }),
            None => Err(Denial::new(
                DenialRule::Port,
                format!(
                    "{host} is allowed only on port {} ({}), not {port}",
                    same_scheme[0].port, same_scheme[0]
                ),
            )),
        }
    }
}

/// Parses a request URL strictly: absolute http(s), no userinfo, nothing
/// ambiguous in the authority.
fn parse_request_url(url: &str) -> Result<(url::Url, RequestHost, Scheme), Denial> {
    // The reason never quotes the URL: its path or query can carry a secret.
    let malformed =
        |why: &str| Denial::new(DenialRule::MalformedUrl, format!("malformed URL: {why}"));
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(malformed("whitespace or control characters"));
    }
    let authority = raw_authority(url).ok_or_else(|| malformed("not an absolute URL"))?;
    if authority.contains('@') {
        return Err(Denial::new(
            DenialRule::Userinfo,
            "URLs with a user name or password are refused; send credentials in a header",
        ));
    }
    if !authority.is_ascii() {
        return Err(malformed("non-ASCII host: use its punycode (xn--) form"));
    }
    if authority.contains(['\\', '%']) {
        return Err(malformed("backslash or percent-encoding in the host"));
    }
    if authority.ends_with(':') {
        return Err(malformed("empty port"));
    }
    let parsed = url::Url::parse(url).map_err(|e| malformed(&e.to_string()))?;
    let scheme = Scheme::parse(parsed.scheme()).ok_or_else(|| {
        Denial::new(
            DenialRule::Scheme,
            format!("scheme `{}` is not http or https", parsed.scheme()),
        )
    })?;
    let host = match parsed.host() {
        Some(url::Host::Domain(d)) => {
            let d = d.strip_suffix('.').unwrap_or(d);
            if d.split('.').any(str::is_empty) {
                return Err(malformed("empty label in host"));
            }
            RequestHost::Domain(d.to_string())
        }
        Some(url::Host::Ipv4(ip)) => RequestHost::Ip(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => RequestHost::Ip(IpAddr::V6(ip)),
        None => return Err(malformed("no host")),
    };
    Ok((parsed, host, scheme))
}

#[cfg(test)]
mod tests;
