//! Following a redirect: the next hop's request, built from the previous
//! one and the response's `Location`. The client checks that request like
//! any other before sending it.

use super::headers;
use super::request::{HttpRequest, HttpResponse};

/// The Location of a redirect response, if it is one.
pub(crate) fn target(response: &HttpResponse) -> Option<String> {
    if !matches!(response.status, 301 | 302 | 303 | 307 | 308) {
        return None;
    }
    response
        .headers
        .iter()
        .find(|(n, _)| n == "location")
        .map(|(_, v)| v.clone())
}

/// The next hop's request: the URL resolved against the current one; 303
/// (and 301/302 after POST) become GET without the body and the headers that
/// described it; only headers known to carry no credential go to another
/// origin. `None` when the location is not a URL.
pub(crate) fn next_request(
    previous: &HttpRequest,
    status: u16,
    location: &str,
) -> Option<HttpRequest> {
    let base = url::Url::parse(&previous.url).ok()?;
    let next = base.join(location).ok()?;
    let to_get = status == 303 || (matches!(status, 301 | 302) && previous.method == "POST");
    let same_origin = next.origin() == base.origin();
    let body_kept = !to_get && previous.body.is_some();
    let headers = previous
        .headers
        .iter()
        .filter(|(n, _)| headers::follows_redirect(n, same_origin, body_kept))
        .cloned()
        .collect();
    Some(HttpRequest {
        method: if to_get {
            "GET".to_string()
        } else {
            previous.method.clone()
        },
        url: next.to_string(),
        headers,
        body: if to_get { None } else { previous.body.clone() },
        timeout: previous.timeout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, body: bool) -> HttpRequest {
        HttpRequest {
            method: method.into(),
            url: "https://api.test/a/b?x=1".into(),
            headers: [
                ("Authorization", "Bearer t"),
                ("X-Api-Key", "k"),
                ("Cookie", "c=1"),
                ("Content-Type", "application/json"),
                ("Accept", "*/*"),
            ]
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
            body: body.then(|| b"{}".to_vec()),
            timeout: None,
        }
    }

    /// The next hop's method, URL, header names and whether it has a body.
    fn check(method: &str, status: u16, location: &str, expected: (&str, &str, &[&str], bool)) {
        let next = next_request(&request(method, true), status, location).expect("a URL");
        let names: Vec<&str> = next.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            (
                next.method.as_str(),
                next.url.as_str(),
                names.as_slice(),
                next.body.is_some()
            ),
            expected,
            "{method} {status} {location}"
        );
    }

    #[test]
    fn the_next_hop_keeps_only_what_is_safe_to_send_there() {
        let all = [
            "Authorization",
            "X-Api-Key",
            "Cookie",
            "Content-Type",
            "Accept",
        ];
        let no_body = ["Authorization", "X-Api-Key", "Cookie", "Accept"];
        check("GET", 302, "/c", ("GET", "https://api.test/c", &all, true));
        check(
            "POST",
            307,
            "c",
            ("POST", "https://api.test/a/c", &all, true),
        );
        check(
            "POST",
            308,
            "/c",
            ("POST", "https://api.test/c", &all, true),
        );
        check(
            "POST",
            303,
            "/c",
            ("GET", "https://api.test/c", &no_body, false),
        );
        check(
            "POST",
            302,
            "/c",
            ("GET", "https://api.test/c", &no_body, false),
        );
        check("PUT", 301, "/c", ("PUT", "https://api.test/c", &all, true));
        check(
            "POST",
            307,
            "https://other.test/c",
            (
                "POST",
                "https://other.test/c",
                &["Content-Type", "Accept"],
                true,
            ),
        );
        check(
            "POST",
            303,
            "https://other.test/c",
            ("GET", "https://other.test/c", &["Accept"], false),
        );
        let harmless: &[&str] = &["Content-Type", "Accept"];
        check(
            "GET",
            302,
            "http://api.test/c",
            ("GET", "http://api.test/c", harmless, true),
        );
        check(
            "GET",
            302,
            "https://api.test:8443/c",
            ("GET", "https://api.test:8443/c", harmless, true),
        );
        assert!(next_request(&request("GET", false), 302, "http://[::1").is_none());
    }
}
