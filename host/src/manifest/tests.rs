use std::path::Path;

use super::*;

const VALID: &str = r#"
[plugin]
id = "xero"
version = "0.1.0"
kind = "accounting"

[[feeds]]
name = "invoices"
direction = "outbound"
schedule = "0 */15 * * * *"

[config]
invoice_status = { type = "enum", values = ["draft", "authorised"], default = "draft" }
client_secret = { type = "secret", required = true }
endpoint = { type = "url" }

[egress]
allow = [{ host = "api.xero.com", service = "Xero" }, { host = "identity.xero.com", service = "Xero" }]
from_config = ["endpoint"]

[limits]
memory_mb = 32
"#;

/// Parses `VALID` with `from` replaced by `to`; returns the error text.
fn check(from: &str, to: &str, expected: &str) {
    assert!(
        VALID.contains(from),
        "test bug: `{from}` not in the manifest"
    );
    let text = VALID.replacen(from, to, 1);
    let err = Manifest::parse(&text, Path::new("plugin.toml"))
        .expect_err(&format!("`{to}` should be rejected"))
        .to_string();
    assert!(
        err.contains(expected),
        "replacing `{from}` with `{to}`:\n  got: {err}\n  expected to contain: {expected}"
    );
}

#[test]
fn a_valid_manifest_parses_with_defaults() {
    let m = Manifest::parse(VALID, Path::new("plugin.toml")).unwrap();
    assert_eq!(m.plugin.component, "plugin.wasm");
    assert_eq!(m.limits.memory_mb, 32);
    assert_eq!(m.limits.run_timeout_secs, 60);
    assert_eq!(m.limits.http_requests, 10_000);
    assert_eq!(m.limits.http_concurrency, 8);
    assert_eq!(m.limits.storage_mb, 64);
    assert_eq!(m.limits.storage_keys, 100_000);
    assert_eq!(m.feeds[0].direction, Direction::Outbound);
    assert_eq!(m.egress.allow.len(), 2);
    assert!(m.feed("invoices").is_some());
    assert!(m.feed("nope").is_none());
}

#[test]
fn bad_manifests_name_the_field() {
    check(
        "kind = \"accounting\"",
        "kind = \"accounting\"\ncolour = 1",
        "unknown field `colour`",
    );
    check(
        "kind = \"accounting\"",
        "kind = \"accounting\"\ncolour = 1",
        "line 6",
    );
    check(
        "direction = \"outbound\"",
        "direction = \"sideways\"",
        "unknown variant `sideways`",
    );
    check("id = \"xero\"", "id = \"Xero!\"", "plugin.id");
    check(
        "version = \"0.1.0\"",
        "version = \"latest\"",
        "plugin.version",
    );
    check(
        "schedule = \"0 */15 * * * *\"",
        "schedule = \"every day\"",
        "feeds[0].schedule",
    );
    check(
        "name = \"invoices\"",
        "name = \"Invoices\"",
        "feeds[0].name",
    );
    check(
        "values = [\"draft\", \"authorised\"], default = \"draft\"",
        "values = [\"draft\"], default = \"paid\"",
        "config.invoice_status.default",
    );
    check(
        "values = [\"draft\", \"authorised\"], ",
        "",
        "config.invoice_status.values",
    );
    check(
        "{ type = \"secret\", required = true }",
        "{ type = \"secret\", default = \"x\" }",
        "a secret cannot have a default",
    );
    check(
        "{ type = \"secret\", required = true }",
        "{ type = \"password\" }",
        "unknown variant `password`",
    );
    check(
        "host = \"api.xero.com\"",
        "host = \"*.xero.com\"",
        "egress.allow[0].host",
    );
    check(
        "host = \"api.xero.com\"",
        "host = \"https://api.xero.com\"",
        "egress.allow[0].host",
    );
    check(
        "service = \"Xero\" }, { host",
        "service = \" \" }, { host",
        "egress.allow[0].service",
    );
    check(
        "from_config = [\"endpoint\"]",
        "from_config = [\"invoice_status\"]",
        "must have type = \"url\"",
    );
    check(
        "from_config = [\"endpoint\"]",
        "from_config = [\"nope\"]",
        "no config field `nope`",
    );
    check("memory_mb = 32", "memory_mb = 0", "limits.memory_mb");
    for field in [
        "http_requests",
        "http_concurrency",
        "storage_mb",
        "storage_keys",
    ] {
        check(
            "memory_mb = 32",
            &format!("memory_mb = 32\n{field} = 0"),
            &format!("limits.{field}: must be at least 1"),
        );
    }
    check("memory_mb = 32", "memory_mb = -1", "line 22");
    check(
        "kind = \"accounting\"",
        "kind = \"accounting\"\ncomponent = \"../x.wasm\"",
        "plugin.component",
    );
}

#[test]
fn duplicate_feeds_and_missing_feeds_are_rejected() {
    let twice = format!(
        "{VALID}\n[[feeds]]\nname = \"invoices\"\ndirection = \"inbound\"\nschedule = \"0 0 * * * *\"\n"
    );
    let err = Manifest::parse(&twice, Path::new("p"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("declared twice"), "{err}");
    let none = "feeds = []\n[plugin]\nid = \"x\"\nversion = \"1.0.0\"\n";
    let err = Manifest::parse(none, Path::new("p"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("at least one"), "{err}");
}

#[test]
fn load_digests_the_component() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("plugin.toml"), VALID).unwrap();
    let err = Plugin::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("plugin.wasm"), "{err}");
    std::fs::write(dir.path().join("plugin.wasm"), b"abc").unwrap();
    let plugin = Plugin::load(dir.path()).unwrap();
    assert_eq!(
        plugin.digest,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(plugin.label(), "xero@0.1.0");
}

#[test]
fn data_names_known_collections_once_each() {
    let with = |data: &str| VALID.replacen("[limits]", &format!("{data}\n\n[limits]"), 1);
    let parsed = Manifest::parse(
        &with("[data]\nreads = [\"orders\"]\nwrites = [\"stock\"]"),
        Path::new("plugin.toml"),
    )
    .unwrap();
    assert_eq!(parsed.data.reads, ["orders"]);
    assert_eq!(parsed.data.writes, ["stock"]);
    assert_eq!(parsed.limits.record_changes, 10_000);
    let refused = |data: &str| {
        Manifest::parse(&with(data), Path::new("plugin.toml"))
            .unwrap_err()
            .to_string()
    };
    let unknown = refused("[data]\nreads = [\"orders\", \"widgets\"]");
    assert!(unknown.contains("data.reads[1]"), "{unknown}");
    assert!(
        unknown.contains("no collection \"widgets\" (known: products"),
        "{unknown}"
    );
    let twice = refused("[data]\nwrites = [\"stock\", \"stock\"]");
    assert!(
        twice.contains("data.writes[1]: `stock` is listed twice"),
        "{twice}"
    );
    check(
        "memory_mb = 32",
        "memory_mb = 32\nrecord_changes = 0",
        "limits.record_changes",
    );
}

/// `VALID` with an `[oauth]` section (and the client id field it names).
fn with_oauth(oauth: &str) -> String {
    VALID
        .replacen(
            "{ host = \"identity.xero.com\", service = \"Xero\" }",
            "{ host = \"identity.xero.com\", service = \"Xero\" }, \
             { host = \"login.xero.com\", service = \"Xero\" }",
            1,
        )
        .replacen(
            "endpoint = { type = \"url\" }",
            "endpoint = { type = \"url\" }\nclient_id = { type = \"string\", required = true }",
            1,
        )
        + "\n[oauth]\n"
        + oauth
}

const OAUTH: &str = r#"
authorize_url = "https://login.xero.com/identity/connect/authorize"
token_url = "https://identity.xero.com/connect/token"
scopes = ["offline_access", "accounting.transactions"]
client_id_field = "client_id"
client_secret_field = "client_secret"
"#;

/// `[oauth]` with `from` replaced by `to` is refused naming `expected`.
fn check_oauth(from: &str, to: &str, expected: &str) {
    assert!(OAUTH.contains(from), "test bug: `{from}` not in [oauth]");
    let text = with_oauth(&OAUTH.replacen(from, to, 1));
    let err = Manifest::parse(&text, Path::new("plugin.toml"))
        .expect_err(&format!("`{to}` should be rejected"))
        .to_string();
    assert!(
        err.contains(expected),
        "replacing `{from}` with `{to}`:\n  got: {err}\n  expected to contain: {expected}"
    );
}

#[test]
fn an_oauth_section_parses_with_its_defaults() {
    let m = Manifest::parse(&with_oauth(OAUTH), Path::new("plugin.toml")).unwrap();
    let oauth = m.oauth.expect("[oauth]");
    assert_eq!(oauth.grants, vec![OAuthGrant::AuthorizationCode]);
    assert_eq!(oauth.client_auth, ClientAuth::Basic);
    assert!(oauth.pkce);
    assert_eq!(oauth.scopes.len(), 2);
}

#[test]
fn oauth_endpoints_must_be_https_inside_egress_and_name_their_fields() {
    // The login host is not in [egress]: refused, naming the field.
    check_oauth(
        "https://login.xero.com/identity/connect/authorize",
        "https://login.example.com/authorize",
        "oauth.authorize_url: `login.example.com` is not inside the plugin's [egress]",
    );
}

#[test]
fn oauth_section_errors_name_the_field() {
    let login = OAUTH.replace("login.xero.com", "identity.xero.com");
    let check = |from: &str, to: &str, expected: &str| {
        let text = with_oauth(&login.replacen(from, to, 1));
        let err = Manifest::parse(&text, Path::new("plugin.toml"))
            .expect_err(&format!("`{to}` should be rejected"))
            .to_string();
        assert!(
            err.contains(expected),
            "replacing `{from}` with `{to}`:\n  got: {err}\n  expected: {expected}"
        );
    };
    Manifest::parse(&with_oauth(&login), Path::new("plugin.toml")).expect("valid");
    check(
        "https://identity.xero.com/connect/token",
        "http://identity.xero.com/connect/token",
        "oauth.token_url: `http://identity.xero.com/connect/token` must be an https URL",
    );
    check(
        "https://identity.xero.com/connect/token",
        "https://evil.example/token",
        "oauth.token_url: `evil.example` is not inside the plugin's [egress]",
    );
    check(
        "https://identity.xero.com/connect/token",
        "https://user:pw@identity.xero.com/connect/token",
        "oauth.token_url: must not hold user names",
    );
    check(
        "client_secret_field = \"client_secret\"",
        "client_secret_field = \"client_id\"",
        "oauth.client_secret_field: config field `client_id` must have type = \"secret\"",
    );
    check(
        "client_id_field = \"client_id\"",
        "client_id_field = \"nope\"",
        "oauth.client_id_field: no config field `nope` is declared",
    );
    check(
        "scopes = [",
        "grants = []\nscopes = [",
        "oauth.grants: name at least one",
    );
    check(
        "authorize_url = \"https://identity.xero.com/identity/connect/authorize\"",
        "",
        "oauth.authorize_url: the authorization_code grant needs an authorize_url",
    );
    check("\"offline_access\"", "\"two words\"", "oauth.scopes[0]");
    check(
        "scopes = [",
        "grants = [\"implicit\"]\nscopes = [",
        "unknown variant `implicit`",
    );
    // Client credentials alone need no authorize_url.
    let text = with_oauth(&login.replacen(
        "authorize_url = \"https://identity.xero.com/identity/connect/authorize\"",
        "grants = [\"client_credentials\"]",
        1,
    ));
    let m = Manifest::parse(&text, Path::new("plugin.toml")).expect("client credentials only");
    assert_eq!(m.oauth.unwrap().grants, vec![OAuthGrant::ClientCredentials]);
}

#[test]
fn webhooks_are_checked_field_by_field() {
    let base = "[limits]\nmemory_mb = 32\n";
    let hook = |body: &str| format!("[[webhooks]]\n{body}\n{base}");
    let ok = hook(
        "name = \"opt-out\"\nmethods = [\"GET\", \"POST\"]\ndelivery_id_header = \"X-Id\"\n\
         [webhooks.signature]\nheader = \"X-Sig\"\nsecret_field = \"client_secret\"\nencoding = \"base64\"",
    );
    let manifest = Manifest::parse(&VALID.replace(base, &ok), Path::new("plugin.toml")).unwrap();
    let parsed = manifest.webhook("opt-out").unwrap();
    assert_eq!(parsed.max_body_kb, 64, "the default body cap");
    assert_eq!(manifest.limits.webhook_deliveries_per_minute, 60);
    for (body, expected) in [
        (
            "name = \"invoices\"",
            "webhooks[0].name: `invoices` is already a feed or webhook name",
        ),
        (
            "name = \"Bad Name\"",
            "webhooks[0].name: `Bad Name` is not a webhook name",
        ),
        (
            "name = \"a\"\nmethods = [\"DELETE\"]",
            "webhooks[0].methods: list one or more of GET, POST and PUT",
        ),
        ("name = \"a\"\nmethods = []", "webhooks[0].methods"),
        (
            "name = \"a\"\nmax_body_kb = 2048",
            "webhooks[0].max_body_kb: must be 1 to 1024",
        ),
        (
            "name = \"a\"\ndelivery_id_header = \"bad header\"",
            "is not an HTTP header name",
        ),
        (
            "name = \"a\"\ndelivery_id_header = \"Cookie\"",
            "webhooks[0].delivery_id_header: `Cookie` carries credentials",
        ),
        (
            "name = \"a\"\ndelivery_id_header = \"authorization\"",
            "withheld from the guest",
        ),
        (
            "name = \"a\"\n[webhooks.signature]\nheader = \"X-Sig\"\nsecret_field = \"endpoint\"",
            "webhooks[0].signature.secret_field: `endpoint` is not a [config] field of type secret",
        ),
        (
            "name = \"a\"\n[webhooks.signature]\nheader = \"X-Sig\"\nsecret_field = \"client_secret\"\nalgorithm = \"md5\"",
            "the only algorithm is hmac-sha256",
        ),
    ] {
        let text = VALID.replace(base, &hook(body));
        let err = Manifest::parse(&text, Path::new("plugin.toml"))
            .expect_err(body)
            .to_string();
        assert!(err.contains(expected), "{body}: {err}");
    }
    let twice = VALID.replace(
        base,
        &format!("[[webhooks]]\nname = \"a\"\n{}", hook("name = \"a\"")),
    );
    let err = Manifest::parse(&twice, Path::new("plugin.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("webhooks[1].name"), "{err}");
}

#[test]
fn a_feed_may_be_manual_only() {
    let text = VALID.replace("schedule = \"0 */15 * * * *\"", "schedule = \"manual\"");
    let manifest = Manifest::parse(&text, Path::new("plugin.toml")).unwrap();
    assert_eq!(manifest.feeds[0].schedule, MANUAL_SCHEDULE);
    check(
        "schedule = \"0 */15 * * * *\"",
        "schedule = \"Manual\"",
        "is not a cron schedule",
    );
}
