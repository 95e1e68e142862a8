//! Published artifacts at `/feeds/{tenant}/{installation}/{name}`: the
//! current version of each, for whoever holds the installation's feed
//! access token (`?token=…` or `Authorization: Bearer …`).
//!
//! - A wrong, missing or rotated token, and an unknown tenant, installation
//!   or artifact, all get the same bare 404: the listener is no oracle.
//!   The token is compared by its sha256 in constant time, and never logged.
//! - `ETag` is the quoted sha256 of the bytes (`"…-gzip"` for the gzipped
//!   representation), `Last-Modified` the time it was published; a
//!   conditional GET or HEAD that matches gets 304.
//! - `Accept-Encoding: gzip` gets the body gzipped as it streams
//!   (`Content-Encoding: gzip`, `Vary: Accept-Encoding`); otherwise it comes
//!   with its `Content-Length`.
//! - The body streams from the store a chunk (1 MiB) at a time, never whole
//!   in memory; a version deleted by retention while a slow client reads it
//!   ends the response early (the client sees a short body and retries).

use std::io::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use flate2::Compression;
use flate2::write::GzEncoder;

use super::WebState;
use crate::artifacts::{check_name, token};
use crate::storage::{ArtifactVersion, Scope, Store};

/// The feed routes.
pub fn routes() -> Router<WebState> {
    Router::new().route(
        "/feeds/{tenant}/{installation}/{name}",
        get(serve_feed).head(serve_feed),
    )
}

/// Why no artifact is served.
enum Refused {
    /// Anything the caller got wrong: a bare 404.
    NotFound,
    /// The store failed: a bare 503.
    Unavailable,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::NotFound => StatusCode::NOT_FOUND.into_response(),
            Refused::Unavailable => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        }
    }
}

async fn serve_feed(
    State(state): State<WebState>,
    method: Method,
    path: Result<Path<(String, String, String)>, axum::extract::rejection::PathRejection>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let Ok(Path((tenant, installation, name))) = path else {
        return Refused::NotFound.into_response();
    };
    let presented = presented_token(query.as_deref(), &headers);
    let scope = Scope {
        tenant,
        installation,
    };
    let store = state.host.store().clone();
    match find(&*store, &scope, &name, presented.as_deref()).await {
        Ok(version) => respond(store, scope, version, &method, &headers),
        Err(refused) => refused.into_response(),
    }
}

/// The token from `?token=` or `Authorization: Bearer`.
fn presented_token(query: Option<&str>, headers: &HeaderMap) -> Option<String> {
    let from_query = query.and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned())
    });
    from_query.or_else(|| {
        let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, value) = auth.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| value.trim().to_string())
    })
}

/// The current version of `name`, if `presented` is the installation's
/// token and the installation is installed and enabled: what a trial
/// `airlock run` published under a name never installed, or what a
/// disabled installation published, is not served.
async fn find(
    store: &dyn Store,
    scope: &Scope,
    name: &str,
    presented: Option<&str>,
) -> Result<ArtifactVersion, Refused> {
    let ids_ok = [&scope.tenant, &scope.installation]
        .iter()
        .all(|id| crate::lifecycle::check_id(id).is_ok());
    if !ids_ok || check_name(name).is_err() {
        return Err(Refused::NotFound);
    }
    let stored = store
        .feed_token_hash(scope)
        .await
        .map_err(|_| Refused::Unavailable)?;
    if !token::matches(presented, stored.as_ref()) {
        return Err(Refused::NotFound);
    }
    let live = store
        .installation(&scope.tenant, &scope.installation)
        .await
        .map_err(|_| Refused::Unavailable)?
        .is_some_and(|row| row.removed_at.is_none() && row.enabled);
    if !live {
        return Err(Refused::NotFound);
    }
    store
        .artifact(scope, name, None)
        .await
        .map_err(|_| Refused::Unavailable)?
        .ok_or(Refused::NotFound)
}

/// Whether the client takes gzip (`gzip` or `x-gzip`, not at `q=0`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip")) && !refused
        })
}

/// Whether the client's cached copy is current: `If-None-Match` names
/// either representation's tag (or `*`), or, without it, the version was
/// published no later than `If-Modified-Since`.
fn not_modified(headers: &HeaderMap, version: &ArtifactVersion) -> bool {
    if let Some(tags) = headers.get(header::IF_NONE_MATCH) {
        let Ok(tags) = tags.to_str() else {
            return false;
        };
        return tags.split(',').map(str::trim).any(|tag| {
            let tag = tag.strip_prefix("W/").unwrap_or(tag);
            let tag = tag.trim_matches('"');
            tag == "*" || tag == version.sha256 || tag == format!("{}-gzip", version.sha256)
        });
    }
    let since = headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok());
    since.is_some_and(|since| {
        let since = since
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        version.published_at <= since
    })
}

fn http_date(secs: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
    httpdate::fmt_http_date(at)
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"))
}

/// The response for `version`: 304, headers only (HEAD), or the body.
fn respond(
    store: Arc<dyn Store>,
    scope: Scope,
    version: ArtifactVersion,
    method: &Method,
    headers: &HeaderMap,
) -> Response {
    let gzip = accepts_gzip(headers);
    let etag = if gzip {
        format!("\"{}-gzip\"", version.sha256)
    } else {
        format!("\"{}\"", version.sha256)
    };
    let mut out = HeaderMap::new();
    out.insert(header::ETAG, header_value(&etag));
    out.insert(
        header::LAST_MODIFIED,
        header_value(&http_date(version.published_at)),
    );
    out.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    out.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    if not_modified(headers, &version) {
        return (StatusCode::NOT_MODIFIED, out).into_response();
    }
    // What a guest chose as its content type is served as data, never as
    // an active page of the listener's origin.
    out.insert(header::CONTENT_TYPE, header_value(&version.content_type));
    out.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    out.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox"),
    );
    if gzip {
        out.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    } else {
        out.insert(header::CONTENT_LENGTH, HeaderValue::from(version.size));
    }
    if method == Method::HEAD {
        return (StatusCode::OK, out, Body::empty()).into_response();
    }
    let body = Body::from_stream(chunks(store, scope, version, gzip));
    (StatusCode::OK, out, body).into_response()
}

/// Where a streamed body is.
struct Reading {
    store: Arc<dyn Store>,
    scope: Scope,
    version: ArtifactVersion,
    next: i64,
    gzip: Option<GzEncoder<Vec<u8>>>,
}

/// The body of `version`, chunk by chunk from the store, gzipped as it
/// goes if `gzip`.
fn chunks(
    store: Arc<dyn Store>,
    scope: Scope,
    version: ArtifactVersion,
    gzip: bool,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    let reading = Reading {
        store,
        scope,
        version,
        next: 0,
        gzip: gzip.then(|| GzEncoder::new(Vec::new(), Compression::fast())),
    };
    futures_util::stream::try_unfold(reading, |mut r| async move {
        loop {
            if r.next >= r.version.chunks {
                let Some(encoder) = r.gzip.take() else {
                    return Ok(None);
                };
                let tail = encoder.finish()?;
                return Ok(Some((Bytes::from(tail), r)));
            }
            let chunk = r
                .store
                .artifact_chunk(&r.scope, r.version.id, r.next)
                .await
                .map_err(std::io::Error::other)?
                .ok_or_else(|| std::io::Error::other("the version was deleted while served"))?;
            r.next += 1;
            let Some(encoder) = r.gzip.as_mut() else {
                return Ok(Some((Bytes::from(chunk), r)));
            };
            crate::blocking::in_place(|| encoder.write_all(&chunk))?;
            let compressed = std::mem::take(encoder.get_mut());
            if !compressed.is_empty() {
                return Ok(Some((Bytes::from(compressed), r)));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn gzip_is_taken_when_asked_and_not_refused() {
        for (value, expected) in [
            ("gzip", true),
            ("deflate, gzip;q=0.5", true),
            ("br, x-gzip", true),
            ("gzip;q=0", false),
            ("identity", false),
            ("", false),
        ] {
            let h = headers(&[(header::ACCEPT_ENCODING, value)]);
            assert_eq!(accepts_gzip(&h), expected, "{value:?}");
        }
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    fn version() -> ArtifactVersion {
        ArtifactVersion {
            id: 1,
            name: "feed.xml".into(),
            version: 1,
            content_type: "text/xml".into(),
            size: 3,
            sha256: "abc".into(),
            published_at: 1_700_000_000,
            run_id: None,
            chunks: 1,
        }
    }

    #[test]
    fn a_cached_copy_is_current_by_its_tag_or_else_its_date() {
        let v = version();
        let check = |h: &[(header::HeaderName, &str)], expected: bool| {
            assert_eq!(not_modified(&headers(h), &v), expected, "{h:?}");
        };
        check(&[(header::IF_NONE_MATCH, "\"abc\"")], true);
        check(&[(header::IF_NONE_MATCH, "W/\"abc-gzip\"")], true);
        check(&[(header::IF_NONE_MATCH, "\"old\", \"abc\"")], true);
        check(&[(header::IF_NONE_MATCH, "*")], true);
        check(&[(header::IF_NONE_MATCH, "\"old\"")], false);
        let published = http_date(v.published_at);
        let earlier = http_date(v.published_at - 1);
        check(&[(header::IF_MODIFIED_SINCE, &published)], true);
        check(&[(header::IF_MODIFIED_SINCE, &earlier)], false);
        check(&[(header::IF_MODIFIED_SINCE, "not a date")], false);
        // A tag that does not match wins over a date that would.
        check(
            &[
                (header::IF_NONE_MATCH, "\"old\""),
                (header::IF_MODIFIED_SINCE, &published),
            ],
            false,
        );
    }

    #[test]
    fn the_token_comes_from_the_query_or_a_bearer_header() {
        let none = HeaderMap::new();
        assert_eq!(
            presented_token(Some("token=a%2Bb"), &none).as_deref(),
            Some("a+b")
        );
        assert_eq!(
            presented_token(Some("x=1&token=t"), &none).as_deref(),
            Some("t")
        );
        let bearer = headers(&[(header::AUTHORIZATION, "Bearer t2")]);
        assert_eq!(presented_token(None, &bearer).as_deref(), Some("t2"));
        let basic = headers(&[(header::AUTHORIZATION, "Basic dDI=")]);
        assert_eq!(presented_token(None, &basic), None);
        assert_eq!(presented_token(None, &none), None);
    }
}
