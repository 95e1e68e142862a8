//! The token endpoint, without I/O: the requests for each grant (with the
//! client's authentication), the authorize URL, the token set a response
//! gives, and what an error response means.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::config::ConfigValues;
use crate::egress::{HttpRequest, HttpResponse};
use crate::manifest::{ClientAuth, OAuthGrant, OAuthSection};

/// How long before its expiry an access token is refreshed, seconds.
pub const REFRESH_MARGIN_SECS: i64 = 60;

/// Longest error description quoted from a token endpoint.
const MAX_DESCRIPTION: usize = 200;

/// An installation's tokens. `Debug` shows no token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenSet {
    /// The bearer token the guest gets.
    pub access_token: String,
    /// When it expires, Unix seconds, if the server said.
    pub expires_at: Option<i64>,
    /// The refresh token, the host's only.
    pub refresh_token: Option<String>,
    /// The scopes granted, space-separated, as the server said.
    pub scopes: String,
}

impl fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSet")
            .field("expires_at", &self.expires_at)
            .field("refresh_token", &self.refresh_token.is_some())
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

impl TokenSet {
    /// Whether the access token is still good `REFRESH_MARGIN_SECS` from
    /// `now` (a token without an expiry is taken as good).
    pub fn fresh_at(&self, now: i64) -> bool {
        self.expires_at
            .is_none_or(|at| at > now.saturating_add(REFRESH_MARGIN_SECS))
    }
}

/// Why the token endpoint gave no token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The server refused the grant or the client (`invalid_grant`,
    /// `invalid_client`…): only an operator can fix it.
    #[error("the authorisation server refused it: {0}")]
    Refused(String),
    /// The server could not be reached, failed (5xx, 429) or answered
    /// something that is not a token response: try again later.
    #[error("the token endpoint is unavailable: {0}")]
    Unavailable(String),
}

/// One grant's token request.
pub enum Grant<'a> {
    /// Exchange an authorization code (with the PKCE verifier if any).
    Code {
        /// The code the callback got.
        code: &'a str,
        /// The redirect URI the authorization used.
        redirect_uri: &'a str,
        /// The PKCE verifier.
        verifier: Option<&'a str>,
    },
    /// Refresh.
    Refresh {
        /// The current refresh token.
        refresh_token: &'a str,
    },
    /// Client credentials.
    ClientCredentials,
}

/// An installation's OAuth client: the manifest's `[oauth]` and the
/// operator's client id and secret. `Debug` shows no secret.
#[derive(Clone)]
pub struct OAuthClient {
    /// The manifest's `[oauth]`.
    pub section: OAuthSection,
    client_id: String,
    client_secret: String,
}

impl fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthClient")
            .field("token_url", &self.section.token_url)
            .finish_non_exhaustive()
    }
}

impl OAuthClient {
    /// The client of an installation whose config is `config`; an error
    /// naming the missing field if the client id or secret is not set.
    pub fn new(section: &OAuthSection, config: &ConfigValues) -> Result<Self, String> {
        let id_field = &section.client_id_field;
        let client_id = config
            .get(id_field)
            .or_else(|| config.secret(id_field))
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("config `{id_field}` (the OAuth client id) is not set"))?;
        let secret_field = &section.client_secret_field;
        let client_secret = config
            .secret(secret_field)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                format!("config `{secret_field}` (the OAuth client secret) is not set")
            })?;
        Ok(Self {
            section: section.clone(),
            client_id: client_id.to_string(),
            client_secret: client_secret.to_string(),
        })
    }

    /// Whether the plugin supports `grant`.
    pub fn supports(&self, grant: OAuthGrant) -> bool {
        self.section.grants.contains(&grant)
    }

    /// The URL the operator opens to consent: `response_type=code`, the
    /// client id, redirect URI, scopes, `state` and the PKCE challenge.
    pub fn authorize_url(
        &self,
        redirect_uri: &str,
        state: &str,
        challenge: Option<&str>,
    ) -> Result<String, String> {
        let base = self
            .section
            .authorize_url
            .as_deref()
            .ok_or("the plugin's [oauth] has no authorize_url")?;
        let mut url = url::Url::parse(base).map_err(|e| e.to_string())?;
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", &self.client_id)
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("scope", &self.section.scopes.join(" "))
                .append_pair("state", state);
            if let Some(challenge) = challenge {
                query
                    .append_pair("code_challenge", challenge)
                    .append_pair("code_challenge_method", "S256");
            }
        }
        Ok(url.into())
    }

    /// The token request for `grant`: a form POST to the token endpoint
    /// with the client's authentication.
    pub fn token_request(&self, grant: Grant<'_>) -> HttpRequest {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        match grant {
            Grant::Code {
                code,
                redirect_uri,
                verifier,
            } => {
                form.append_pair("grant_type", "authorization_code")
                    .append_pair("code", code)
                    .append_pair("redirect_uri", redirect_uri);
                if let Some(verifier) = verifier {
                    form.append_pair("code_verifier", verifier);
                }
            }
            Grant::Refresh { refresh_token } => {
                form.append_pair("grant_type", "refresh_token")
                    .append_pair("refresh_token", refresh_token);
            }
            Grant::ClientCredentials => {
                form.append_pair("grant_type", "client_credentials");
                if !self.section.scopes.is_empty() {
                    form.append_pair("scope", &self.section.scopes.join(" "));
                }
            }
        }
        let mut headers = vec![
            (
                "content-type".to_string(),
                "application/x-www-form-urlencoded".to_string(),
            ),
            ("accept".to_string(), "application/json".to_string()),
        ];
        match self.section.client_auth {
            ClientAuth::Basic => {
                let pair = format!("{}:{}", self.client_id, self.client_secret);
                headers.push((
                    "authorization".to_string(),
                    format!("Basic {}", STANDARD.encode(pair)),
                ));
            }
            ClientAuth::Body => {
                form.append_pair("client_id", &self.client_id)
                    .append_pair("client_secret", &self.client_secret);
            }
        }
        HttpRequest {
            method: "POST".to_string(),
            url: self.section.token_url.clone(),
            headers,
            body: Some(form.finish().into_bytes()),
            timeout: None,
        }
    }
}

/// A token response's JSON.
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<i64>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    scope: Option<String>,
}

/// Whether a token response's `token_type` names a bearer token: `bearer`
/// in any case (RFC 6749 §7.1), or the names eBay's identity service gives
/// its bearer tokens (`User Access Token`, `Application Access Token`),
/// which it sends as `Authorization: Bearer` like any other.
fn is_bearer_type(token_type: &str) -> bool {
    ["bearer", "user access token", "application access token"]
        .iter()
        .any(|t| token_type.trim().eq_ignore_ascii_case(t))
}

/// An error response's JSON (RFC 6749 §5.2).
#[derive(Deserialize)]
struct ErrorResponse {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// The token set `response` gives at `now`. A refresh answered without a
/// new refresh token keeps `previous_refresh`; `asked_scopes` stand in for
/// a response that names none.
pub fn token_set(
    response: &HttpResponse,
    now: i64,
    previous_refresh: Option<&str>,
    asked_scopes: &[String],
) -> Result<TokenSet, TokenError> {
    match response.status {
        200..=299 => {}
        429 | 500..=599 => {
            return Err(TokenError::Unavailable(format!(
                "it answered {}",
                response.status
            )));
        }
        status => return Err(error_response(status, &response.body)),
    }
    let parsed: TokenResponse = serde_json::from_slice(&response.body).map_err(|_| {
        TokenError::Unavailable(
            "its answer is not a token response (JSON with access_token)".into(),
        )
    })?;
    if parsed.access_token.is_empty()
        || parsed
            .token_type
            .as_deref()
            .is_some_and(|t| !is_bearer_type(t))
    {
        return Err(TokenError::Unavailable(
            "its answer has no bearer access token".into(),
        ));
    }
    Ok(TokenSet {
        access_token: parsed.access_token,
        expires_at: parsed
            .expires_in
            .map(|s| now.saturating_add(s.clamp(0, 10 * 365 * 86_400))),
        refresh_token: parsed
            .refresh_token
            .filter(|t| !t.is_empty())
            .or_else(|| previous_refresh.map(str::to_string)),
        scopes: parsed.scope.unwrap_or_else(|| asked_scopes.join(" ")),
    })
}

/// What a 4xx from the token endpoint means: the RFC 6749 error code and
/// its description (cut short, printable characters only), never the body.
fn error_response(status: u16, body: &[u8]) -> TokenError {
    match serde_json::from_slice::<ErrorResponse>(body) {
        Ok(e) => {
            let code = printable(&e.error, 64);
            let text = match e.error_description {
                Some(d) => format!("{code} ({})", printable(&d, MAX_DESCRIPTION)),
                None => code,
            };
            TokenError::Refused(text)
        }
        Err(_) => TokenError::Refused(format!("it answered {status}")),
    }
}

/// `text` with control characters dropped, cut at `max` characters.
fn printable(text: &str, max: usize) -> String {
    text.chars().filter(|c| !c.is_control()).take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(auth: ClientAuth) -> OAuthSection {
        OAuthSection {
            authorize_url: Some("https://login.example.com/authorize".into()),
            token_url: "https://id.example.com/token".into(),
            scopes: vec!["offline_access".into(), "accounting.read".into()],
            grants: vec![OAuthGrant::AuthorizationCode],
            client_auth: auth,
            pkce: true,
            client_id_field: "client_id".into(),
            client_secret_field: "client_secret".into(),
        }
    }

    fn client(auth: ClientAuth) -> OAuthClient {
        OAuthClient {
            section: section(auth),
            client_id: "CID".into(),
            client_secret: "s3cret".into(),
        }
    }

    fn response(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status,
            headers: vec![],
            body: body.as_bytes().to_vec(),
        }
    }

    fn body(r: &HttpRequest) -> String {
        String::from_utf8(r.body.clone().unwrap()).unwrap()
    }

    fn header<'a>(r: &'a HttpRequest, name: &str) -> Option<&'a str> {
        r.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn token_requests_carry_the_grant_and_the_clients_authentication() {
        let basic = client(ClientAuth::Basic);
        let r = basic.token_request(Grant::Code {
            code: "c o",
            redirect_uri: "https://h/oauth/callback",
            verifier: Some("v"),
        });
        assert_eq!(r.method, "POST");
        assert_eq!(r.url, "https://id.example.com/token");
        assert_eq!(
            body(&r),
            "grant_type=authorization_code&code=c+o&redirect_uri=https%3A%2F%2Fh%2Foauth%2Fcallback&code_verifier=v"
        );
        assert_eq!(header(&r, "authorization"), Some("Basic Q0lEOnMzY3JldA=="));
        let r = basic.token_request(Grant::Refresh {
            refresh_token: "rt",
        });
        assert_eq!(body(&r), "grant_type=refresh_token&refresh_token=rt");
        let r = client(ClientAuth::Body).token_request(Grant::ClientCredentials);
        assert_eq!(
            body(&r),
            "grant_type=client_credentials&scope=offline_access+accounting.read&client_id=CID&client_secret=s3cret"
        );
        assert_eq!(header(&r, "authorization"), None);
    }

    #[test]
    fn the_authorize_url_has_every_parameter() {
        let url = client(ClientAuth::Basic)
            .authorize_url("https://h/oauth/callback", "st", Some("ch"))
            .unwrap();
        assert_eq!(
            url,
            "https://login.example.com/authorize?response_type=code&client_id=CID&redirect_uri=https%3A%2F%2Fh%2Foauth%2Fcallback&scope=offline_access+accounting.read&state=st&code_challenge=ch&code_challenge_method=S256"
        );
    }

    /// What `body` with `status` gives at t=1000, after refresh token `old`.
    fn check(
        status: u16,
        body: &str,
        expected: Result<(&str, Option<i64>, Option<&str>), TokenError>,
    ) {
        let got = token_set(&response(status, body), 1000, Some("old"), &[])
            .map(|t| (t.access_token, t.expires_at, t.refresh_token));
        let expected = expected.map(|(a, e, r)| (a.to_string(), e, r.map(str::to_string)));
        assert_eq!(got, expected, "{status} {body}");
    }

    #[test]
    fn token_responses_and_errors() {
        check(
            200,
            r#"{"access_token":"at","token_type":"Bearer","expires_in":1800,"refresh_token":"new"}"#,
            Ok(("at", Some(2800), Some("new"))),
        );
        check(
            200,
            r#"{"access_token":"at","expires_in":60}"#,
            Ok(("at", Some(1060), Some("old"))),
        );
        check(
            400,
            r#"{"error":"invalid_grant","error_description":"used\nup"}"#,
            Err(TokenError::Refused("invalid_grant (usedup)".into())),
        );
        check(
            401,
            "nope",
            Err(TokenError::Refused("it answered 401".into())),
        );
        check(
            503,
            "",
            Err(TokenError::Unavailable("it answered 503".into())),
        );
        check(
            429,
            "",
            Err(TokenError::Unavailable("it answered 429".into())),
        );
        check(
            200,
            "<html>",
            Err(TokenError::Unavailable(
                "its answer is not a token response (JSON with access_token)".into(),
            )),
        );
        check(
            200,
            r#"{"access_token":"at","token_type":"User Access Token","expires_in":7200}"#,
            Ok(("at", Some(8200), Some("old"))),
        );
        check(
            200,
            r#"{"access_token":"at","token_type":"mac"}"#,
            Err(TokenError::Unavailable(
                "its answer has no bearer access token".into(),
            )),
        );
    }

    #[test]
    fn a_token_is_refreshed_a_minute_before_it_expires() {
        let set = |expires_at| TokenSet {
            access_token: "a".into(),
            expires_at,
            refresh_token: Some("r".into()),
            scopes: String::new(),
        };
        assert!(set(Some(1061)).fresh_at(1000));
        assert!(!set(Some(1060)).fresh_at(1000));
        assert!(set(None).fresh_at(1000));
        assert!(!format!("{:?}", set(None)).contains("\"a\""));
    }
}
