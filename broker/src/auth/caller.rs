//! The `Caller` extractor: resolves `Authorization: Bearer <token>` for every protected handler,
//! with the request facts that policy conditions look at, and audits every token it refuses.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use uuid::Uuid;

use actix_web::HttpMessage;

use crate::api::{ApiError, AppState, RequestId};
use crate::audit::{AuditEvent, Decision, EventType};
use crate::auth::token::is_live;
use crate::domain::Tenant;
use crate::policy::Subject;
use crate::store::TokenRow;

/// The header that carries a change or incident ticket, for `ticketRequired` conditions.
pub const TICKET_HEADER: &str = "x-leasehold-ticket";

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub token_id: Uuid,
    pub principal: String,
    pub tenant: Tenant,
    pub is_admin: bool,
    pub mfa: bool,
    pub source_cluster: Option<String>,
    /// The peer address of the connection (proxies are not trusted).
    pub source_ip: Option<IpAddr>,
    pub ticket: Option<String>,
    /// The request id the audit trail records.
    pub request_id: Option<String>,
    /// HMAC of the token's text: how the audit trail names the token.
    pub token_hmac: String,
}

impl Caller {
    pub fn subject(&self) -> Subject<'_> {
        Subject {
            principal: &self.principal,
            mfa: self.mfa,
            source_cluster: self.source_cluster.as_deref(),
            source_ip: self.source_ip,
            has_ticket: self.ticket.is_some(),
        }
    }
}

/// The bearer token of a request.
///
/// # Errors
/// 401 naming what is missing or malformed.
pub fn bearer(req: &HttpRequest) -> Result<String, ApiError> {
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::Unauthorized(
                "missing credentials: send the header `Authorization: Bearer <token>`".into(),
            )
        })?;
    let value = header
        .to_str()
        .map_err(|_| ApiError::Unauthorized("the Authorization header is not valid text".into()))?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::Unauthorized(
                "the Authorization header must have the form `Bearer <token>`".into(),
            )
        })?;
    Ok(token.to_owned())
}

/// The facts about a request that policy conditions read.
pub struct RequestFacts {
    source_ip: Option<IpAddr>,
    ticket: Option<String>,
    request_id: Option<String>,
}

impl RequestFacts {
    pub fn of(req: &HttpRequest) -> Self {
        Self {
            // IPv4 clients of a dual-stack listener arrive as ::ffff:a.b.c.d.
            source_ip: req.peer_addr().map(|a| a.ip().to_canonical()),
            ticket: req
                .headers()
                .get(TICKET_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|t| !t.is_empty() && t.len() <= 512)
                .map(str::to_owned),
            request_id: req.extensions().get::<RequestId>().map(|id| id.0.clone()),
        }
    }
}

impl Caller {
    /// The caller that the presented `token` stands for, given the store's row for it (`None`:
    /// unknown) and the facts of its request.
    ///
    /// # Errors
    /// 401 for an unknown, expired or revoked token, after its `LOGIN` deny event
    /// ([`refuse_token`]).
    pub async fn authenticate(
        state: &AppState,
        row: Option<TokenRow>,
        token: &str,
        facts: RequestFacts,
    ) -> Result<Self, ApiError> {
        let token_hmac = state.token_hmac.of(token);
        match row {
            Some(row) if is_live(&row) => Self::from_parts(row, facts, token_hmac),
            row => Err(refuse_token(state, row.as_ref(), token_hmac, &facts).await),
        }
    }

    fn from_parts(
        row: TokenRow,
        facts: RequestFacts,
        token_hmac: String,
    ) -> Result<Self, ApiError> {
        let tenant = Tenant::parse(&row.tenant)
            .map_err(|_| ApiError::Internal("stored token has an invalid tenant".into()))?;
        Ok(Caller {
            token_id: row.id,
            principal: row.principal,
            tenant,
            is_admin: row.is_admin,
            mfa: row.mfa,
            source_cluster: row.source_cluster,
            source_ip: facts.source_ip,
            ticket: facts.ticket,
            request_id: facts.request_id,
            token_hmac,
        })
    }
}

/// The 401 for a presented token the store does not know (`row` is `None`) or no longer
/// honours, after a `LOGIN` deny event that names the token only by its HMAC, and a known one
/// by its principal and tenant too: the use of a leaked, revoked or expired token shows in the
/// trail. An unknown token's event goes to the `_unknown` tenant. A refusal stays a 401 even if
/// its event cannot be written (the audit log counts and logs that).
pub async fn refuse_token(
    state: &AppState,
    row: Option<&TokenRow>,
    token_hmac: String,
    facts: &RequestFacts,
) -> ApiError {
    let reason = match row {
        None => "unknown token",
        Some(row) if row.revoked_at.is_some() => "revoked token",
        Some(_) => "expired token",
    };
    metrics::counter!("leasehold_login_failures_total", "method" => "token").increment(1);
    let mut event = AuditEvent::system(
        row.map_or("_unknown", |r| r.tenant.as_str()),
        EventType::Login,
    )
    .detail("method", "token")
    .detail("reason", reason)
    .detail("tokenId", row.map(|r| r.id.to_string()))
    .detail("tokenHmac", token_hmac);
    event.principal = row.map_or("unknown", |r| r.principal.as_str()).to_owned();
    event.decision = Decision::Deny.as_str().to_owned();
    event.source_ip = facts.source_ip.map(|ip| ip.to_string());
    event.request_id.clone_from(&facts.request_id);
    let _ = state.audit.record(event).await;
    invalid_token()
}

/// The 401 for a token the store does not know, or no longer honours.
fn invalid_token() -> ApiError {
    ApiError::Unauthorized("the token is invalid, expired or revoked".into())
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = bearer(req);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let facts = RequestFacts::of(req);
        Box::pin(async move {
            let token = zeroize::Zeroizing::new(token?);
            let state =
                state.ok_or_else(|| ApiError::Internal("application state missing".into()))?;
            let row = state.tokens.find(&token).await?;
            Caller::authenticate(&state, row, &token, facts).await
        })
    }
}
