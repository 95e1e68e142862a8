//! Console sessions: a login exchanges an admin token for a session, kept
//! in this process's memory (a restart logs everyone out; several `serve`
//! processes would each need their own login, which one database allows
//! only one of anyway).
//!
//! - The session id is 32 bytes from the OS RNG, sent as the cookie
//!   `airlock_console` (`HttpOnly; SameSite=Strict; Path=/console`, and
//!   `Secure` when the request came over https through a proxy that says so
//!   with `X-Forwarded-Proto: https`). The map is keyed by the id's sha256,
//!   so not even a memory dump of the map gives a cookie to replay.
//! - A session holds the admin token's sha256, never its text. Every request
//!   looks the token up again: a revoked token's sessions stop working at
//!   their next request, and a token's permissions are always current.
//! - A session ends at logout, after [`IDLE`] without a request, or
//!   [`LIFETIME`] after login, whichever comes first.
//! - Each session has its own CSRF token (32 bytes from the OS RNG), put in
//!   every form and checked on every POST ([`super::form`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use subtle::ConstantTimeEq as _;

use super::ConsoleError;
use crate::admin::{self, Caller};
use crate::url_secret;
use crate::web::WebState;

/// The session cookie's name.
pub const COOKIE: &str = "airlock_console";

/// A session unused this long ends.
pub const IDLE: Duration = Duration::from_secs(2 * 60 * 60);

/// A session ends this long after its login, however busy.
pub const LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);

/// Sessions at most; past it the oldest logins end first.
const MAX_SESSIONS: usize = 10_000;

/// One logged-in browser.
#[derive(Debug, Clone)]
struct Session {
    /// The sha256 of the admin token it logged in with.
    token_hash: [u8; 32],
    /// The token every form of this session carries.
    csrf: String,
    /// When it logged in.
    created: Instant,
    /// When it was last used.
    last_seen: Instant,
}

/// The sessions of this process, by the sha256 of their id.
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<[u8; 32], Session>>,
}

/// A new session: the cookie's value, given to the browser once.
pub struct NewSession {
    /// The session id (the cookie's value).
    pub id: String,
}

impl Sessions {
    /// Starts a session for the token hashed `token_hash`.
    pub fn start(&self, token_hash: [u8; 32]) -> NewSession {
        let id = url_secret::generate();
        let now = Instant::now();
        let session = Session {
            token_hash,
            csrf: url_secret::generate(),
            created: now,
            last_seen: now,
        };
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, s| alive(s, now));
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map.iter().min_by_key(|(_, s)| s.created).map(|(k, _)| *k)
        {
            map.remove(&oldest);
        }
        map.insert(url_secret::hash(&id), session);
        NewSession { id }
    }

    /// The live session with id `id` (its idle time starts again).
    fn touch(&self, id: &str) -> Option<Session> {
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let key = url_secret::hash(id);
        let session = map.get_mut(&key)?;
        if !alive(session, now) {
            map.remove(&key);
            return None;
        }
        session.last_seen = now;
        Some(session.clone())
    }

    /// Ends session `id` (logout).
    pub fn end(&self, id: &str) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&url_secret::hash(id));
    }
}

fn alive(session: &Session, now: Instant) -> bool {
    now.duration_since(session.last_seen) < IDLE && now.duration_since(session.created) < LIFETIME
}

/// The session id the request's cookie carries.
pub fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
}

/// Whether the request came over https (through a proxy that says so).
fn over_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// The `Set-Cookie` value that gives the browser session `id`.
pub fn set_cookie(id: &str, headers: &HeaderMap) -> String {
    let secure = if over_https(headers) { "; Secure" } else { "" };
    format!(
        "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/console; Max-Age={}{secure}",
        LIFETIME.as_secs()
    )
}

/// The `Set-Cookie` value that makes the browser forget its session.
pub fn clear_cookie(headers: &HeaderMap) -> String {
    let secure = if over_https(headers) { "; Secure" } else { "" };
    format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/console; Max-Age=0{secure}")
}

/// Who is looking at a console page: the caller its session's token
/// authenticates now, and the session's CSRF token for its forms. A
/// request without a live session is sent to the login page.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// The admin token's caller.
    pub caller: Caller,
    /// The session's CSRF token.
    pub csrf: String,
    /// The session's id (to end it at logout).
    pub(super) session_id: String,
}

impl Viewer {
    /// Whether `presented` is this session's CSRF token (constant time).
    pub fn csrf_matches(&self, presented: &str) -> bool {
        bool::from(self.csrf.as_bytes().ct_eq(presented.as_bytes()))
    }
}

impl FromRequestParts<WebState> for Viewer {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, ConsoleError> {
        let id = cookie_value(&parts.headers).ok_or(ConsoleError::LoggedOut)?;
        let session = state.console.touch(&id).ok_or(ConsoleError::LoggedOut)?;
        let row = state
            .host
            .store()
            .admin_token_by_hash(session.token_hash)
            .await?;
        let Some(row) = row else {
            // Revoked since the login: the session is over.
            state.console.end(&id);
            return Err(ConsoleError::LoggedOut);
        };
        Ok(Viewer {
            caller: admin::caller_of(row),
            csrf: session.csrf,
            session_id: id,
        })
    }
}

impl OptionalFromRequestParts<WebState> for Viewer {
    type Rejection = ConsoleError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &WebState,
    ) -> Result<Option<Self>, ConsoleError> {
        match <Viewer as FromRequestParts<WebState>>::from_request_parts(parts, state).await {
            Ok(viewer) => Ok(Some(viewer)),
            Err(ConsoleError::LoggedOut) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_found_by_its_id_only_and_ends_at_logout() {
        let sessions = Sessions::default();
        let new = sessions.start([7; 32]);
        let found = sessions.touch(&new.id).unwrap();
        assert_eq!(found.token_hash, [7; 32]);
        assert!(found.csrf.len() >= 43);
        assert!(sessions.touch("not-it").is_none());
        // The map holds the id's hash, not the id.
        let map = format!("{:?}", sessions.map.lock().unwrap());
        assert!(!map.contains(&new.id));
        sessions.end(&new.id);
        assert!(sessions.touch(&new.id).is_none());
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_over_https() {
        let plain = set_cookie("abc", &HeaderMap::new());
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Strict"));
        assert!(plain.contains("Path=/console") && !plain.contains("Secure"));
        let mut https = HeaderMap::new();
        https.insert("x-forwarded-proto", "https".parse().unwrap());
        assert!(set_cookie("abc", &https).ends_with("; Secure"));
        let mut cookies = HeaderMap::new();
        cookies.insert(header::COOKIE, "a=1; airlock_console=xyz".parse().unwrap());
        assert_eq!(cookie_value(&cookies).as_deref(), Some("xyz"));
    }
}
