//! The operator's side of OAuth2, outside runs: starting an authorization
//! (`airlock reauthorise --oauth` prints its URL), finishing it at the
//! callback on `serve`'s listener, and client credentials. Token requests
//! go through the host's egress client under the installation's approved
//! egress, and are recorded in the egress audit under the feed name
//! [`OAUTH_FEED`] (no body, headers or query, like every audit record).

use std::sync::Mutex;

use crate::config::Redactor;
use crate::egress::{
    EgressClient, EgressPolicy, HttpCall, HttpError, HttpRequest, HttpResponse, SendMode,
};
use crate::lifecycle;
use crate::manifest::Plugin;
use crate::{Airlock, Installation};

use super::{AuthorizationStart, OAuthClient, OAuthFailure, TokenSender, TokenSet};

/// The feed name the token requests made outside runs are audited under.
pub const OAUTH_FEED: &str = "oauth";

/// Token requests of one operator action, through the egress client.
struct AuditedSender {
    client: EgressClient,
    policy: EgressPolicy,
    redactor: Redactor,
    calls: Mutex<Vec<HttpCall>>,
}

#[async_trait::async_trait]
impl TokenSender for AuditedSender {
    async fn send_token_request(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let (result, hops) = self
            .client
            .send(&self.policy, SendMode::Live, request)
            .await;
        let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        calls.extend(hops.into_iter().map(|h| h.redacted(&self.redactor)));
        result
    }
}

/// Why an OAuth action outside a run failed.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    /// The callback's state is unknown, used or expired.
    #[error(
        "this authorisation link is unknown, used already or expired: start again with `airlock reauthorise … --oauth`"
    )]
    UnknownState,
    /// The installation is gone, or could not be loaded.
    #[error("{0}")]
    Installation(String),
    /// No token.
    #[error(transparent)]
    OAuth(#[from] OAuthFailure),
}

fn client_of(plugin: &Plugin, installation: &Installation) -> Result<OAuthClient, OAuthFailure> {
    let section = plugin.manifest.oauth.as_ref().ok_or_else(|| {
        OAuthFailure::NotConfigured(format!(
            "plugin {} declares no [oauth] in its manifest",
            plugin.label()
        ))
    })?;
    OAuthClient::new(section, &installation.config).map_err(OAuthFailure::NotConfigured)
}

fn sender(
    host: &Airlock,
    plugin: &Plugin,
    installation: &Installation,
) -> Result<AuditedSender, FlowError> {
    let policy = host
        .policy(plugin, installation)
        .map_err(|e| FlowError::Installation(e.to_string()))?;
    Ok(AuditedSender {
        client: host.egress_client().clone(),
        policy,
        redactor: installation.config.redactor(),
        calls: Mutex::new(Vec::new()),
    })
}

/// Records `sender`'s requests in the egress audit.
async fn audit(
    host: &Airlock,
    plugin: &Plugin,
    installation: &Installation,
    sender: AuditedSender,
) -> Result<(), FlowError> {
    let calls = sender.calls.into_inner().unwrap_or_else(|p| p.into_inner());
    host.audit_outside_runs(plugin, installation, OAUTH_FEED, calls)
        .await
        .map_err(|e| FlowError::OAuth(OAuthFailure::Unavailable(e.to_string())))
}

/// Starts the authorization-code flow for `installation`: the URL the
/// operator opens; its callback must reach `redirect_uri`.
pub async fn start_authorization(
    host: &Airlock,
    plugin: &Plugin,
    installation: &Installation,
    redirect_uri: &str,
) -> Result<AuthorizationStart, FlowError> {
    let client = client_of(plugin, installation)?;
    if !client.supports(crate::manifest::OAuthGrant::AuthorizationCode) {
        return Err(OAuthFailure::NotConfigured(format!(
            "plugin {} does not support the authorization_code grant (its [oauth] grants: {})",
            plugin.label(),
            client
                .section
                .grants
                .iter()
                .map(|g| g.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .into());
    }
    let now = chrono::Utc::now().timestamp();
    Ok(host
        .oauth_keeper()
        .start_authorization(&installation.scope(), &client, redirect_uri, now)
        .await?)
}

/// Gets and stores a token by client credentials for `installation`.
pub async fn client_credentials(
    host: &Airlock,
    plugin: &Plugin,
    installation: &Installation,
) -> Result<TokenSet, FlowError> {
    let client = client_of(plugin, installation)?;
    let sender = sender(host, plugin, installation)?;
    let now = chrono::Utc::now().timestamp();
    let got = host
        .oauth_keeper()
        .client_credentials(&installation.scope(), &client, &sender, now)
        .await;
    audit(host, plugin, installation, sender).await?;
    Ok(got?)
}

/// Finishes the authorization `state` names with the callback's `code`:
/// exchanges it (with the PKCE verifier) and stores the token set. Returns
/// `tenant/installation`.
pub async fn finish_authorization(
    host: &Airlock,
    state: &str,
    code: &str,
) -> Result<String, FlowError> {
    let now = chrono::Utc::now().timestamp();
    let keeper = host.oauth_keeper();
    let pending = keeper
        .take_authorization(state, now)
        .await?
        .ok_or(FlowError::UnknownState)?;
    let label = format!("{}/{}", pending.tenant, pending.installation);
    let row = lifecycle::installation_row(&**host.store(), &pending.tenant, &pending.installation)
        .await
        .map_err(|e| FlowError::Installation(e.to_string()))?;
    let (plugin, installation) = lifecycle::load(&**host.store(), host.keyring(), &row)
        .await
        .map_err(|e| FlowError::Installation(format!("{label}: {e}")))?;
    let client = client_of(&plugin, &installation)?;
    let sender = sender(host, &plugin, &installation)?;
    let got = keeper
        .finish_authorization(&pending, &client, &sender, code, now)
        .await;
    audit(host, &plugin, &installation, sender).await?;
    got?;
    Ok(label)
}
