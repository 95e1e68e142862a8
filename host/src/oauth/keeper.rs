//! [`TokenKeeper`]: an installation's token set between the store and the
//! token endpoint. Refreshes of one installation are serialised (an async
//! lock per installation, the stored set read again once it is held), so
//! two runs never spend the same refresh token; a new token set is stored,
//! durably, before its access token is handed to anyone, so a crash after
//! a rotation never loses the only valid refresh token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::egress::{HttpError, HttpRequest, HttpResponse};
use crate::manifest::OAuthGrant;
use crate::secrets::{Keyring, SecretSlot};
use crate::storage::{OAuthStore, PendingAuthorization, Scope, StoredTokenSet};

use super::pkce::{Pkce, random_token, state_key};
use super::token::{Grant, OAuthClient, TokenError, TokenSet, token_set};

/// How long an authorization started by an operator waits for its
/// callback, seconds.
pub const AUTHORIZATION_TTL_SECS: i64 = 600;

/// The secret slot key the token set is sealed under (config keys are
/// slugs, so it cannot be one).
const TOKEN_SLOT: &str = "oauth:token-set";

/// The secret slot key a PKCE verifier is sealed under.
const VERIFIER_SLOT: &str = "oauth:pkce-verifier";

/// Sends a token request: the run's HTTP capability (counted and audited
/// with the run) or the egress client for the callback.
#[async_trait::async_trait]
pub trait TokenSender: Send + Sync {
    /// Sends `request` under the installation's egress policy.
    async fn send_token_request(&self, request: HttpRequest) -> Result<HttpResponse, HttpError>;
}

/// Why no token could be had: the guest's `oauth-error`, in host terms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthFailure {
    /// No `[oauth]`, no client id or secret, or no master key.
    #[error("{0}")]
    NotConfigured(String),
    /// Never authorised: no token set is stored and no grant the host can
    /// use alone (client credentials). An operator must authorise it.
    #[error("{0}")]
    NotAuthorised(String),
    /// The server refused the refresh token or the client (a wrong client
    /// id or secret): an operator must reauthorise.
    #[error("{0}")]
    ReauthorisationNeeded(String),
    /// The token endpoint or the store failed: try again later.
    #[error("{0}")]
    Unavailable(String),
}

/// One async lock per installation, shared by every run of the process.
#[derive(Clone, Default)]
pub struct InstallationLocks(Arc<Mutex<HashMap<Scope, Arc<tokio::sync::Mutex<()>>>>>);

impl InstallationLocks {
    /// The lock of `scope`.
    fn of(&self, scope: &Scope) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.0.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(scope.clone()).or_default().clone()
    }
}

/// An authorization the operator starts: the URL to open.
#[derive(Debug, Clone)]
pub struct AuthorizationStart {
    /// The authorize URL, with state and challenge.
    pub url: String,
    /// When it stops being accepted, Unix seconds.
    pub expires_at: i64,
}

/// An installation's token set, kept sealed in the store.
#[derive(Clone)]
pub struct TokenKeeper {
    store: Arc<dyn OAuthStore>,
    keyring: Option<Arc<Keyring>>,
    locks: InstallationLocks,
}

impl TokenKeeper {
    /// A keeper on `store`, sealing with `keyring`, serialising refreshes
    /// with `locks`.
    pub fn new(
        store: Arc<dyn OAuthStore>,
        keyring: Option<Arc<Keyring>>,
        locks: InstallationLocks,
    ) -> Self {
        Self {
            store,
            keyring,
            locks,
        }
    }

    fn keyring(&self) -> Result<&Keyring, OAuthFailure> {
        self.keyring.as_deref().ok_or_else(|| {
            OAuthFailure::NotConfigured(
                "the host was given no master key, so it cannot open the OAuth tokens".into(),
            )
        })
    }

    fn slot<'a>(scope: &'a Scope, key: &'a str) -> SecretSlot<'a> {
        SecretSlot {
            tenant: &scope.tenant,
            installation: &scope.installation,
            key,
        }
    }

    /// The stored token set of `scope`, opened.
    pub async fn load(&self, scope: &Scope) -> Result<Option<TokenSet>, OAuthFailure> {
        let stored = self
            .store
            .oauth_token_set(&scope.tenant, &scope.installation)
            .await
            .map_err(unavailable_store)?;
        let Some(stored) = stored else {
            return Ok(None);
        };
        let text = self
            .keyring()?
            .open(Self::slot(scope, TOKEN_SLOT), &stored.sealed)
            .map_err(|e| OAuthFailure::NotConfigured(format!("the OAuth tokens: {e}")))?;
        let tokens: SealedTokens = serde_json::from_str(&text).map_err(|_| {
            OAuthFailure::ReauthorisationNeeded("the stored OAuth tokens are unreadable".into())
        })?;
        Ok(Some(TokenSet {
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
            expires_at: stored.expires_at,
            scopes: stored.scopes,
        }))
    }

    /// Seals and stores `set` for `scope`; durable when it returns.
    pub async fn save(&self, scope: &Scope, set: &TokenSet, now: i64) -> Result<(), OAuthFailure> {
        let text = serde_json::to_string(&SealedTokens {
            access_token: set.access_token.clone(),
            refresh_token: set.refresh_token.clone(),
        })
        .map_err(|e| OAuthFailure::Unavailable(e.to_string()))?;
        let sealed = self.keyring()?.seal(Self::slot(scope, TOKEN_SLOT), &text);
        let stored = StoredTokenSet {
            sealed,
            expires_at: set.expires_at,
            scopes: set.scopes.clone(),
            updated_at: now,
        };
        self.store
            .put_oauth_token_set(&scope.tenant, &scope.installation, stored)
            .await
            .map_err(unavailable_store)
    }

    /// An access token good for at least a minute from `now`: the stored
    /// one, or a new one (refreshed, or by client credentials), stored
    /// before it is returned; and whether it is new.
    pub async fn fresh(
        &self,
        scope: &Scope,
        client: &OAuthClient,
        sender: &dyn TokenSender,
        now: i64,
    ) -> Result<(TokenSet, bool), OAuthFailure> {
        let lock = self.locks.of(scope);
        let _held = lock.lock().await;
        let current = self.load(scope).await?;
        match current {
            Some(set) if set.fresh_at(now) => Ok((set, false)),
            current => Ok((self.renew(scope, client, sender, current, now).await?, true)),
        }
    }

    /// After the third party refused `rejected`: a new token, unless the
    /// stored one is another already (someone refreshed meanwhile).
    pub async fn refresh_rejected(
        &self,
        scope: &Scope,
        client: &OAuthClient,
        sender: &dyn TokenSender,
        rejected: &str,
        now: i64,
    ) -> Result<TokenSet, OAuthFailure> {
        let lock = self.locks.of(scope);
        let _held = lock.lock().await;
        let current = self.load(scope).await?;
        match current {
            Some(set) if set.access_token != rejected && set.fresh_at(now) => Ok(set),
            current => self.renew(scope, client, sender, current, now).await,
        }
    }

    /// A new token set from the refresh token, else by client credentials;
    /// stored before it is returned. The lock is held by the caller.
    async fn renew(
        &self,
        scope: &Scope,
        client: &OAuthClient,
        sender: &dyn TokenSender,
        current: Option<TokenSet>,
        now: i64,
    ) -> Result<TokenSet, OAuthFailure> {
        let refresh = current.as_ref().and_then(|s| s.refresh_token.clone());
        let grant = match &refresh {
            Some(refresh_token) => Grant::Refresh { refresh_token },
            None if client.supports(OAuthGrant::ClientCredentials) => Grant::ClientCredentials,
            None => {
                return Err(OAuthFailure::NotAuthorised(format!(
                    "{} has no OAuth authorisation{}: {}",
                    label(scope),
                    if current.is_some() {
                        " that can be refreshed"
                    } else {
                        ""
                    },
                    super::reauthorise_hint(&scope.tenant, &scope.installation)
                )));
            }
        };
        let set = self
            .request(client, sender, grant, refresh.as_deref(), now)
            .await
            .map_err(|e| failure(scope, e))?;
        self.save(scope, &set, now).await?;
        Ok(set)
    }

    async fn request(
        &self,
        client: &OAuthClient,
        sender: &dyn TokenSender,
        grant: Grant<'_>,
        previous_refresh: Option<&str>,
        now: i64,
    ) -> Result<TokenSet, TokenError> {
        let response = sender
            .send_token_request(client.token_request(grant))
            .await
            .map_err(|e| TokenError::Unavailable(e.to_string()))?;
        token_set(&response, now, previous_refresh, &client.section.scopes)
    }

    /// A token by client credentials, stored (`airlock reauthorise --oauth`
    /// for a plugin that supports them).
    pub async fn client_credentials(
        &self,
        scope: &Scope,
        client: &OAuthClient,
        sender: &dyn TokenSender,
        now: i64,
    ) -> Result<TokenSet, OAuthFailure> {
        let lock = self.locks.of(scope);
        let _held = lock.lock().await;
        let set = self
            .request(client, sender, Grant::ClientCredentials, None, now)
            .await
            .map_err(|e| failure(scope, e))?;
        self.save(scope, &set, now).await?;
        Ok(set)
    }

    /// Starts an authorization of `scope`: stores its state (hashed) and
    /// PKCE verifier (sealed) for ten minutes and returns the URL the
    /// operator opens.
    pub async fn start_authorization(
        &self,
        scope: &Scope,
        client: &OAuthClient,
        redirect_uri: &str,
        now: i64,
    ) -> Result<AuthorizationStart, OAuthFailure> {
        check_redirect_uri(redirect_uri).map_err(OAuthFailure::NotConfigured)?;
        let state = random_token(32);
        let pkce = client.section.pkce.then(Pkce::new);
        let url = client
            .authorize_url(
                redirect_uri,
                &state,
                pkce.as_ref().map(|p| p.challenge.as_str()),
            )
            .map_err(OAuthFailure::NotConfigured)?;
        let verifier = match &pkce {
            Some(p) => Some(
                self.keyring()?
                    .seal(Self::slot(scope, VERIFIER_SLOT), &p.verifier),
            ),
            None => None,
        };
        let expires_at = now + AUTHORIZATION_TTL_SECS;
        let pending = PendingAuthorization {
            state_key: state_key(&state),
            tenant: scope.tenant.clone(),
            installation: scope.installation.clone(),
            verifier,
            redirect_uri: redirect_uri.to_string(),
            created_at: now,
            expires_at,
        };
        self.store
            .put_oauth_pending(pending)
            .await
            .map_err(unavailable_store)?;
        Ok(AuthorizationStart { url, expires_at })
    }

    /// The authorization `state` names, taken (single use): none if it is
    /// unknown, used or expired.
    pub async fn take_authorization(
        &self,
        state: &str,
        now: i64,
    ) -> Result<Option<PendingAuthorization>, OAuthFailure> {
        self.store
            .take_oauth_pending(&state_key(state), now)
            .await
            .map_err(unavailable_store)
    }

    /// Exchanges the callback's `code` for the authorization `pending`,
    /// and stores the token set.
    pub async fn finish_authorization(
        &self,
        pending: &PendingAuthorization,
        client: &OAuthClient,
        sender: &dyn TokenSender,
        code: &str,
        now: i64,
    ) -> Result<TokenSet, OAuthFailure> {
        let scope = Scope {
            tenant: pending.tenant.clone(),
            installation: pending.installation.clone(),
        };
        let verifier = match &pending.verifier {
            Some(sealed) => Some(
                self.keyring()?
                    .open(Self::slot(&scope, VERIFIER_SLOT), sealed)
                    .map_err(|e| OAuthFailure::NotConfigured(format!("the PKCE verifier: {e}")))?,
            ),
            None => None,
        };
        let lock = self.locks.of(&scope);
        let _held = lock.lock().await;
        let grant = Grant::Code {
            code,
            redirect_uri: &pending.redirect_uri,
            verifier: verifier.as_deref(),
        };
        let set = self
            .request(client, sender, grant, None, now)
            .await
            .map_err(|e| failure(&scope, e))?;
        self.save(&scope, &set, now).await?;
        Ok(set)
    }
}

/// A redirect URI must be an absolute http(s) URL without a fragment, or
/// the name a service registered for one: eBay's RuName
/// (`Shop-Airlock-Shop-A-abcdefg`), which it sends as `redirect_uri` and
/// maps to the accept URL registered with it (there, `serve --listen`'s
/// `/oauth/callback`): 1-128 letters, digits, `-`, `_` and `.`.
fn check_redirect_uri(uri: &str) -> Result<(), String> {
    let registered_name = !uri.is_empty()
        && uri.len() <= 128
        && uri
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && uri.as_bytes()[0].is_ascii_alphanumeric();
    if registered_name {
        return Ok(());
    }
    match url::Url::parse(uri) {
        Ok(u)
            if matches!(u.scheme(), "https" | "http")
                && u.host().is_some()
                && u.fragment().is_none() =>
        {
            Ok(())
        }
        _ => Err(format!(
            "--redirect-uri `{}` is not an absolute http(s) URL like \
             https://HOST/oauth/callback, nor a registered redirect name (eBay's RuName)",
            uri.chars().take(200).collect::<String>()
        )),
    }
}

/// What the sealed text of a token set holds: the two tokens.
#[derive(serde::Serialize, serde::Deserialize)]
struct SealedTokens {
    access_token: String,
    refresh_token: Option<String>,
}

fn label(scope: &Scope) -> String {
    format!("{}/{}", scope.tenant, scope.installation)
}

fn unavailable_store(e: crate::storage::StorageError) -> OAuthFailure {
    OAuthFailure::Unavailable(format!("the OAuth tokens could not be read or stored: {e}"))
}

/// A token endpoint's failure as the guest sees it.
fn failure(scope: &Scope, e: TokenError) -> OAuthFailure {
    match e {
        TokenError::Refused(why) => OAuthFailure::ReauthorisationNeeded(format!(
            "the authorisation server refused {}'s credentials ({why}): {}",
            label(scope),
            super::reauthorise_hint(&scope.tenant, &scope.installation)
        )),
        TokenError::Unavailable(why) => {
            OAuthFailure::Unavailable(format!("the OAuth token endpoint is unavailable: {why}"))
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn redirect_uris_are_urls_or_registered_names() {
        for ok in [
            "https://hooks.example.com/oauth/callback",
            "http://127.0.0.1:8440/oauth/callback",
            "Shop-Airlock-Shop-A-abcdefg",
        ] {
            assert!(check_redirect_uri(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "javascript:alert(1)",
            "https://h/cb#frag",
            "-leading-dash",
            "has space",
            "ftp://h/cb",
        ] {
            assert!(check_redirect_uri(bad).is_err(), "{bad}");
        }
    }

    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::manifest::{ClientAuth, OAuthSection};
    use crate::secrets::MasterKey;
    use crate::storage::SqliteStore;

    /// A token endpoint that rotates: refresh token `rN` gives access
    /// token `aN+1` and refresh token `rN+1`, once; `r-bad` is refused.
    struct Rotating {
        requests: AtomicU32,
    }

    #[async_trait::async_trait]
    impl TokenSender for Rotating {
        async fn send_token_request(&self, r: HttpRequest) -> Result<HttpResponse, HttpError> {
            let n = self.requests.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::task::yield_now().await;
            let body = String::from_utf8(r.body.unwrap()).unwrap();
            let answer = if body.contains("refresh_token=r-bad") {
                (400, r#"{"error":"invalid_grant"}"#.to_string())
            } else {
                (
                    200,
                    format!(
                        r#"{{"access_token":"a{n}","expires_in":1800,"refresh_token":"r{n}"}}"#
                    ),
                )
            };
            Ok(HttpResponse {
                status: answer.0,
                headers: vec![],
                body: answer.1.into_bytes(),
            })
        }
    }

    fn client() -> OAuthClient {
        let manifest = crate::manifest::Manifest::parse(
            r#"
            [plugin]
            id = "t"
            version = "1.0.0"
            [[feeds]]
            name = "f"
            direction = "inbound"
            schedule = "0 0 * * * *"
            [config]
            client_id = { type = "string" }
            client_secret = { type = "secret" }
            [egress]
            allow = [{ host = "id.example.com", service = "Id" }]
            [oauth]
            token_url = "https://id.example.com/token"
            grants = ["client_credentials"]
            client_id_field = "client_id"
            client_secret_field = "client_secret"
            "#,
            std::path::Path::new("plugin.toml"),
        )
        .unwrap();
        let section: OAuthSection = manifest.oauth.clone().unwrap();
        assert_eq!(section.client_auth, ClientAuth::Basic);
        let config = crate::config::ConfigValues::from_assignments(
            &manifest,
            &["client_id=cid".into(), "client_secret=csecret".into()],
        )
        .unwrap();
        OAuthClient::new(&section, &config).unwrap()
    }

    fn keeper() -> TokenKeeper {
        let store = Arc::new(SqliteStore::in_memory().unwrap());
        let keyring = Arc::new(Keyring::new(MasterKey::generate(), vec![]));
        TokenKeeper::new(store, Some(keyring), InstallationLocks::default())
    }

    fn scope() -> Scope {
        Scope {
            tenant: "t".into(),
            installation: "i".into(),
        }
    }

    fn set(access: &str, expires_at: i64, refresh: &str) -> TokenSet {
        TokenSet {
            access_token: access.into(),
            expires_at: Some(expires_at),
            refresh_token: Some(refresh.into()),
            scopes: String::new(),
        }
    }

    #[tokio::test]
    async fn a_due_token_is_refreshed_once_and_the_rotation_stored_first() {
        let keeper = keeper();
        let sender = Rotating {
            requests: AtomicU32::new(0),
        };
        keeper
            .save(&scope(), &set("a0", 1030, "r0"), 0)
            .await
            .unwrap();
        // Two callers at once: one refresh, both get its token.
        let (scope_, client_) = (scope(), client());
        let (x, y) = tokio::join!(
            keeper.fresh(&scope_, &client_, &sender, 1000),
            keeper.fresh(&scope_, &client_, &sender, 1000)
        );
        let (x, y) = (x.unwrap(), y.unwrap());
        assert_eq!(
            (x.0.access_token.as_str(), y.0.access_token.as_str()),
            ("a1", "a1")
        );
        assert!(x.1 != y.1, "one of them renewed it");
        assert_eq!(sender.requests.load(Ordering::SeqCst), 1);
        let stored = keeper.load(&scope()).await.unwrap().unwrap();
        assert_eq!(stored.refresh_token.as_deref(), Some("r1"));
        assert_eq!(stored.expires_at, Some(2800));
        // A fresh token is not refreshed; a rejected one is, unless it
        // was replaced already.
        keeper
            .fresh(&scope(), &client(), &sender, 1000)
            .await
            .unwrap();
        assert_eq!(sender.requests.load(Ordering::SeqCst), 1);
        let got = keeper
            .refresh_rejected(&scope(), &client(), &sender, "a0", 1000)
            .await
            .unwrap();
        assert_eq!(got.access_token, "a1", "a0 was replaced already");
        let got = keeper
            .refresh_rejected(&scope(), &client(), &sender, "a1", 1000)
            .await
            .unwrap();
        assert_eq!(got.access_token, "a2");
    }

    #[tokio::test]
    async fn a_refused_refresh_needs_reauthorisation_and_none_stored_uses_client_credentials() {
        let keeper = keeper();
        let sender = Rotating {
            requests: AtomicU32::new(0),
        };
        keeper
            .save(&scope(), &set("a0", 0, "r-bad"), 0)
            .await
            .unwrap();
        let err = keeper
            .fresh(&scope(), &client(), &sender, 1000)
            .await
            .unwrap_err();
        let OAuthFailure::ReauthorisationNeeded(message) = err else {
            panic!("{err:?}")
        };
        assert!(message.contains("invalid_grant"), "{message}");
        assert!(
            message.contains("airlock reauthorise t/i --oauth"),
            "{message}"
        );
        // No token set: client credentials (the plugin supports them).
        let other = Scope {
            tenant: "t".into(),
            installation: "j".into(),
        };
        let (got, renewed) = keeper
            .fresh(&other, &client(), &sender, 1000)
            .await
            .unwrap();
        assert!(got.access_token.starts_with('a') && renewed);
        assert!(keeper.load(&other).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn the_store_holds_no_token_in_the_clear() {
        let store = Arc::new(SqliteStore::in_memory().unwrap());
        let keyring = Arc::new(Keyring::new(MasterKey::generate(), vec![]));
        let keeper = TokenKeeper::new(store.clone(), Some(keyring), InstallationLocks::default());
        keeper
            .save(&scope(), &set("access-plain", 10, "refresh-plain"), 0)
            .await
            .unwrap();
        let row = store.oauth_token_set("t", "i").unwrap().unwrap();
        let bytes = [row.sealed.ciphertext.clone(), row.scopes.into_bytes()].concat();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("access-plain") && !text.contains("refresh-plain"));
        // Sealed for its slot: another installation cannot open it.
        let moved = Scope {
            tenant: "t".into(),
            installation: "x".into(),
        };
        store
            .put_oauth_token_set("t", "x", &store.oauth_token_set("t", "i").unwrap().unwrap())
            .unwrap();
        assert!(matches!(
            keeper.load(&moved).await,
            Err(OAuthFailure::NotConfigured(_))
        ));
    }
}
