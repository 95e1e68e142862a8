//! The admin HTTP API through a real `airlock serve --listen`: tokens made
//! with the CLI, every endpoint of the OpenAPI document tried with a
//! tenant's token against another tenant (never seen), permissions, stale
//! revisions, problem details for bad input, and an operator's day: switch
//! an installation off and on, Run now, see the execution, see the bell,
//! acknowledge.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::serve_cli::{Server, Site};

/// A client of one `serve --listen`'s API.
struct Api {
    base: String,
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
}

/// An answer: status, content type, body as JSON (null if it is not).
struct Answer {
    status: u16,
    content_type: String,
    body: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or_default()
    }

    /// Asserts a problem of `status` with `code`.
    fn problem(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(
            self.content_type, "application/problem+json",
            "{}",
            self.body
        );
        assert_eq!(self.code(), code, "{}", self.body);
        assert_eq!(self.body["status"], status);
        assert_eq!(self.body["type"], format!("urn:airlock:problem:{code}"));
        assert!(!self.body["detail"].as_str().unwrap().is_empty());
    }
}

impl Api {
    fn start(server: &Server) -> Self {
        server.wait_for(&["listening on http://"]);
        let base = server
            .output()
            .lines()
            .find_map(|l| l.strip_prefix("listening on ").map(str::to_string))
            .unwrap();
        Self {
            base,
            rt: tokio::runtime::Runtime::new().unwrap(),
            client: reqwest::Client::new(),
        }
    }

    fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        self.send(req)
    }

    /// POSTs `body` of `content_type` to `path` with `token`.
    fn post(&self, path: &str, token: &str, content_type: &str, body: Vec<u8>) -> Answer {
        let req = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body);
        self.send(req)
    }

    fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        self.rt.block_on(async {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let content_type = resp
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            let text = resp.text().await.unwrap();
            Answer {
                status,
                content_type,
                body: serde_json::from_str(&text).unwrap_or(Value::Null),
            }
        })
    }

    fn get(&self, path: &str, token: &str) -> Answer {
        self.call("GET", path, Some(token), None)
    }

    /// GETs `path` until `done` says its body is what was waited for.
    fn wait_until(&self, path: &str, token: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let answer = self.get(path, token);
            if answer.status == 200 && done(&answer.body) {
                return answer.body;
            }
            assert!(
                Instant::now() < deadline,
                "waited for {path}: {}",
                answer.body
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Makes a token with the CLI; its text.
fn token(site: &Site, name: &str, scope: &[&str], permissions: &str) -> String {
    let mut args = vec!["tokens", "create", name, "--permission", permissions];
    args.extend_from_slice(scope);
    let out = site.ok(&args);
    let token = out
        .lines()
        .find(|l| l.starts_with("alk_"))
        .unwrap_or_else(|| panic!("{out}"))
        .to_string();
    assert_eq!(token.len(), 44, "{out}");
    token
}

fn install_misbehaving(site: &Site, tenant: &str) {
    site.ok(&["tenant", "add", tenant]);
    site.ok(&[
        "install",
        "plugins/misbehaving",
        "--tenant",
        tenant,
        "--name",
        "m",
        "--mode",
        "live",
        "--skip-check",
        "--yes",
    ]);
}

struct World {
    site: Site,
    server: Server,
    api: Api,
    operator: String,
    acme: String,
    acme_reader: String,
}

fn world() -> World {
    let site = Site::new();
    install_misbehaving(&site, "acme");
    install_misbehaving(&site, "globex");
    let operator = token(&site, "ops", &["--operator"], "read,operate");
    let acme = token(&site, "acme-admin", &["--tenant", "acme"], "operate");
    let acme_reader = token(&site, "acme-viewer", &["--tenant", "acme"], "read");
    let server = site.serve(&["--listen", "127.0.0.1:0"]);
    let api = Api::start(&server);
    World {
        site,
        server,
        api,
        operator,
        acme,
        acme_reader,
    }
}

#[test]
fn an_operators_day_through_the_api_switch_run_now_execution_bell_acknowledge() {
    let w = world();
    let api = &w.api;

    let me = api.get("/api/whoami", &w.acme);
    assert_eq!(me.status, 200);
    assert_eq!(me.body["tenant"], "acme");
    assert_eq!(me.body["permissions"], json!(["operate"]));

    // The integrations list: the installation with its feeds and revision.
    let list = api.get("/api/tenants/acme/installations", &w.acme);
    assert_eq!(list.status, 200, "{}", list.body);
    let inst = &list.body[0];
    assert_eq!(inst["id"], "m");
    assert_eq!(inst["plugin"], "misbehaving");
    assert_eq!(inst["enabled"], true);
    assert_eq!(inst["mode"], "live");
    let feeds: Vec<&str> = inst["feeds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert!(
        feeds.contains(&"count") && feeds.contains(&"trap"),
        "{feeds:?}"
    );
    let revision = inst["revision"].as_i64().unwrap();

    // The enabled switch: off, then a stale edit, then on.
    let path = "/api/tenants/acme/installations/m/enabled";
    let off = api.call(
        "PUT",
        path,
        Some(&w.acme),
        Some(json!({"enabled": false, "revision": revision})),
    );
    assert_eq!(off.status, 200, "{}", off.body);
    assert_eq!(off.body["enabled"], false);
    let new_revision = off.body["revision"].as_i64().unwrap();
    assert!(new_revision > revision);
    let stale = api.call(
        "PUT",
        path,
        Some(&w.acme),
        Some(json!({"enabled": true, "revision": revision})),
    );
    stale.problem(409, "stale_revision");
    let refused = api.call(
        "POST",
        "/api/tenants/acme/installations/m/feeds/count/run-now",
        Some(&w.acme),
        None,
    );
    refused.problem(409, "disabled");
    let on = api.call(
        "PUT",
        path,
        Some(&w.acme),
        Some(json!({"enabled": true, "revision": new_revision})),
    );
    assert_eq!(on.status, 200, "{}", on.body);

    // Run now, then the execution with its log.
    let queued = api.call(
        "POST",
        "/api/tenants/acme/installations/m/feeds/count/run-now",
        Some(&w.acme),
        None,
    );
    assert_eq!(queued.status, 202, "{}", queued.body);
    assert!(queued.body["queue_id"].as_i64().unwrap() > 0);
    let runs = api.wait_until("/api/tenants/acme/runs?feed=count", &w.acme, |b| {
        b.as_array().is_some_and(|a| !a.is_empty())
    });
    let run = &runs[0];
    assert_eq!(run["status"], "ok", "{run}");
    assert_eq!(run["trigger"], "manual");
    let id = run["id"].as_i64().unwrap();
    let detail = api.get(&format!("/api/tenants/acme/runs/{id}"), &w.acme);
    assert_eq!(detail.status, 200);
    assert_eq!(detail.body["message"], "run 1");
    assert!(detail.body["report"].is_object(), "{}", detail.body);

    // A failing feed rings the bell; acknowledging it is attributed.
    api.call(
        "POST",
        "/api/tenants/acme/installations/m/feeds/trap/run-now",
        Some(&w.acme),
        None,
    );
    api.wait_until("/api/notifications/count", &w.acme, |b| b["open"] == 1);
    assert_eq!(
        api.get("/api/notifications/count", &w.operator).body["open"],
        1
    );
    let open = api.get("/api/tenants/acme/notifications", &w.acme);
    let note = &open.body[0];
    assert_eq!(note["feed"], "trap");
    let ack_path = format!("/api/tenants/acme/notifications/{}/acknowledge", note["id"]);
    api.call("POST", &ack_path, Some(&w.acme_reader), None)
        .problem(403, "forbidden");
    let acked = api.call("POST", &ack_path, Some(&w.acme), None);
    assert_eq!(acked.status, 200, "{}", acked.body);
    assert!(
        acked.body["acked_by"]
            .as_str()
            .unwrap()
            .contains("acme-admin"),
        "{}",
        acked.body
    );
    api.call("POST", &ack_path, Some(&w.acme), None)
        .problem(409, "conflict");
    assert_eq!(api.get("/api/notifications/count", &w.acme).body["open"], 0);

    // Every change is in the audit of admin actions, with its token.
    let actions = api.get("/api/admin-actions", &w.operator);
    let seen: Vec<String> = actions
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            format!(
                "{} {}",
                a["action"].as_str().unwrap(),
                a["actor"].as_str().unwrap()
            )
        })
        .collect();
    for expected in [
        "installation.disable token #2 (acme-admin)",
        "installation.enable token #2 (acme-admin)",
        "feed.run_now token #2 (acme-admin)",
        "notification.acknowledge token #2 (acme-admin)",
    ] {
        assert!(seen.iter().any(|s| s == expected), "{expected} in {seen:?}");
    }
    let cli = w.site.ok(&["tokens", "actions", "--tenant", "acme"]);
    assert!(
        cli.contains("token #2 (acme-admin) installation.disable acme/m"),
        "{cli}"
    );
    drop(w.server);
}

/// Fills `{…}` of an OpenAPI path with the values of globex's things.
fn fill(template: &str, values: &[(&str, String)]) -> String {
    let mut path = template.to_string();
    for (name, value) in values {
        path = path.replace(&format!("{{{name}}}"), value);
    }
    assert!(
        !path.contains('{'),
        "no value for a parameter of {template}"
    );
    path
}

/// A body that parses for the operation, so the refusal is about the
/// tenant and not the body.
fn body_for(path: &str, method: &str) -> Option<Value> {
    match method {
        "put" if path.ends_with("/enabled") => Some(json!({"enabled": false, "revision": 1})),
        "put" if path.ends_with("/mode") => Some(json!({"mode": "test", "revision": 1})),
        "put" if path.ends_with("/schedule") => Some(json!({"cron": null, "revision": 1})),
        "post" if path == "/api/tenants" => Some(json!({"id": "newco"})),
        "post" if path.ends_with("/installations") => Some(json!({"plugin": "0"})),
        "post" if path.ends_with("/reauthorise") => Some(json!({"revision": 0})),
        "post" if path.ends_with("/upgrade") => Some(json!({"plugin": "0", "revision": 0})),
        "post" if path.ends_with("/oauth/start") => {
            Some(json!({"redirect_uri": "https://hooks.example.com/oauth/callback"}))
        }
        "post" if path.ends_with("/unacknowledge") => Some(json!({"installation": "m"})),
        "post" if path.ends_with("/egress/check") => Some(json!({"url": "https://x.example/"})),
        _ => None,
    }
}

#[test]
fn a_tenants_token_never_reaches_another_tenant_through_any_endpoint() {
    let w = world();
    let api = &w.api;
    // Globex has a run and a notification to be found.
    w.site.ok(&["run-now", "globex/m", "trap"]);
    let globex_runs = api.wait_until("/api/tenants/globex/runs", &w.operator, |b| {
        b.as_array().is_some_and(|a| !a.is_empty())
    });
    let notes = api.wait_until("/api/tenants/globex/notifications", &w.operator, |b| {
        b.as_array().is_some_and(|a| !a.is_empty())
    });
    let example = airlock_tests::repo_root().join("schemas/examples/products.json");
    let mut product: Value = serde_json::from_slice(&std::fs::read(example).unwrap()).unwrap();
    product["id"] = json!("g-1");
    let imported = api.post(
        "/api/tenants/globex/records/products",
        &w.operator,
        "application/x-ndjson",
        format!("{product}\n").into_bytes(),
    );
    assert_eq!(imported.status, 200);
    let values = [
        ("collection", "products".to_string()),
        ("record", "g-1".to_string()),
        ("digest", "0".repeat(64)),
        ("tenant", "globex".to_string()),
        ("installation", "m".to_string()),
        ("feed", "count".to_string()),
        ("run", globex_runs[0]["id"].to_string()),
        ("id", notes[0]["id"].to_string()),
    ];

    let document = api.call("GET", "/api/openapi.json", None, None);
    assert_eq!(document.status, 200);
    assert!(
        document.body["openapi"]
            .as_str()
            .unwrap()
            .starts_with("3.1")
    );
    let paths = document.body["paths"].as_object().unwrap();
    let mut tried = 0;
    for (template, operations) in paths {
        for (method, operation) in operations.as_object().unwrap() {
            let mut path = fill(template, &values);
            if method == "delete" {
                path.push_str("?revision=0");
            }
            if template.ends_with("/state/history") {
                path.push_str("?key=count");
            }
            let body = body_for(template, method);
            let method = method.to_uppercase();
            // No token: 401, for every operation (a path the router does not
            // have is a 404 whatever the token: so every documented
            // operation is routed).
            api.call(&method, &path, None, body.clone())
                .problem(401, "unauthenticated");
            if template.contains("{tenant}") {
                // No body: the tenant gate refuses before anything parses.
                let answer = api.call(&method, &path, Some(&w.acme), None);
                answer.problem(404, "not_found");
                assert!(
                    !answer.body.to_string().contains("\"m\""),
                    "{method} {path}: {}",
                    answer.body
                );
                tried += 1;
                if method == "GET" {
                    let seen = api.get(&path, &w.operator);
                    assert_eq!(seen.status, 200, "operator {method} {path}: {}", seen.body);
                }
            }
            assert!(
                operation["responses"]["401"].is_object(),
                "{method} {template} documents its problems"
            );
        }
    }
    assert!(tried >= 10, "only {tried} tenant endpoints");
    // Percent-encoded tenant names are read as the router reads them.
    api.get("/api/tenants/%67lobex/installations", &w.acme)
        .problem(404, "not_found");
    assert_eq!(
        api.get("/api/tenants/%61cme/installations", &w.acme).status,
        200
    );
    // Host-wide views: a tenant's token sees only its own.
    let tenants = api.get("/api/tenants", &w.acme);
    assert_eq!(tenants.body.as_array().unwrap().len(), 1);
    assert_eq!(tenants.body[0]["id"], "acme");
    assert_eq!(
        api.get("/api/tenants", &w.operator)
            .body
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(api.get("/api/notifications/count", &w.acme).body["open"], 0);
    api.get("/api/admin-actions?tenant=globex", &w.acme)
        .problem(404, "not_found");
    api.call(
        "POST",
        "/api/tenants",
        Some(&w.acme),
        Some(json!({"id": "x"})),
    )
    .problem(403, "forbidden");
    // Nothing of globex changed.
    let globex = api.get("/api/tenants/globex/installations/m", &w.operator);
    assert_eq!(globex.body["enabled"], true);
    assert_eq!(globex.body["revision"], 0, "{}", globex.body);
}

#[test]
fn bad_input_and_bad_tokens_are_problems_with_stable_codes() {
    let w = world();
    let api = &w.api;
    let enabled = "/api/tenants/acme/installations/m/enabled";
    // Malformed bodies, unknown fields, wrong types, unknown mode.
    for body in [
        json!({"enabled": "yes", "revision": 1}),
        json!({"enabled": true}),
        json!({"enabled": true, "revision": 1, "extra": 1}),
    ] {
        let answer = api.call("PUT", enabled, Some(&w.acme), Some(body.clone()));
        assert!(
            answer.status == 400 || answer.status == 422,
            "{body}: {}",
            answer.status
        );
        assert_eq!(answer.content_type, "application/problem+json");
        assert_eq!(answer.code(), "invalid_input", "{body}: {}", answer.body);
    }
    api.call(
        "PUT",
        "/api/tenants/acme/installations/m/mode",
        Some(&w.acme),
        Some(json!({"mode": "production", "revision": 1})),
    )
    .code()
    .eq("invalid_input")
    .then_some(())
    .expect("an unknown mode is invalid input");
    api.call("GET", "/api/tenants/acme/runs/abc", Some(&w.acme), None)
        .problem(400, "invalid_input");
    api.call(
        "GET",
        "/api/tenants/acme/runs?status=great",
        Some(&w.acme),
        None,
    )
    .problem(400, "invalid_input");
    api.call(
        "DELETE",
        "/api/tenants/acme/installations/m",
        Some(&w.acme),
        None,
    )
    .problem(400, "invalid_input");
    api.call("GET", "/api/nothing-here", Some(&w.acme), None)
        .problem(404, "not_found");
    api.call("PATCH", "/api/tenants", Some(&w.acme), None)
        .problem(405, "method_not_allowed");
    api.call(
        "PUT",
        "/api/tenants/acme/installations/m/feeds/nosuch/schedule",
        Some(&w.acme),
        Some(json!({"cron": "0 * * * * *", "revision": 0})),
    )
    .problem(400, "invalid_input");
    api.call(
        "PUT",
        "/api/tenants/acme/installations/m/feeds/count/schedule",
        Some(&w.acme),
        Some(json!({"cron": "every day", "revision": 0})),
    )
    .problem(400, "invalid_input");
    // A read-only token may not change anything.
    api.call(
        "PUT",
        enabled,
        Some(&w.acme_reader),
        Some(json!({"enabled": false, "revision": 1})),
    )
    .problem(403, "forbidden");
    // Tokens: wrong, malformed, revoked.
    api.call(
        "GET",
        "/api/whoami",
        Some("alk_0000000000000000000000000000000000000000"),
        None,
    )
    .problem(401, "unauthenticated");
    api.call("GET", "/api/whoami", Some("not a token"), None)
        .problem(401, "unauthenticated");
    let listed = w.site.ok(&["tokens", "list"]);
    assert!(
        listed.contains("acme-viewer") && !listed.contains(&w.acme_reader),
        "{listed}"
    );
    w.site.ok(&["tokens", "revoke", "3"]);
    api.call("GET", "/api/whoami", Some(&w.acme_reader), None)
        .problem(401, "unauthenticated");
    let again = w.site.run(&["tokens", "revoke", "3"]);
    assert_eq!(again.status.code(), Some(2));
    // Removal takes the revision too; then the installation is gone.
    let stale = api.call(
        "DELETE",
        "/api/tenants/acme/installations/m?revision=99",
        Some(&w.acme),
        None,
    );
    stale.problem(409, "stale_revision");
    let removed = api.call(
        "DELETE",
        "/api/tenants/acme/installations/m?revision=0",
        Some(&w.acme),
        None,
    );
    assert_eq!(removed.status, 204);
    api.get("/api/tenants/acme/installations/m", &w.acme)
        .problem(404, "not_found");
    // No token's text is in the database or the server's output.
    let dir = w.site.db.parent().unwrap();
    for file in std::fs::read_dir(dir).unwrap() {
        let path = file.unwrap().path();
        if path.is_dir() {
            continue;
        }
        let bytes = std::fs::read(path).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for t in [&w.operator, &w.acme, &w.acme_reader] {
            assert!(!text.contains(t.as_str()));
        }
    }
    for t in [&w.operator, &w.acme, &w.acme_reader] {
        assert!(!w.server.output().contains(t.as_str()));
    }
}

/// A `multipart/form-data` body with `parts` (name, bytes); its content
/// type.
fn multipart(parts: &[(&str, Vec<u8>)]) -> (String, Vec<u8>) {
    let boundary = "airlock-test-boundary-7d1f";
    let mut body = Vec::new();
    for (name, bytes) in parts {
        body.extend(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; \
                 filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .bytes(),
        );
        body.extend(bytes);
        body.extend(b"\r\n");
    }
    body.extend(format!("--{boundary}--\r\n").bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

impl Api {
    fn upload(&self, token: &str, dir: &str) -> Answer {
        let dir = airlock_tests::repo_root().join(dir);
        let manifest = std::fs::read(dir.join("plugin.toml")).unwrap();
        let component = std::fs::read(dir.join("plugin.wasm")).unwrap();
        let (content_type, body) = multipart(&[("manifest", manifest), ("component", component)]);
        self.post("/api/plugins", token, &content_type, body)
    }
}

#[test]
fn add_an_integration_from_an_uploaded_plugin_with_its_grants_approved() {
    let w = world();
    let api = &w.api;
    let approver = token(&w.site, "reviewer", &["--operator"], "operate,approve");

    // Only an operator uploads code; a tenant's token may not (a small
    // body: the server answers before reading one, and a client still
    // sending a big one sees the connection close).
    let (content_type, body) = multipart(&[("manifest", b"x".to_vec())]);
    api.post("/api/plugins", &w.acme, &content_type, body)
        .problem(403, "forbidden");
    let uploaded = api.upload(&w.operator, "plugins/custom-store");
    assert_eq!(uploaded.status, 201, "{}", uploaded.body);
    let digest = uploaded.body["digest"].as_str().unwrap().to_string();
    assert_eq!(uploaded.body["id"], "custom-store");
    let password = uploaded.body["config"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["key"] == "password")
        .unwrap();
    assert_eq!(password["secret"], true, "the form masks it");
    // The same upload again is the same entry; a broken one is refused.
    assert_eq!(
        api.upload(&w.operator, "plugins/custom-store").body["digest"],
        digest.as_str()
    );
    let listed = api.get("/api/plugins", &w.acme);
    assert!(
        listed
            .body
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["digest"] == digest.as_str()),
        "{}",
        listed.body
    );
    let (content_type, body) = multipart(&[
        ("manifest", b"[plugin]\nid = \"x\"\n".to_vec()),
        ("component", b"not wasm".to_vec()),
    ]);
    api.post("/api/plugins", &w.operator, &content_type, body)
        .problem(400, "invalid_input");

    let secret = "S3cr3t-Pa55word";
    let install = |token: &str, extra: Value| {
        let mut body = json!({
            "plugin": digest,
            "name": "shop",
            "config": {
                "endpoint": "https://shop.example.com/api/v1",
                "username": "api",
                "password": secret,
            },
            "test_connection": false,
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        api.call(
            "POST",
            "/api/tenants/acme/installations",
            Some(token),
            Some(body),
        )
    };
    // The plan: the grant from config shown for approval, the secret by
    // name only.
    let plan = install(&w.acme, json!({"dry_run": true}));
    assert_eq!(plan.status, 200, "{}", plan.body);
    assert_eq!(plan.body["committed"], false);
    assert_eq!(plan.body["secrets"], json!(["password"]));
    assert_eq!(
        plan.body["egress_added"],
        json!(["https://shop.example.com"]),
        "{}",
        plan.body
    );
    assert!(!plan.body.to_string().contains(secret));
    // Without approval, or approved by a token that may not approve.
    install(&w.acme, json!({})).problem(422, "approval_required");
    install(&w.acme, json!({"approve_egress": true})).problem(403, "forbidden");
    let installed = install(&approver, json!({"approve_egress": true}));
    assert_eq!(installed.status, 201, "{}", installed.body);
    assert_eq!(installed.body["committed"], true);
    let shown = api.get("/api/tenants/acme/installations/shop", &w.acme);
    assert_eq!(shown.body["secrets"], json!(["password"]));
    assert_eq!(shown.body["mode"], "test");
    assert!(!shown.body.to_string().contains(secret));
    // A second install under the same name is a conflict.
    install(&approver, json!({"approve_egress": true})).problem(409, "conflict");

    // Reauthorise: a new password is saved without widening anything; a
    // new endpoint widens egress and needs approval again.
    let revision = shown.body["revision"].as_i64().unwrap();
    let reauth = api.call(
        "POST",
        "/api/tenants/acme/installations/shop/reauthorise",
        Some(&w.acme),
        Some(
            json!({"config": {"password": "N3w-Pa55word"}, "revision": revision,
                    "test_connection": false}),
        ),
    );
    assert_eq!(reauth.status, 200, "{}", reauth.body);
    assert_eq!(reauth.body["committed"], true);
    let moved = api.call(
        "POST",
        "/api/tenants/acme/installations/shop/reauthorise",
        Some(&w.acme),
        Some(
            json!({"config": {"endpoint": "https://other.example.com/api"},
                    "revision": reauth.body["revision"], "test_connection": false}),
        ),
    );
    moved.problem(422, "approval_required");
    let stale = api.call(
        "POST",
        "/api/tenants/acme/installations/shop/reauthorise",
        Some(&w.acme),
        Some(json!({"config": {}, "revision": revision, "test_connection": false})),
    );
    stale.problem(409, "stale_revision");

    // The reviewer's view: the grant, never used yet.
    let review = api.get("/api/tenants/acme/installations/shop/egress", &w.acme);
    assert_eq!(
        review.body["grants"],
        json!([{"rule": "https://shop.example.com", "requests": 0, "last_used_ms": null}]),
        "{}",
        review.body
    );
    // "Would this URL be sent?": the same checks as a run's request.
    let check = |url: &str, method: &str| {
        api.call(
            "POST",
            "/api/tenants/acme/installations/shop/egress/check",
            Some(&w.acme_reader),
            Some(json!({"url": url, "method": method})),
        )
        .body
    };
    let allowed = check("https://shop.example.com/api/v1/orders?key=x", "GET");
    assert_eq!(allowed["decision"], "allowed", "{allowed}");
    assert!(!allowed.to_string().contains("key=x"), "{allowed}");
    let other = check("https://evil.example.org/", "GET");
    assert_eq!(other["decision"], "denied", "{other}");
    let write = check("https://shop.example.com/api/v1/orders", "POST");
    assert_eq!(write["decision"], "suppressed", "test mode: {write}");
    // Neither secret is anywhere in the database or the server's output.
    let dir = w.site.db.parent().unwrap();
    for file in std::fs::read_dir(dir).unwrap() {
        let path = file.unwrap().path();
        if path.is_file() {
            let text = String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned();
            assert!(!text.contains(secret) && !text.contains("N3w-Pa55word"));
        }
    }
    assert!(!w.server.output().contains(secret));
    let actions = w.site.ok(&["tokens", "actions"]);
    for expected in [
        "plugin.upload custom-store@",
        "token #4 (reviewer) installation.install acme/shop",
        "installation.reauthorise acme/shop: changed: password",
    ] {
        assert!(actions.contains(expected), "{expected} in {actions}");
    }
}

#[test]
fn records_import_list_pending_and_unacknowledge_through_the_api() {
    let w = world();
    let api = &w.api;
    let example = airlock_tests::repo_root().join("schemas/examples/products.json");
    let mut product: Value = serde_json::from_slice(&std::fs::read(example).unwrap()).unwrap();
    product["id"] = json!("p-1");
    let lines = &format!("{product}\n");
    let import = |token: &str, body: &str| {
        let path = "/api/tenants/acme/records/products";
        api.post(
            path,
            token,
            "application/x-ndjson",
            body.as_bytes().to_vec(),
        )
    };
    import(&w.acme, "{\"id\": 1}\n").problem(400, "invalid_input");
    import(&w.acme_reader, lines).problem(403, "forbidden");
    let imported = import(&w.acme, lines);
    assert_eq!(imported.status, 200, "{}", imported.body);
    let summary = imported.body;
    assert_eq!(summary["records"], 1);
    let listed = api.get("/api/tenants/acme/records/products", &w.acme);
    assert_eq!(listed.body[0]["id"], "p-1", "{}", listed.body);
    let pending = api.get("/api/tenants/acme/records/products?pending_for=m", &w.acme);
    assert_eq!(
        pending.body[0]["pending"]["reason"], "new",
        "{}",
        pending.body
    );
    api.get("/api/tenants/globex/records/products", &w.operator)
        .body
        .as_array()
        .map(|a| assert!(a.is_empty(), "globex has no records"))
        .unwrap();
    api.get("/api/tenants/acme/records/nothing", &w.acme)
        .problem(404, "not_found");
    let one = api.get("/api/tenants/acme/records/products/p-1", &w.acme);
    assert_eq!(one.body["record"]["id"], "p-1");
    assert_eq!(one.body["acks"], json!([]));
    let unack = api.call(
        "POST",
        "/api/tenants/acme/records/products/p-1/unacknowledge",
        Some(&w.acme),
        Some(json!({"installation": "m"})),
    );
    assert_eq!(unack.status, 200);
    assert_eq!(
        unack.body["unacknowledged"], false,
        "m never acknowledged it"
    );
}

/// Every `$ref` in `value`.
fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[test]
fn the_openapi_document_is_whole_and_the_command_prints_the_served_one() {
    let site = Site::new();
    let printed: Value = serde_json::from_str(&site.ok(&["openapi"])).unwrap();
    assert!(printed["openapi"].as_str().unwrap().starts_with("3.1"));
    let schemas = printed["components"]["schemas"].as_object().unwrap();
    let mut found = Vec::new();
    refs(&printed, &mut found);
    assert!(found.len() > 20);
    for r in found {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("{r}"));
        assert!(schemas.contains_key(name), "{r} resolves");
    }
    let mut ids = std::collections::BTreeSet::new();
    for (path, operations) in printed["paths"].as_object().unwrap() {
        assert!(path.starts_with("/api/"), "{path}");
        for (method, op) in operations.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap();
            assert!(ids.insert(id.to_string()), "operationId {id} is unique");
            assert!(
                !op["tags"].as_array().unwrap().is_empty(),
                "{method} {path}"
            );
            assert!(op["summary"].is_string() || op["description"].is_string());
            // Each {param} of the path is declared as a path parameter.
            let declared: Vec<&str> = op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter(|p| p["in"] == "path")
                        .map(|p| p["name"].as_str().unwrap())
                        .collect()
                })
                .unwrap_or_default();
            for part in path.split('/').filter(|p| p.starts_with('{')) {
                let name = part.trim_matches(|c| c == '{' || c == '}');
                assert!(declared.contains(&name), "{method} {path} declares {name}");
            }
        }
    }
    // The server serves the same document.
    let server = site.serve(&["--listen", "127.0.0.1:0"]);
    let api = Api::start(&server);
    assert_eq!(
        api.call("GET", "/api/openapi.json", None, None).body,
        printed
    );
}

#[test]
fn a_connectors_state_is_seen_and_rewound_through_the_api() {
    let w = world();
    let api = &w.api;
    let run_count = |n: usize| {
        api.call(
            "POST",
            "/api/tenants/acme/installations/m/feeds/count/run-now",
            Some(&w.acme),
            None,
        );
        api.wait_until("/api/tenants/acme/runs?feed=count", &w.acme, |b| {
            b.as_array()
                .is_some_and(|a| a.len() == n && a.iter().all(|r| r["status"] == "ok"))
        })
    };
    run_count(1);
    let runs = run_count(2);
    let second = runs[0]["id"].as_i64().unwrap();

    let state = api.get("/api/tenants/acme/installations/m/state", &w.acme_reader);
    assert_eq!(state.status, 200, "{}", state.body);
    let count = state
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == "count")
        .unwrap_or_else(|| panic!("{}", state.body));
    assert_eq!(count["value"]["text"], "2", "{count}");
    assert_eq!(count["changed"]["run_id"], second, "{count}");
    let history = api.get(
        "/api/tenants/acme/installations/m/state/history?key=count",
        &w.acme_reader,
    );
    let texts: Vec<&str> = history
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["value"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["2", "1"], "{}", history.body);

    let rewind = |token: &str, body: Value| {
        api.call(
            "POST",
            "/api/tenants/acme/installations/m/state/rewind",
            Some(token),
            Some(body),
        )
    };
    rewind(&w.acme_reader, json!({"before_run": second})).problem(403, "forbidden");
    let plan = rewind(&w.acme, json!({"before_run": second, "dry_run": true}));
    assert_eq!(plan.status, 200, "{}", plan.body);
    assert_eq!(plan.body["changes"][0]["key"], "count");
    assert_eq!(plan.body["changes"][0]["to"]["text"], "1");
    // Nothing changed yet; then the rewind, against the plan shown.
    let done = rewind(
        &w.acme,
        json!({"before_run": second, "as_of": plan.body["as_of"]}),
    );
    assert_eq!(done.status, 200, "{}", done.body);
    let after = api.get("/api/tenants/acme/installations/m/state", &w.acme);
    let count = after
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == "count")
        .unwrap()
        .clone();
    assert_eq!(count["value"]["text"], "1", "{count}");
    // The plan is spent: a run since, or the rewind itself, makes it stale.
    run_count(3);
    rewind(
        &w.acme,
        json!({"before_run": second, "as_of": plan.body["as_of"]}),
    )
    .problem(409, "stale_revision");
    // A run of another tenant's installation is not one of this one's.
    w.site.ok(&["run-now", "globex/m", "count"]);
    let globex = api.wait_until("/api/tenants/globex/runs", &w.operator, |b| {
        b.as_array().is_some_and(|a| !a.is_empty())
    });
    rewind(&w.acme, json!({"before_run": globex[0]["id"]})).problem(404, "not_found");
    let actions = w.site.ok(&["tokens", "actions", "--tenant", "acme"]);
    assert!(
        actions.contains("token #2 (acme-admin) state.rewind acme/m: to before run"),
        "{actions}"
    );
}
