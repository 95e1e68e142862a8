//! The `airlock:connector/oauth` capability: the access token of the
//! installation, as one run sees it. Keeping, refreshing and storing the
//! tokens is [`TokenKeeper`]'s ([`crate::oauth`]); this module holds, for
//! one run, the installation's client, the run's HTTP capability its token
//! requests go through (counted and audited with the run), and what the run
//! learnt: the tokens it got by a refresh, and whether the third party
//! refused one of them (401) or the server refused the refresh, in which
//! case the run ends `error` saying reauthorisation is needed.
//!
//! The guest gets access tokens only: never the refresh token, and never
//! the client secret (the config capability hides its field).

mod host;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, Weak};

use wasmtime::component::{HasSelf, Linker};

use crate::capability::http::{HttpCapability, ResponseWatch};
use crate::egress::{HttpError, HttpRequest, HttpResponse};
use crate::oauth::{OAuthClient, OAuthFailure, TokenKeeper, TokenSender, TokenSet};
use crate::runtime::bindings::airlock::connector::oauth as wit;
use crate::storage::Scope;

/// What a run of a plugin with `[oauth]` is given.
#[derive(Clone)]
pub struct OAuthSetup {
    /// The installation's tokens.
    pub keeper: TokenKeeper,
    /// Its client, or why it has none (no client id or secret).
    pub client: Result<OAuthClient, String>,
    /// A `check()`: a missing authorisation is `not-configured` (a refused
    /// client or grant is not), and nothing the check meets flags the
    /// installation.
    pub checking: bool,
}

/// Access tokens one run may have renewed through `refresh` (each a token
/// request); more are refused with `unavailable`.
pub const MAX_RENEWALS_PER_RUN: usize = 3;

/// One run's OAuth state.
pub struct OAuthRun {
    setup: OAuthSetup,
    scope: Scope,
    http: HttpCapability,
    seen: Mutex<Seen>,
}

/// What the run learnt.
#[derive(Default)]
struct Seen {
    /// Access tokens the run got by a refresh (or a new grant).
    renewed: HashSet<String>,
    /// Why the installation needs reauthorising, once the run found out.
    reauthorisation: Option<String>,
}

/// The capability of one run: none for a plugin without `[oauth]`.
pub struct OAuthCapability {
    run: Option<Arc<OAuthRun>>,
}

impl OAuthCapability {
    /// The capability of a run of `scope`, sending through `http`; none
    /// without `setup`. Watches `http`'s responses for a 401 to a renewed
    /// token.
    pub fn new(setup: Option<OAuthSetup>, scope: Scope, http: &HttpCapability) -> Self {
        let run = setup.map(|setup| {
            Arc::new(OAuthRun {
                setup,
                scope,
                http: http.clone(),
                seen: Mutex::new(Seen::default()),
            })
        });
        if let Some(run) = &run {
            let weak: Weak<OAuthRun> = Arc::downgrade(run);
            http.watch_responses(weak);
        }
        Self { run }
    }

    /// Why the run must end `error` for reauthorisation, if it must.
    pub fn reauthorisation(&self) -> Option<String> {
        let run = self.run.as_ref()?;
        run.seen().reauthorisation.clone()
    }

    async fn token(&self) -> Result<TokenSet, OAuthFailure> {
        let run = self.configured()?;
        let client = run.client()?;
        let now = chrono::Utc::now().timestamp();
        let result = run
            .setup
            .keeper
            .fresh(&run.scope, client, &RunSender(&run.http), now)
            .await;
        run.settle(result, None)
    }

    async fn refresh(&self, rejected: &str) -> Result<TokenSet, OAuthFailure> {
        let run = self.configured()?;
        let client = run.client()?;
        // A guest that asks again and again would have the host hammer the
        // authorisation server (and rotate the refresh token each time).
        if run.seen().renewed.len() >= MAX_RENEWALS_PER_RUN {
            return Err(OAuthFailure::Unavailable(format!(
                "this run has renewed its access token {MAX_RENEWALS_PER_RUN} times: no more \
                 renewals in one run (docs/limits.md)"
            )));
        }
        let now = chrono::Utc::now().timestamp();
        let result = run
            .setup
            .keeper
            .refresh_rejected(&run.scope, client, &RunSender(&run.http), rejected, now)
            .await
            .map(|set| (set, true));
        run.settle(result, Some(rejected))
    }

    fn configured(&self) -> Result<&OAuthRun, OAuthFailure> {
        self.run.as_deref().ok_or_else(|| {
            OAuthFailure::NotConfigured("the plugin's manifest declares no [oauth]".into())
        })
    }
}

impl OAuthRun {
    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn client(&self) -> Result<&OAuthClient, OAuthFailure> {
        self.setup
            .client
            .as_ref()
            .map_err(|why| OAuthFailure::NotConfigured(why.clone()))
    }

    /// Notes what a token call found: a renewed token, or a refusal that
    /// needs an operator.
    fn settle(
        &self,
        result: Result<(TokenSet, bool), OAuthFailure>,
        rejected: Option<&str>,
    ) -> Result<TokenSet, OAuthFailure> {
        let mut seen = self.seen();
        match result {
            Ok((set, renewed)) => {
                if renewed || rejected.is_some_and(|r| r != set.access_token) {
                    seen.renewed.insert(set.access_token.clone());
                }
                Ok(set)
            }
            // A check of an installation not authorised yet proves what it
            // can without a token; a refused client or grant fails it.
            Err(OAuthFailure::NotAuthorised(why)) if self.setup.checking => {
                Err(OAuthFailure::NotConfigured(why))
            }
            Err(failure @ OAuthFailure::ReauthorisationNeeded(_)) if self.setup.checking => {
                Err(failure)
            }
            Err(OAuthFailure::ReauthorisationNeeded(why) | OAuthFailure::NotAuthorised(why)) => {
                seen.reauthorisation.get_or_insert_with(|| why.clone());
                Err(OAuthFailure::ReauthorisationNeeded(why))
            }
            Err(other) => Err(other),
        }
    }
}

impl ResponseWatch for OAuthRun {
    fn note_response(&self, status: u16, bearer: Option<&str>) {
        let Some(bearer) = bearer else { return };
        if status != 401 || self.setup.checking {
            return;
        }
        let mut seen = self.seen();
        if seen.renewed.contains(bearer) && seen.reauthorisation.is_none() {
            seen.reauthorisation = Some(format!(
                "reauthorisation needed: the third party refused a freshly refreshed access \
                 token (401): {}",
                crate::oauth::reauthorise_hint(&self.scope.tenant, &self.scope.installation)
            ));
        }
    }
}

/// A run's token requests go through its HTTP capability.
struct RunSender<'a>(&'a HttpCapability);

#[async_trait::async_trait]
impl TokenSender for RunSender<'_> {
    async fn send_token_request(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        self.0.send_for_host(request).await
    }
}

/// Registers `airlock:connector/oauth`, served by the [`OAuthCapability`]
/// that `get` finds in the store's data.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut OAuthCapability,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasSelf<OAuthCapability>>(linker, get)
}
