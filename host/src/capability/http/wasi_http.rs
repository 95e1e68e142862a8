//! Standard `wasi:http/outgoing-handler` for guests, so a connector can use
//! its language's ordinary HTTP client (JavaScript `fetch`, for one). Every
//! request goes through the same [`EgressClient::send`](crate::egress::EgressClient::send) as
//! `airlock:connector/http`: same policy, test-mode suppression, redirect
//! checks, caps and audit. Only the error the guest sees differs: wasi:http's
//! `error-code` has no room for the rule, which the audit keeps.
//!
//! A wasi:http request body is a stream the guest writes while the request
//! is pending. The host reads it only once the request has one of the run's
//! in-flight slots, and stops reading at the host's request-body cap, so a
//! guest that streams without end, or starts many requests at once, cannot
//! grow host memory.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use tracing::Instrument;
use wasmtime::component::ResourceTable;
use wasmtime_wasi_http::{
    Error as WasiHttpError, RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks,
};

use super::HttpCapability;
use crate::egress::{DenialRule, HttpError, HttpRequest};

/// What one run's store holds for `wasi:http`: wasmtime-wasi-http's context
/// and the hooks that send through the run's [`HttpCapability`].
pub struct WasiHttpState {
    ctx: WasiHttpCtx,
    hooks: PolicyHooks,
}

impl WasiHttpState {
    /// The `wasi:http` state of a run whose HTTP capability is `http`.
    pub fn new(http: &HttpCapability) -> Self {
        Self {
            ctx: WasiHttpCtx::new(),
            hooks: PolicyHooks(http.clone()),
        }
    }

    /// The view wasmtime-wasi-http works through, over the store's resource
    /// `table` (shared with WASI).
    pub fn view<'a>(&'a mut self, table: &'a mut ResourceTable) -> WasiHttpCtxView<'a> {
        WasiHttpCtxView {
            ctx: &mut self.ctx,
            table,
            hooks: &mut self.hooks,
        }
    }
}

/// The hooks wasmtime-wasi-http calls to send a request: the run's
/// [`HttpCapability`], shared with `airlock:connector/http`.
struct PolicyHooks(HttpCapability);

/// What the guest sees for each way a request can fail.
fn guest_error(e: HttpError) -> WasiHttpError {
    match e {
        HttpError::Denied(d) if d.rule == DenialRule::ResolvedAddress => {
            WasiHttpError::DestinationIpProhibited
        }
        HttpError::Denied(_) => WasiHttpError::HttpRequestDenied,
        HttpError::SuppressedInTestMode => WasiHttpError::InternalError(Some(
            "suppressed-in-test-mode: not sent, the installation is in test mode".into(),
        )),
        HttpError::InvalidRequest(m) => {
            WasiHttpError::InternalError(Some(format!("invalid request: {m}")))
        }
        HttpError::Timeout => WasiHttpError::ConnectionTimeout,
        HttpError::ConnectionFailed(_) => WasiHttpError::ConnectionRefused,
        HttpError::ResponseTooLarge => WasiHttpError::HttpResponseBodySize(None),
    }
}

/// Reads a streamed body up to `max_bytes`, stopping as soon as it goes
/// over: the guest gets `HTTP-request-body-size`.
async fn collect_capped(body: WasiBody, max_bytes: usize) -> Result<Bytes, WasiHttpError> {
    match Limited::new(body, max_bytes).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) => match e.downcast::<WasiHttpError>() {
            Ok(inner) => Err(*inner),
            Err(_) => Err(WasiHttpError::HttpRequestBodySize(Some(max_bytes as u64))),
        },
    }
}

type IoFuture = Box<dyn Future<Output = Result<(), WasiHttpError>> + Send>;

impl WasiHttpHooks for PolicyHooks {
    /// The same headers `airlock:connector/http` refuses.
    fn forbidden_header_filter(&mut self) -> wasmtime_wasi_http::ForbiddenHeaderFilter {
        std::sync::Arc::new(|name| crate::egress::headers::forbidden(name.as_str()).is_some())
    }

    /// The host sets `Host` from the checked URL, never the guest.
    fn set_host_header(&mut self) -> bool {
        false
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: IoFuture,
    ) -> Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), WasiHttpError>> + Send>
    {
        let capability = self.0.clone();
        // The host call's span, made now (a child of the run's), since
        // wasmtime-wasi-http runs the future in a task of its own.
        let span = tracing::debug_span!("outgoing-handler.handle");
        let send = async move {
            let slot = capability.admit().await.map_err(guest_error)?;
            let (parts, body) = request.into_parts();
            let max_bytes = capability.client.limits().max_request_bytes;
            let body = collect_capped(body, max_bytes).await?;
            let headers = parts
                .headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let request = HttpRequest {
                method: parts.method.as_str().to_string(),
                url: parts.uri.to_string(),
                headers,
                body: (!body.is_empty()).then(|| body.to_vec()),
                timeout: options
                    .and_then(|o| o.first_byte_timeout.or(o.connect_timeout))
                    .map(|t| t.max(Duration::from_millis(1))),
            };
            let response = capability.send_admitted(request).await;
            drop(slot);
            let response = response.map_err(guest_error)?;
            let mut builder = http::Response::builder().status(response.status);
            for (name, value) in &response.headers {
                // The body is complete: framing headers from upstream no longer apply.
                if name != "transfer-encoding" && name != "content-length" {
                    builder = builder.header(name, value);
                }
            }
            let body = Full::new(Bytes::from(response.body))
                .map_err(|never| match never {})
                .boxed_unsync();
            let response = builder
                .body(body)
                .map_err(|e| WasiHttpError::InternalError(Some(e.to_string())))?;
            Ok((response, Box::new(async { Ok(()) }) as IoFuture))
        };
        Box::new(send.instrument(span))
    }
}
