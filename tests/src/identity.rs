//! A fake OAuth2 identity server on loopback, faithful to Xero's
//! (`../shared/THIRD-PARTY-APIS.md` §1): the authorize endpoint
//! (`/identity/connect/authorize`, which answers as if the user consented,
//! or refused when told to), the token endpoint (`/connect/token`: Basic
//! client authentication, a form body; grants `authorization_code` with the
//! PKCE verifier checked, `refresh_token` with rotation and a settable grace
//! for the replaced token, `client_credentials`), and a protected resource
//! (`/api/whoami`, 401 to an unknown, expired or revoked token). Plus
//! `/_test/hold`, which never answers (a guest parked there can be killed
//! at a known point). Counters and every token issued are there for tests.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;
use sha2::{Digest as _, Sha256};

/// How the identity server behaves; change it while it runs with
/// [`FakeIdentity::set`].
#[derive(Debug, Clone)]
pub struct IdentitySettings {
    /// The registered client.
    pub client_id: String,
    /// Its secret.
    pub client_secret: String,
    /// Lifetime of access tokens, seconds (Xero: 30 minutes).
    pub access_ttl_secs: i64,
    /// How long a replaced refresh token is still accepted, seconds
    /// (Xero: 30 minutes, in case the response was lost); 0: never.
    pub grace_secs: i64,
    /// The authorize endpoint answers `error=access_denied`.
    pub deny: bool,
    /// `/api/whoami` refuses every token (401), as if access were revoked
    /// at the resource.
    pub refuse_api: bool,
}

impl Default for IdentitySettings {
    fn default() -> Self {
        Self {
            client_id: "fake-client-id".into(),
            client_secret: "fake-client-secret-0123".into(),
            access_ttl_secs: 1800,
            grace_secs: 1800,
            deny: false,
            refuse_api: false,
        }
    }
}

/// What the server has seen, for assertions.
#[derive(Debug, Clone, Default)]
pub struct IdentityStats {
    /// Authorize requests.
    pub authorizations: u32,
    /// Codes exchanged for tokens.
    pub code_exchanges: u32,
    /// Refresh grants answered with tokens.
    pub refreshes: u32,
    /// Client-credentials grants answered with tokens.
    pub client_credentials: u32,
    /// Token requests refused (`invalid_grant`, `invalid_client`…).
    pub refused: u32,
    /// `/api/whoami` answered 200.
    pub api_ok: u32,
    /// `/api/whoami` answered 401.
    pub api_refused: u32,
    /// Requests parked at `/_test/hold`.
    pub held: u32,
}

struct CodeGrant {
    redirect_uri: String,
    challenge: Option<String>,
    scope: String,
    used: bool,
}

struct RefreshToken {
    scope: String,
    /// When it was replaced by a rotation.
    replaced_at: Option<i64>,
}

#[derive(Default)]
struct Idp {
    settings: IdentitySettings,
    stats: IdentityStats,
    codes: HashMap<String, CodeGrant>,
    refresh: HashMap<String, RefreshToken>,
    access: HashMap<String, i64>,
    issued: Vec<String>,
    seq: u64,
    revoked: bool,
    released: bool,
}

impl Idp {
    fn next(&mut self, prefix: &str) -> String {
        self.seq += 1;
        let token = format!("{prefix}-{}-{:016x}", self.seq, rand_u64(self.seq));
        self.issued.push(token.clone());
        token
    }

    /// A token response; a refresh token when `offline_access` was asked.
    fn tokens(&mut self, scope: &str, refresh: bool) -> Response {
        let now = chrono::Utc::now().timestamp();
        let access = self.next("at");
        self.access
            .insert(access.clone(), now + self.settings.access_ttl_secs);
        let mut body = json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.settings.access_ttl_secs,
            "scope": scope,
        });
        if refresh {
            let token = self.next("rt");
            self.refresh.insert(
                token.clone(),
                RefreshToken {
                    scope: scope.to_string(),
                    replaced_at: None,
                },
            );
            body["refresh_token"] = json!(token);
        }
        (StatusCode::OK, Json(body)).into_response()
    }

    fn refuse(&mut self, status: StatusCode, error: &str) -> Response {
        self.stats.refused += 1;
        (status, Json(json!({ "error": error }))).into_response()
    }
}

/// Not cryptographic: enough that tokens are not guessable by a test.
fn rand_u64(seed: u64) -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut h = Sha256::new();
    h.update(seed.to_be_bytes());
    h.update(t.to_be_bytes());
    let d = h.finalize();
    u64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
}

type Shared = Arc<Mutex<Idp>>;

/// A running fake identity server.
pub struct FakeIdentity {
    /// Where it listens.
    pub addr: SocketAddr,
    idp: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeIdentity {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeIdentity {
    /// Serves plain HTTP on a free loopback port.
    pub async fn start(settings: IdentitySettings) -> std::io::Result<Self> {
        Self::start_on(settings, None).await
    }

    /// Serves https with a certificate of `ca` (make it for the names the
    /// fake stands in for: `login.xero.com`, `identity.xero.com`,
    /// `api.xero.com`).
    pub async fn start_tls(
        settings: IdentitySettings,
        ca: &crate::tls::TestCa,
    ) -> std::io::Result<Self> {
        Self::start_on(settings, Some(ca)).await
    }

    async fn start_on(
        settings: IdentitySettings,
        tls: Option<&crate::tls::TestCa>,
    ) -> std::io::Result<Self> {
        let idp = Arc::new(Mutex::new(Idp {
            settings,
            ..Idp::default()
        }));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let app = router(idp.clone());
        let task = match tls {
            Some(ca) => ca.serve(listener, app),
            None => tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            }),
        };
        Ok(Self { addr, idp, task })
    }

    fn idp(&self) -> std::sync::MutexGuard<'_, Idp> {
        self.idp.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes the settings.
    pub fn set(&self, change: impl FnOnce(&mut IdentitySettings)) {
        change(&mut self.idp().settings);
    }

    /// Revokes every grant: each refresh token is refused with
    /// `invalid_grant` from now on, and each access token with 401.
    pub fn revoke_all(&self) {
        self.idp().revoked = true;
    }

    /// Lets the requests parked at `/_test/hold` (and later ones) answer.
    pub fn release_holds(&self) {
        self.idp().released = true;
    }

    /// The counters.
    pub fn stats(&self) -> IdentityStats {
        self.idp().stats.clone()
    }

    /// A check of bearer tokens for a fake resource server (the fake Xero):
    /// true for an access token this server issued that has not expired
    /// nor been revoked, as `/api/whoami` decides.
    pub fn token_check(&self) -> crate::xero::TokenCheck {
        let idp = self.idp.clone();
        Arc::new(move |token: &str| {
            let idp = lock(&idp);
            let now = chrono::Utc::now().timestamp();
            idp.access.get(token).is_some_and(|&exp| exp > now)
                && !idp.revoked
                && !idp.settings.refuse_api
        })
    }

    /// Every token issued so far (access and refresh), to look for in
    /// places they must not be.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.idp().issued.clone()
    }
}

fn router(idp: Shared) -> Router {
    Router::new()
        .route("/identity/connect/authorize", get(authorize))
        .route("/connect/token", post(token))
        .route("/api/whoami", get(whoami))
        .route("/_test/hold", get(hold))
        .with_state(idp)
}

fn lock(idp: &Shared) -> std::sync::MutexGuard<'_, Idp> {
    idp.lock().unwrap_or_else(|p| p.into_inner())
}

async fn authorize(
    State(idp): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut idp = lock(&idp);
    idp.stats.authorizations += 1;
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    let redirect_uri = get("redirect_uri");
    if get("response_type") != "code"
        || get("client_id") != idp.settings.client_id
        || url::Url::parse(&redirect_uri).is_err()
    {
        return (StatusCode::BAD_REQUEST, "invalid authorize request").into_response();
    }
    let mut target = url::Url::parse(&redirect_uri).expect("checked");
    if idp.settings.deny {
        target
            .query_pairs_mut()
            .append_pair("error", "access_denied")
            .append_pair("state", &get("state"));
    } else {
        let challenge = match (q.get("code_challenge"), q.get("code_challenge_method")) {
            (Some(c), Some(m)) if m == "S256" => Some(c.clone()),
            (None, None) => None,
            _ => return (StatusCode::BAD_REQUEST, "only S256 PKCE").into_response(),
        };
        let code = idp.next("code");
        idp.codes.insert(
            code.clone(),
            CodeGrant {
                redirect_uri,
                challenge,
                scope: get("scope"),
                used: false,
            },
        );
        target
            .query_pairs_mut()
            .append_pair("code", &code)
            .append_pair("state", &get("state"));
    }
    (StatusCode::FOUND, [(header::LOCATION, target.to_string())]).into_response()
}

/// The client of a Basic `Authorization` header, if it is the registered
/// one with its secret.
fn basic_client_ok(headers: &HeaderMap, idp: &Idp) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(encoded) = value.strip_prefix("Basic ") else {
        return false;
    };
    let Ok(decoded) = STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let text = String::from_utf8_lossy(&decoded);
    text.split_once(':') == Some((&idp.settings.client_id, &idp.settings.client_secret))
}

async fn token(State(idp): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let mut idp = lock(&idp);
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !form_type.starts_with("application/x-www-form-urlencoded") {
        return idp.refuse(StatusCode::BAD_REQUEST, "invalid_request");
    }
    if !basic_client_ok(&headers, &idp) {
        return idp.refuse(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    let now = chrono::Utc::now().timestamp();
    match get("grant_type").as_str() {
        "authorization_code" => {
            let code = get("code");
            let Some(grant) = idp.codes.get_mut(&code) else {
                return idp.refuse(StatusCode::BAD_REQUEST, "invalid_grant");
            };
            let verifier_ok = match &grant.challenge {
                Some(challenge) => {
                    URL_SAFE_NO_PAD.encode(Sha256::digest(get("code_verifier").as_bytes()))
                        == *challenge
                }
                None => true,
            };
            if grant.used || grant.redirect_uri != get("redirect_uri") || !verifier_ok {
                grant.used = true;
                return idp.refuse(StatusCode::BAD_REQUEST, "invalid_grant");
            }
            grant.used = true;
            let scope = grant.scope.clone();
            idp.stats.code_exchanges += 1;
            let offline = scope.split(' ').any(|s| s == "offline_access");
            idp.tokens(&scope, offline)
        }
        "refresh_token" => {
            let (revoked, grace) = (idp.revoked, idp.settings.grace_secs);
            let Some(old) = idp.refresh.get_mut(&get("refresh_token")) else {
                return idp.refuse(StatusCode::BAD_REQUEST, "invalid_grant");
            };
            let expired = old.replaced_at.is_some_and(|at| now - at >= grace);
            if revoked || expired {
                return idp.refuse(StatusCode::BAD_REQUEST, "invalid_grant");
            }
            old.replaced_at.get_or_insert(now);
            let scope = old.scope.clone();
            idp.stats.refreshes += 1;
            idp.tokens(&scope, true)
        }
        "client_credentials" => {
            if idp.revoked {
                return idp.refuse(StatusCode::BAD_REQUEST, "invalid_client");
            }
            idp.stats.client_credentials += 1;
            let scope = get("scope");
            idp.tokens(&scope, false)
        }
        _ => idp.refuse(StatusCode::BAD_REQUEST, "unsupported_grant_type"),
    }
}

async fn whoami(State(idp): State<Shared>, headers: HeaderMap) -> Response {
    let mut idp = lock(&idp);
    let now = chrono::Utc::now().timestamp();
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let valid = idp.access.get(token).is_some_and(|&exp| exp > now)
        && !idp.revoked
        && !idp.settings.refuse_api;
    if valid {
        idp.stats.api_ok += 1;
        (StatusCode::OK, Json(json!({ "sub": "fake-user-1" }))).into_response()
    } else {
        idp.stats.api_refused += 1;
        (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "Title": "Unauthorized" })),
        )
            .into_response()
    }
}

async fn hold(State(idp): State<Shared>) -> Response {
    lock(&idp).stats.held += 1;
    while !lock(&idp).released {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    StatusCode::NO_CONTENT.into_response()
}
