//! Per-request plumbing: a request id (taken from `X-Request-Id` when it is well formed), a
//! tracing span carrying it, one structured log line per request, and per-route metrics.
//! Bodies are never logged.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage};
use tracing::Instrument;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the request being served, for handlers that record it.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

fn incoming_id(req: &ServiceRequest) -> Option<String> {
    let value = req.headers().get(&REQUEST_ID)?.to_str().ok()?;
    let valid = !value.is_empty()
        && value.len() <= 64
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    valid.then(|| value.to_owned())
}

pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let request_id =
        incoming_id(&req).unwrap_or_else(|| format!("req_{}", uuid::Uuid::new_v4().simple()));
    let method = req.method().to_string();
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %method,
        route = tracing::field::Empty
    );
    let result = next.call(req).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    // Asked of the answered request: routing has run, so actix knows the matched resource. Asked
    // before it, actix would try every route's path pattern (a regex wherever a segment is
    // dynamic) a second time. Handlers' errors arrive here as responses; an `Err` has no route.
    let (status, route) = match &result {
        Ok(res) => (
            res.status().as_u16(),
            res.request()
                .match_pattern()
                .unwrap_or_else(|| "unmatched".to_owned()),
        ),
        Err(e) => (
            e.as_response_error().status_code().as_u16(),
            "unmatched".to_owned(),
        ),
    };
    span.record("route", route.as_str());
    span.in_scope(|| {
        tracing::info!(
            status,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            "request served"
        );
    });
    metrics::counter!("leasehold_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!("leasehold_http_request_duration_seconds", "method" => method, "route" => route)
        .record(elapsed.as_secs_f64());

    let mut res = result?;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        res.headers_mut().insert(REQUEST_ID, value);
    }
    Ok(res)
}
