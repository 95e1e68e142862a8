//! A console form as posted: refused unless it comes from a page of this
//! console. Two checks, both on every POST:
//! - the `Origin` header, when the browser sends one (every current browser
//!   does on a POST), must be this host's own (`Host`): a form on another
//!   site cannot post here;
//! - the form's `csrf` field must be the session's CSRF token
//!   ([`super::session`]), which only this console's pages carry.
//!
//! With the session cookie's `SameSite=Strict` that is three locks on the
//! same door.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{HeaderMap, header};

use super::ConsoleError;
use super::session::Viewer;
use crate::web::WebState;

/// The most a form's body may hold (a config form is small).
const MAX_FORM: usize = 256 * 1024;

/// A form's fields, in the order posted.
#[derive(Debug, Clone, Default)]
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    /// The first value of `name`, if posted.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `name`, or an error naming it.
    pub fn required(&self, name: &str) -> Result<&str, ConsoleError> {
        self.get(name)
            .ok_or_else(|| ConsoleError::BadRequest(format!("the form has no `{name}`")))
    }

    /// `name` as a number, or an error naming it.
    pub fn number(&self, name: &str) -> Result<i64, ConsoleError> {
        self.required(name)?
            .trim()
            .parse()
            .map_err(|_| ConsoleError::BadRequest(format!("`{name}` is not a number")))
    }
}

/// Refuses a request whose `Origin` is not this host.
pub fn check_origin(headers: &HeaderMap) -> Result<(), ConsoleError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest);
    match (origin_host, host) {
        (Some(o), Some(h)) if o.eq_ignore_ascii_case(h) => Ok(()),
        _ => Err(ConsoleError::Forbidden(
            "this form was posted from another site".into(),
        )),
    }
}

/// Parses an `application/x-www-form-urlencoded` body.
pub fn parse(body: &[u8]) -> Fields {
    Fields(
        url::form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
    )
}

/// Reads a request's form body within 256 KiB, after its origin check.
pub async fn read(req: Request, state: &WebState) -> Result<(HeaderMap, Fields), ConsoleError> {
    check_origin(req.headers())?;
    let headers = req.headers().clone();
    let body = Bytes::from_request(req, state)
        .await
        .map_err(|_| ConsoleError::BadRequest("the form could not be read".into()))?;
    if body.len() > MAX_FORM {
        return Err(ConsoleError::BadRequest("the form is too large".into()));
    }
    Ok((headers, parse(&body)))
}

/// A form posted by a logged-in viewer, its origin and CSRF token checked.
pub struct Posted {
    /// Who posted it.
    pub viewer: Viewer,
    /// Its fields.
    pub fields: Fields,
}

impl FromRequest<WebState> for Posted {
    type Rejection = ConsoleError;

    async fn from_request(req: Request, state: &WebState) -> Result<Self, ConsoleError> {
        let (mut parts, body) = req.into_parts();
        let viewer =
            <Viewer as FromRequestParts<WebState>>::from_request_parts(&mut parts, state).await?;
        let (_, fields) = read(Request::from_parts(parts, body), state).await?;
        match fields.get("csrf") {
            Some(token) if viewer.csrf_matches(token) => Ok(Posted { viewer, fields }),
            _ => Err(ConsoleError::Forbidden(
                "this form's security token is missing or out of date: reload the page and try \
                 again"
                    .into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(origin: Option<&str>, host: &str, ok: bool) {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, host.parse().unwrap());
        if let Some(o) = origin {
            headers.insert(header::ORIGIN, o.parse().unwrap());
        }
        assert_eq!(check_origin(&headers).is_ok(), ok, "{origin:?} {host}");
    }

    #[test]
    fn only_this_hosts_origin_may_post() {
        check(None, "127.0.0.1:8440", true);
        check(Some("http://127.0.0.1:8440"), "127.0.0.1:8440", true);
        check(Some("https://airlock.example"), "airlock.example", true);
        check(Some("http://evil.example"), "127.0.0.1:8440", false);
        check(Some("http://127.0.0.1:9999"), "127.0.0.1:8440", false);
        check(Some("null"), "127.0.0.1:8440", false);
    }

    #[test]
    fn fields_are_decoded_in_order() {
        let f = parse(b"a=1&b=x+y%21&a=2");
        assert_eq!(f.get("a"), Some("1"));
        assert_eq!(f.get("b"), Some("x y!"));
        assert!(f.required("c").is_err());
        assert!(f.number("b").is_err());
    }
}
