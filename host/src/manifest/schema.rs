//! The manifest's types, as they appear in `plugin.toml`, and their validation.

use std::collections::{BTreeMap, HashSet};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A whole `plugin.toml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// `[plugin]`: identity.
    pub plugin: PluginSection,
    /// `[[feeds]]`: the jobs this plugin can run.
    pub feeds: Vec<Feed>,
    /// `[config]`: the settings an installation provides, by key.
    #[serde(default)]
    pub config: BTreeMap<String, ConfigField>,
    /// `[egress]`: where the plugin may send HTTP requests.
    #[serde(default)]
    pub egress: EgressSection,
    /// `[limits]`: what one run may use, and the installation's storage quota.
    #[serde(default)]
    pub limits: Limits,
    /// `[data]`: which of the tenant's record collections it may read and
    /// write.
    #[serde(default)]
    pub data: DataSection,
    /// `[oauth]`: OAuth2 access to the third party, held by the host.
    #[serde(default)]
    pub oauth: Option<OAuthSection>,
    /// `[[webhooks]]`: URLs third parties may call (the component then
    /// exports `webhook-handler`, world `webhook-connector`).
    #[serde(default)]
    pub webhooks: Vec<Webhook>,
}

/// The most a webhook's body may be, whatever its manifest asks: 1 MiB.
pub const MAX_WEBHOOK_BODY_KB: u32 = 1024;

/// `[[webhooks]]`: one URL a third party calls, at
/// `/hooks/{tenant}/{installation}/{name}/{secret}` on `serve`'s listener.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// The webhook's name, unique among feeds and webhooks: its deliveries
    /// are runs of a feed of this name.
    pub name: String,
    /// HTTP methods accepted (GET, POST, PUT); default POST.
    #[serde(default = "default_webhook_methods")]
    pub methods: Vec<String>,
    /// Largest body accepted, in KiB (default 64, at most 1024); a larger
    /// one gets 413 and nothing runs.
    #[serde(default = "default_webhook_body_kb")]
    pub max_body_kb: u32,
    /// The header carrying the sender's delivery id, if it sends one: a
    /// delivery whose id was already handled is answered 200 and not run
    /// again.
    #[serde(default)]
    pub delivery_id_header: Option<String>,
    /// The signature the sender puts on each delivery, verified by the host
    /// before anything runs.
    #[serde(default)]
    pub signature: Option<WebhookSignature>,
    /// One line for operators.
    #[serde(default)]
    pub description: Option<String>,
}

/// How a sender signs its deliveries: an HMAC of the body (or of
/// `{timestamp}.{body}` when it sends a timestamp) with a shared secret.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSignature {
    /// The header carrying the signature.
    pub header: String,
    /// The `[config]` field (of type secret) holding the shared secret.
    pub secret_field: String,
    /// The MAC: `hmac-sha256` (the only one for now).
    #[serde(default = "default_signature_algorithm")]
    pub algorithm: String,
    /// How the MAC is written: `hex` or `base64`.
    #[serde(default = "default_signature_encoding")]
    pub encoding: String,
    /// Text before the MAC in the header (`sha256=`), if any.
    #[serde(default)]
    pub prefix: Option<String>,
    /// The header carrying the signing time (Unix seconds); the signed text
    /// is then `{timestamp}.{body}`, and a delivery signed more than five
    /// minutes away from now is refused (a replay).
    #[serde(default)]
    pub timestamp_header: Option<String>,
}

fn default_webhook_methods() -> Vec<String> {
    vec!["POST".to_string()]
}

fn default_webhook_body_kb() -> u32 {
    64
}

fn default_signature_algorithm() -> String {
    "hmac-sha256".to_string()
}

fn default_signature_encoding() -> String {
    "hex".to_string()
}

/// An OAuth2 grant type a plugin supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OAuthGrant {
    /// The authorization-code flow (with PKCE unless `pkce = false`): an
    /// operator consents in a browser (`airlock reauthorise --oauth`).
    AuthorizationCode,
    /// Client credentials: the client id and secret alone get a token
    /// (Xero's custom connections).
    ClientCredentials,
}

impl OAuthGrant {
    /// The grant's name as the manifest and RFC 6749 spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::ClientCredentials => "client_credentials",
        }
    }
}

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// `Authorization: Basic base64(client_id:client_secret)` (RFC 6749
    /// §2.3.1; Xero, eBay).
    #[default]
    Basic,
    /// `client_id` and `client_secret` in the form body.
    Body,
}

/// `[oauth]`: the third party's authorization server. The client id and
/// secret are the operator's, in the installation's config: the manifest
/// names the `[config]` fields holding them. The host keeps the client
/// secret and the refresh token; the guest gets access tokens only
/// (`docs/oauth.md`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthSection {
    /// The authorization endpoint (https, inside `[egress]`); needed for
    /// the `authorization_code` grant.
    #[serde(default)]
    pub authorize_url: Option<String>,
    /// The token endpoint (https, inside `[egress]`).
    pub token_url: String,
    /// The scopes asked for.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The grants the plugin supports (default: `authorization_code`).
    #[serde(default = "default_grants")]
    pub grants: Vec<OAuthGrant>,
    /// How the client authenticates at the token endpoint.
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// Whether the authorization-code flow uses PKCE (S256).
    #[serde(default = "default_true")]
    pub pkce: bool,
    /// The `[config]` field holding the client id (a string or secret).
    pub client_id_field: String,
    /// The `[config]` field holding the client secret (`type = "secret"`):
    /// the host's only; the guest's `get-secret` does not return it.
    pub client_secret_field: String,
}

fn default_grants() -> Vec<OAuthGrant> {
    vec![OAuthGrant::AuthorizationCode]
}

fn default_true() -> bool {
    true
}

/// `[data]`: the tenant's record collections a plugin may use, by name
/// (`docs/records.md` lists them). Reading covers the change feed, the
/// pending set, acknowledging and annotating; writing covers put and delete,
/// and does not imply reading.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// Collections it may read (and acknowledge and annotate).
    #[serde(default)]
    pub reads: Vec<String>,
    /// Collections it may write.
    #[serde(default)]
    pub writes: Vec<String>,
}

/// `[plugin]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSection {
    /// Stable identifier: lower-case letters, digits and `-`.
    pub id: String,
    /// Semantic version of this build of the plugin.
    pub version: String,
    /// What kind of integration this is (marketplace, accounting, feed…).
    #[serde(default)]
    pub kind: Option<String>,
    /// One line for operators.
    #[serde(default)]
    pub description: Option<String>,
    /// The component file, relative to the plugin directory.
    #[serde(default = "default_component")]
    pub component: String,
}

fn default_component() -> String {
    "plugin.wasm".to_string()
}

/// Which way data flows in a feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Third party → us (import orders). Runs in test mode too.
    Inbound,
    /// Us → third party (stock export). Changes a third party.
    Outbound,
}

/// The schedule of a feed that runs only when asked (`airlock run-now`, a
/// trial `airlock run`), never on a clock: X-Cart's stock import at setup.
pub const MANUAL_SCHEDULE: &str = "manual";

/// `[[feeds]]`: one named job.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Feed {
    /// The feed's name, unique in the manifest.
    pub name: String,
    /// Inbound or outbound.
    pub direction: Direction,
    /// Default cron schedule, with seconds: `sec min hour day-of-month month
    /// day-of-week [year]`, e.g. `0 0 * * * *` for hourly; or `manual` for a
    /// feed run only when asked (`airlock run-now`).
    pub schedule: String,
    /// One line for operators.
    #[serde(default)]
    pub description: Option<String>,
}

/// The type of a config field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConfigType {
    /// Any text.
    String,
    /// Text readable only by its installation, never shown or logged.
    Secret,
    /// One of `values`.
    Enum,
    /// An absolute http(s) URL.
    Url,
    /// `true` or `false`.
    Bool,
    /// A signed 64-bit integer.
    Int,
}

/// One entry of `[config]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigField {
    /// The field's type.
    #[serde(rename = "type")]
    pub kind: ConfigType,
    /// Whether an installation must set it (when it has no default).
    #[serde(default)]
    pub required: bool,
    /// The value used when the installation does not set one.
    #[serde(default)]
    pub default: Option<toml::Value>,
    /// For `enum`: the allowed values.
    #[serde(default)]
    pub values: Vec<String>,
    /// One line for the person filling in the config.
    #[serde(default)]
    pub description: Option<String>,
}

/// `[egress]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EgressSection {
    /// Fixed destinations the plugin may reach.
    #[serde(default)]
    pub allow: Vec<EgressEntry>,
    /// Config keys (of type `url`) whose value's origin the plugin may reach,
    /// e.g. a merchant's own shop URL, approved per installation.
    #[serde(default)]
    pub from_config: Vec<String>,
}

/// One fixed egress destination.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EgressEntry {
    /// A domain (covering its subdomains) or an IP address.
    pub host: String,
    /// The service it belongs to, as in the operator's permitted-domains table.
    pub service: String,
    /// `https` (default) or `http`.
    #[serde(default)]
    pub scheme: Option<String>,
    /// The port; default: the scheme's default port.
    #[serde(default)]
    pub port: Option<u16>,
}

/// `[limits]`: what one run may use, and what the installation may keep in
/// storage. The host caps each at its own maximum (see `docs/limits.md`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Linear memory, in MiB.
    #[serde(default = "default_memory_mb")]
    pub memory_mb: u32,
    /// Wall-clock time for one run, in seconds.
    #[serde(default = "default_run_timeout_secs")]
    pub run_timeout_secs: u32,
    /// Timeout of one HTTP request (and the most a guest may ask), seconds.
    #[serde(default = "default_http_timeout_secs")]
    pub http_timeout_secs: u32,
    /// Largest HTTP response body read, in MiB.
    #[serde(default = "default_http_response_mb")]
    pub http_response_mb: u32,
    /// HTTP requests one run may make (both HTTP interfaces together).
    #[serde(default = "default_http_requests")]
    pub http_requests: u32,
    /// HTTP requests one run may have in flight at once; more wait.
    #[serde(default = "default_http_concurrency")]
    pub http_concurrency: u32,
    /// Bytes of keys and values the installation may keep in storage, MiB.
    #[serde(default = "default_storage_mb")]
    pub storage_mb: u32,
    /// Keys the installation may keep in storage.
    #[serde(default = "default_storage_keys")]
    pub storage_keys: u32,
    /// Record writes, acknowledgements and annotations one run may make,
    /// together.
    #[serde(default = "default_record_changes")]
    pub record_changes: u32,
    /// Largest artifact a run may write, in MiB.
    #[serde(default = "default_artifact_mb")]
    pub artifact_mb: u32,
    /// Bytes one run may write to artifacts in all, in MiB.
    #[serde(default = "default_artifact_run_mb")]
    pub artifact_run_mb: u32,
    /// Artifacts (names) the installation may keep published.
    #[serde(default = "default_artifacts")]
    pub artifacts: u32,
    /// Webhook deliveries the installation accepts per minute, all its
    /// webhooks together (bursts up to this many); more get 429.
    #[serde(default = "default_webhook_deliveries_per_minute")]
    pub webhook_deliveries_per_minute: u32,
}

fn default_webhook_deliveries_per_minute() -> u32 {
    60
}

fn default_artifact_mb() -> u32 {
    64
}

fn default_artifact_run_mb() -> u32 {
    256
}

fn default_artifacts() -> u32 {
    100
}

fn default_record_changes() -> u32 {
    10_000
}

fn default_http_requests() -> u32 {
    10_000
}

fn default_http_concurrency() -> u32 {
    8
}

fn default_storage_mb() -> u32 {
    64
}

fn default_storage_keys() -> u32 {
    100_000
}

fn default_http_timeout_secs() -> u32 {
    30
}

fn default_http_response_mb() -> u32 {
    16
}

fn default_memory_mb() -> u32 {
    64
}

fn default_run_timeout_secs() -> u32 {
    60
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_mb: default_memory_mb(),
            run_timeout_secs: default_run_timeout_secs(),
            http_timeout_secs: default_http_timeout_secs(),
            http_response_mb: default_http_response_mb(),
            http_requests: default_http_requests(),
            http_concurrency: default_http_concurrency(),
            storage_mb: default_storage_mb(),
            storage_keys: default_storage_keys(),
            record_changes: default_record_changes(),
            artifact_mb: default_artifact_mb(),
            artifact_run_mb: default_artifact_run_mb(),
            artifacts: default_artifacts(),
            webhook_deliveries_per_minute: default_webhook_deliveries_per_minute(),
        }
    }
}

/// A validation failure: the field's path and what is wrong.
pub(super) type Invalid = (String, String);

fn invalid(field: impl Into<String>, message: impl Into<String>) -> Invalid {
    (field.into(), message.into())
}

/// Whether `s` is a non-empty run of lower-case ASCII letters, digits, `-` and `_`.
pub(crate) fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

impl Manifest {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        self.plugin.validate()?;
        if self.feeds.is_empty() {
            return Err(invalid(
                "feeds",
                "a plugin needs at least one [[feeds]] entry",
            ));
        }
        let mut names = HashSet::new();
        for (i, feed) in self.feeds.iter().enumerate() {
            feed.validate(&format!("feeds[{i}]"))?;
            if !names.insert(feed.name.as_str()) {
                return Err(invalid(
                    format!("feeds[{i}].name"),
                    format!("feed `{}` is declared twice", feed.name),
                ));
            }
        }
        for (key, field) in &self.config {
            field.validate(key)?;
        }
        self.validate_egress()?;
        self.validate_data()?;
        self.validate_oauth()?;
        self.validate_webhooks(&names)?;
        self.limits.validate()
    }

    fn validate_webhooks(&self, feeds: &HashSet<&str>) -> Result<(), Invalid> {
        let mut names = HashSet::new();
        for (i, hook) in self.webhooks.iter().enumerate() {
            let field = format!("webhooks[{i}]");
            if !is_slug(&hook.name) {
                return Err(invalid(
                    format!("{field}.name"),
                    format!(
                        "`{}` is not a webhook name: use lower-case letters, digits, `-` and `_`",
                        hook.name
                    ),
                ));
            }
            if feeds.contains(hook.name.as_str()) || !names.insert(hook.name.as_str()) {
                return Err(invalid(
                    format!("{field}.name"),
                    format!(
                        "`{}` is already a feed or webhook name: deliveries are runs of a feed of this name",
                        hook.name
                    ),
                ));
            }
            if hook.methods.is_empty()
                || hook
                    .methods
                    .iter()
                    .any(|m| !matches!(m.as_str(), "GET" | "POST" | "PUT"))
            {
                return Err(invalid(
                    format!("{field}.methods"),
                    "list one or more of GET, POST and PUT",
                ));
            }
            if hook.max_body_kb == 0 || hook.max_body_kb > MAX_WEBHOOK_BODY_KB {
                return Err(invalid(
                    format!("{field}.max_body_kb"),
                    format!("must be 1 to {MAX_WEBHOOK_BODY_KB}"),
                ));
            }
            for (name, header) in [
                ("delivery_id_header", hook.delivery_id_header.as_deref()),
                (
                    "signature.header",
                    hook.signature.as_ref().map(|s| s.header.as_str()),
                ),
                (
                    "signature.timestamp_header",
                    hook.signature
                        .as_ref()
                        .and_then(|s| s.timestamp_header.as_deref()),
                ),
            ] {
                if let Some(header) = header
                    && http::HeaderName::from_bytes(header.as_bytes()).is_err()
                {
                    return Err(invalid(
                        format!("{field}.{name}"),
                        format!("`{header}` is not an HTTP header name"),
                    ));
                }
            }
            // The delivery id is stored and given to the guest: it must not
            // be a credential the host withholds from the guest.
            if let Some(header) = hook.delivery_id_header.as_deref()
                && crate::webhooks::WITHHELD_HEADERS
                    .iter()
                    .any(|w| w.eq_ignore_ascii_case(header))
            {
                return Err(invalid(
                    format!("{field}.delivery_id_header"),
                    format!(
                        "`{header}` carries credentials, which are withheld from the guest: \
                         it cannot be the delivery id"
                    ),
                ));
            }
            if let Some(signature) = &hook.signature {
                let secret = self.config.get(&signature.secret_field);
                if secret.map(|f| f.kind) != Some(ConfigType::Secret) {
                    return Err(invalid(
                        format!("{field}.signature.secret_field"),
                        format!(
                            "`{}` is not a [config] field of type secret",
                            signature.secret_field
                        ),
                    ));
                }
                if signature.algorithm != "hmac-sha256" {
                    return Err(invalid(
                        format!("{field}.signature.algorithm"),
                        "the only algorithm is hmac-sha256",
                    ));
                }
                if !matches!(signature.encoding.as_str(), "hex" | "base64") {
                    return Err(invalid(
                        format!("{field}.signature.encoding"),
                        "use hex or base64",
                    ));
                }
            }
        }
        Ok(())
    }

    fn validate_oauth(&self) -> Result<(), Invalid> {
        let Some(oauth) = &self.oauth else {
            return Ok(());
        };
        if oauth.grants.is_empty() {
            return Err(invalid(
                "oauth.grants",
                "name at least one of authorization_code, client_credentials",
            ));
        }
        let code = oauth.grants.contains(&OAuthGrant::AuthorizationCode);
        match (&oauth.authorize_url, code) {
            (None, true) => {
                return Err(invalid(
                    "oauth.authorize_url",
                    "the authorization_code grant needs an authorize_url",
                ));
            }
            (Some(url), _) => self.check_oauth_url("oauth.authorize_url", url)?,
            (None, false) => {}
        }
        self.check_oauth_url("oauth.token_url", &oauth.token_url)?;
        for (i, scope) in oauth.scopes.iter().enumerate() {
            if scope.is_empty() || scope.len() > 200 || !scope.bytes().all(|b| b.is_ascii_graphic())
            {
                return Err(invalid(
                    format!("oauth.scopes[{i}]"),
                    "a scope is 1-200 printable ASCII characters without spaces",
                ));
            }
        }
        for (field, key, kinds) in [
            (
                "oauth.client_id_field",
                &oauth.client_id_field,
                &[ConfigType::String, ConfigType::Secret][..],
            ),
            (
                "oauth.client_secret_field",
                &oauth.client_secret_field,
                &[ConfigType::Secret][..],
            ),
        ] {
            match self.config.get(key) {
                None => {
                    return Err(invalid(
                        field,
                        format!("no config field `{key}` is declared"),
                    ));
                }
                Some(f) if !kinds.contains(&f.kind) => {
                    let want = if kinds.len() == 1 {
                        "type = \"secret\""
                    } else {
                        "type = \"string\" or \"secret\""
                    };
                    return Err(invalid(
                        field,
                        format!("config field `{key}` must have {want}"),
                    ));
                }
                Some(_) => {}
            }
        }
        if oauth.client_id_field == oauth.client_secret_field {
            return Err(invalid(
                "oauth.client_secret_field",
                "the client id and secret need fields of their own",
            ));
        }
        Ok(())
    }

    /// An OAuth endpoint: an https URL without credentials or fragment,
    /// which the plugin's own `[egress]` allows.
    fn check_oauth_url(&self, field: &str, url: &str) -> Result<(), Invalid> {
        let parsed = url::Url::parse(url)
            .map_err(|e| invalid(field, format!("`{url}` is not a URL: {e}")))?;
        if parsed.scheme() != "https" {
            return Err(invalid(field, format!("`{url}` must be an https URL")));
        }
        if !parsed.username().is_empty()
            || parsed.password().is_some()
            || parsed.fragment().is_some()
        {
            return Err(invalid(
                field,
                "must not hold user names, passwords or a fragment",
            ));
        }
        let rules = self
            .egress
            .allow
            .iter()
            .filter_map(|e| crate::egress::EgressRule::from_manifest(e).ok())
            .collect();
        crate::egress::EgressPolicy::new(rules)
            .check(url)
            .map_err(|denial| {
                invalid(
                    field,
                    format!(
                        "`{}` is not inside the plugin's [egress] ({}): add its host to \
                         [[egress.allow]]",
                        parsed.host_str().unwrap_or_default(),
                        denial.reason
                    ),
                )
            })?;
        Ok(())
    }

    fn validate_data(&self) -> Result<(), Invalid> {
        for (list, names) in [("reads", &self.data.reads), ("writes", &self.data.writes)] {
            let mut seen = HashSet::new();
            for (i, name) in names.iter().enumerate() {
                let field = format!("data.{list}[{i}]");
                if !crate::records::is_collection(name) {
                    return Err(invalid(field, crate::records::unknown_collection(name)));
                }
                if !seen.insert(name.as_str()) {
                    return Err(invalid(field, format!("`{name}` is listed twice")));
                }
            }
        }
        Ok(())
    }

    fn validate_egress(&self) -> Result<(), Invalid> {
        for (i, entry) in self.egress.allow.iter().enumerate() {
            let field = format!("egress.allow[{i}]");
            crate::egress::EgressRule::from_manifest(entry)
                .map_err(|e| invalid(format!("{field}.host"), e))?;
            if entry.service.trim().is_empty() {
                return Err(invalid(
                    format!("{field}.service"),
                    "name the service this host belongs to",
                ));
            }
        }
        for (i, key) in self.egress.from_config.iter().enumerate() {
            match self.config.get(key) {
                Some(f) if f.kind == ConfigType::Url => {}
                Some(_) => {
                    return Err(invalid(
                        format!("egress.from_config[{i}]"),
                        format!("config field `{key}` must have type = \"url\""),
                    ));
                }
                None => {
                    return Err(invalid(
                        format!("egress.from_config[{i}]"),
                        format!("no config field `{key}` is declared"),
                    ));
                }
            }
        }
        Ok(())
    }
}

impl PluginSection {
    fn validate(&self) -> Result<(), Invalid> {
        if !is_slug(&self.id) || self.id.contains('_') {
            return Err(invalid(
                "plugin.id",
                format!(
                    "`{}` is not a plugin id: use 1-64 lower-case letters, digits and `-`",
                    self.id
                ),
            ));
        }
        let parts: Vec<&str> = self.version.split(['.', '-', '+']).collect();
        let numeric = parts.len() >= 3 && parts[..3].iter().all(|p| p.parse::<u64>().is_ok());
        if !numeric {
            return Err(invalid(
                "plugin.version",
                format!("`{}` is not a semantic version like 1.2.3", self.version),
            ));
        }
        let component = std::path::Path::new(&self.component);
        if component.is_absolute()
            || component
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(invalid(
                "plugin.component",
                "must be a path inside the plugin directory",
            ));
        }
        Ok(())
    }
}

impl Feed {
    fn validate(&self, field: &str) -> Result<(), Invalid> {
        if !is_slug(&self.name) {
            return Err(invalid(
                format!("{field}.name"),
                format!(
                    "`{}` is not a feed name: use lower-case letters, digits, `-` and `_`",
                    self.name
                ),
            ));
        }
        if self.schedule == MANUAL_SCHEDULE {
            return Ok(());
        }
        cron::Schedule::from_str(&self.schedule).map_err(|e| {
            invalid(
                format!("{field}.schedule"),
                format!(
                    "`{}` is not a cron schedule (sec min hour day month weekday [year]): {e}",
                    self.schedule
                ),
            )
        })?;
        Ok(())
    }
}

impl ConfigField {
    fn validate(&self, key: &str) -> Result<(), Invalid> {
        let field = format!("config.{key}");
        if !is_slug(key) {
            return Err(invalid(
                field,
                "config keys use lower-case letters, digits, `-` and `_`",
            ));
        }
        if self.kind == ConfigType::Enum && self.values.is_empty() {
            return Err(invalid(
                format!("{field}.values"),
                "an enum field needs a non-empty `values` list",
            ));
        }
        if self.kind != ConfigType::Enum && !self.values.is_empty() {
            return Err(invalid(
                format!("{field}.values"),
                "`values` is only for type = \"enum\"",
            ));
        }
        if let Some(default) = &self.default {
            if self.kind == ConfigType::Secret {
                return Err(invalid(
                    format!("{field}.default"),
                    "a secret cannot have a default: it would ship in the manifest",
                ));
            }
            let text = match default {
                toml::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            crate::config::check_value(self, &text)
                .map_err(|e| invalid(format!("{field}.default"), e))?;
        }
        Ok(())
    }
}

impl Limits {
    fn validate(&self) -> Result<(), Invalid> {
        if self.memory_mb == 0 {
            return Err(invalid("limits.memory_mb", "must be at least 1"));
        }
        for (field, value) in [
            ("limits.run_timeout_secs", self.run_timeout_secs),
            ("limits.http_timeout_secs", self.http_timeout_secs),
            ("limits.http_response_mb", self.http_response_mb),
            ("limits.http_requests", self.http_requests),
            ("limits.http_concurrency", self.http_concurrency),
            ("limits.storage_mb", self.storage_mb),
            ("limits.storage_keys", self.storage_keys),
            ("limits.record_changes", self.record_changes),
            ("limits.artifact_mb", self.artifact_mb),
            ("limits.artifact_run_mb", self.artifact_run_mb),
            ("limits.artifacts", self.artifacts),
            (
                "limits.webhook_deliveries_per_minute",
                self.webhook_deliveries_per_minute,
            ),
        ] {
            if value == 0 {
                return Err(invalid(field, "must be at least 1"));
            }
        }
        Ok(())
    }
}
