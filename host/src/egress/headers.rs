//! Which request headers a guest may set, and which follow a redirect. One
//! list for both HTTP interfaces: `airlock:connector/http` refuses a request
//! that sets a forbidden header (rule `header`), and `wasi:http` refuses to set
//! one (`header-error.forbidden`), through [`forbidden`].

/// Connection-level headers: they describe one hop, not the request, and
/// the host's HTTP client sets them itself.
pub const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "http2-settings",
];

/// Headers that name a different host, claim a client address or talk to a
/// proxy: a guest could use them to address what the policy did not check,
/// or to mislead the third party about where a request came from.
const RETARGETING: [&str; 10] = [
    "host",
    "forwarded",
    "via",
    "x-real-ip",
    "x-client-ip",
    "client-ip",
    "true-client-ip",
    "x-originating-ip",
    "x-cluster-client-ip",
    "cf-connecting-ip",
];

/// W3C Trace Context: the host adds the run's own when traces are on
/// ([`crate::telemetry`]); a guest's would claim another trace.
const TRACE_CONTEXT: [&str; 2] = ["traceparent", "tracestate"];

/// Why a guest may not set header `name` (any case), or `None` if it may.
pub fn forbidden(name: &str) -> Option<&'static str> {
    let n = name.to_ascii_lowercase();
    if HOP_BY_HOP.contains(&n.as_str()) {
        Some("a hop-by-hop header, set by the host's HTTP client")
    } else if TRACE_CONTEXT.contains(&n.as_str()) {
        Some("set by the host only: it carries the run's trace context")
    } else if RETARGETING.contains(&n.as_str())
        || n.starts_with("x-forwarded-")
        || n.starts_with("proxy-")
    {
        Some("set by the host only: it would retarget the request or claim another client")
    } else {
        None
    }
}

/// Headers describing a request's body: dropped with the body when a
/// redirect turns the request into a GET.
fn describes_body(name: &str) -> bool {
    name.starts_with("content-") || name == "digest"
}

/// Headers that may follow a redirect to another origin: only those known
/// to carry no credential. `Authorization`, `Cookie`, API keys, tokens and
/// any header this list does not name stay behind.
fn harmless_across_origins(name: &str) -> bool {
    matches!(
        name,
        "accept"
            | "accept-encoding"
            | "accept-language"
            | "cache-control"
            | "pragma"
            | "range"
            | "user-agent"
    ) || name.starts_with("if-")
        || describes_body(name)
}

/// Whether header `name` goes with the next hop of a redirect: to the same
/// origin, or not; with the body, or without it (a redirect that becomes GET).
pub fn follows_redirect(name: &str, same_origin: bool, body_kept: bool) -> bool {
    let n = name.to_ascii_lowercase();
    if !body_kept && describes_body(&n) {
        return false;
    }
    same_origin || harmless_across_origins(&n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, expected: (bool, bool, bool, bool)) {
        let got = (
            forbidden(name).is_some(),
            follows_redirect(name, true, false),
            follows_redirect(name, false, true),
            follows_redirect(name, false, false),
        );
        assert_eq!(
            got, expected,
            "{name}: (forbidden, same origin without body, other origin with body, other origin without body)"
        );
    }

    #[test]
    fn headers_are_judged_by_one_table() {
        check("Host", (true, true, false, false));
        check("Connection", (true, true, false, false));
        check("TE", (true, true, false, false));
        check("Transfer-Encoding", (true, true, false, false));
        check("Upgrade", (true, true, false, false));
        check("Forwarded", (true, true, false, false));
        check("X-Forwarded-For", (true, true, false, false));
        check("X-Real-IP", (true, true, false, false));
        check("Via", (true, true, false, false));
        check("Proxy-Authorization", (true, true, false, false));
        check("Traceparent", (true, true, false, false));
        check("tracestate", (true, true, false, false));
        check("Authorization", (false, true, false, false));
        check("Cookie", (false, true, false, false));
        check("X-Api-Key", (false, true, false, false));
        check("X-Shopify-Access-Token", (false, true, false, false));
        check("Accept", (false, true, true, true));
        check("If-None-Match", (false, true, true, true));
        check("Content-Type", (false, false, true, false));
        check("Content-Length", (false, false, true, false));
    }
}
