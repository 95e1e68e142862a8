//! WIT glue for `airlock:connector/http`.

use std::time::Duration;

use super::HttpCapability;
use crate::egress::{self, HttpError};
use crate::runtime::bindings::airlock::connector::http;

/// What the guest sees for each way a request can fail: a denial names the
/// rule that refused.
fn guest_http_error(e: HttpError) -> http::HttpError {
    match e {
        HttpError::Denied(d) => http::HttpError::Denied(http::Denial {
            rule: d.rule.as_str().to_string(),
            reason: d.reason,
        }),
        HttpError::SuppressedInTestMode => http::HttpError::SuppressedInTestMode,
        HttpError::InvalidRequest(m) => http::HttpError::InvalidRequest(m),
        HttpError::Timeout => http::HttpError::Timeout,
        HttpError::ConnectionFailed(m) => http::HttpError::ConnectionFailed(m),
        HttpError::ResponseTooLarge => http::HttpError::ResponseTooLarge,
    }
}

impl http::Host for HttpCapability {
    #[tracing::instrument(name = "http.send", level = "debug", skip_all)]
    async fn send(
        &mut self,
        request: http::Request,
    ) -> wasmtime::Result<Result<http::Response, http::HttpError>> {
        let request = egress::HttpRequest {
            method: request.method,
            url: request.url,
            headers: request.headers,
            body: request.body,
            timeout: request
                .timeout_ms
                .map(|ms| Duration::from_millis(ms.into())),
        };
        let result = HttpCapability::send(self, request).await;
        Ok(result
            .map(|r| http::Response {
                status: r.status,
                headers: r.headers,
                body: r.body,
            })
            .map_err(guest_http_error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::egress::{Denial, DenialRule};

    /// Maps `error` and compares what the guest sees, by its debug form.
    fn check(error: HttpError, expected: http::HttpError) {
        let what = format!("{error:?}");
        assert_eq!(
            format!("{:?}", guest_http_error(error)),
            format!("{expected:?}"),
            "for {what}"
        );
    }

    #[test]
    fn a_denial_reaches_the_guest_naming_its_rule() {
        check(
            HttpError::Denied(Denial::new(DenialRule::Port, "port 8443 is not granted")),
            http::HttpError::Denied(http::Denial {
                rule: "port".into(),
                reason: "port 8443 is not granted".into(),
            }),
        );
        check(
            HttpError::Denied(Denial::new(DenialRule::ResolvedAddress, "10.0.0.1")),
            http::HttpError::Denied(http::Denial {
                rule: "resolved-address".into(),
                reason: "10.0.0.1".into(),
            }),
        );
        check(
            HttpError::SuppressedInTestMode,
            http::HttpError::SuppressedInTestMode,
        );
        check(HttpError::Timeout, http::HttpError::Timeout);
        check(
            HttpError::ConnectionFailed("refused".into()),
            http::HttpError::ConnectionFailed("refused".into()),
        );
        check(
            HttpError::ResponseTooLarge,
            http::HttpError::ResponseTooLarge,
        );
        check(
            HttpError::InvalidRequest("no method".into()),
            http::HttpError::InvalidRequest("no method".into()),
        );
    }
}
