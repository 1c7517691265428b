//! The HTTP API: routes, extractors, error mapping, request plumbing and the OpenAPI document.
//!
//! Every handler is registered through `utoipa_actix_web`, which collects its `#[utoipa::path]`
//! description as it registers the route, so `/v1/openapi.json` cannot drift from the routes.

mod access;
mod audit;
mod backends;
mod error;
mod json;
mod kms;
mod leases;
mod middleware;
mod revocations;
mod roles;
mod rotations;
mod secrets;
mod sys;

use std::sync::Arc;

use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{App, HttpResponse, web};
use metrics_exporter_prometheus::PrometheusHandle;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::AppExt;

pub use error::{ApiError, ErrorBody};
pub use json::{JsonBody, JsonBodyOrEmpty, QueryParams};
pub use middleware::RequestId;

use crate::audit::{AuditLog, TokenHmac};
use crate::auth::{Access, BreakGlass, TokenService};
use crate::crypto::Kms;
use crate::dynamic::{BackendService, LeaseService, RoleService};
use crate::revocations::RevocationService;
use crate::rewrap::RewrapService;
use crate::rotation::{RotationService, StaticRoleService};
use crate::secrets::SecretService;
use crate::store::Store;

/// Everything a handler may need, shared by all workers.
pub struct AppState {
    pub store: Store,
    pub kms: Arc<dyn Kms>,
    pub secrets: SecretService,
    pub tokens: TokenService,
    pub access: Access,
    pub audit: AuditLog,
    /// Names tokens in audit events without revealing them.
    pub token_hmac: TokenHmac,
    pub break_glass: BreakGlass,
    pub metrics: PrometheusHandle,
    /// Request bodies above this many bytes are refused with 413 before they are parsed.
    pub max_body_bytes: usize,
    pub backends: BackendService,
    pub roles: Arc<RoleService>,
    pub leases: Arc<LeaseService>,
    pub revocations: RevocationService,
    /// How long a mass revocation's fence holds by default.
    pub revocation_fence: std::time::Duration,
    pub rewrap: RewrapService,
    pub rotation: RotationService,
    pub static_roles: StaticRoleService,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Leasehold",
        description = "Dynamic-credentials lease broker and static secret store."
    ),
    modifiers(&BearerAuth),
    components(schemas(ErrorBody))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// Builds the application: every route, its OpenAPI description and the request plumbing.
pub fn app(
    state: web::Data<AppState>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let max_body = state.max_body_bytes;
    App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .app_data(state)
        .app_data(web::PayloadConfig::new(max_body))
        .app_data(web::PathConfig::default().error_handler(json::path_error))
        // Reads are the hot path and actix tries each route's pattern (a regex wherever a
        // segment is dynamic) in order before it looks at the method: the read route comes
        // first, after only the GET id routes it would otherwise shadow (their first segment
        // must be a UUID, see the `secrets` module docs).
        .service(secrets::secret_metadata)
        .service(rotations::get_rotation_policy)
        .service(secrets::read_secret)
        .service(sys::health)
        .service(sys::metrics)
        .service(sys::whoami)
        .service(kms::kms_status)
        .service(kms::rewrap)
        .service(access::tokens::mint_token)
        .service(access::tokens::token_info)
        .service(access::tokens::revoke_token)
        .service(access::kubernetes::kubernetes_login)
        .service(access::kubernetes::put_kubernetes_role)
        .service(access::kubernetes::delete_kubernetes_role)
        // `simulate` before `{name}`: a POST there is always a simulation.
        .service(access::policies::simulate)
        .service(access::policies::list_policies)
        .service(access::policies::put_policy)
        .service(access::policies::get_policy)
        .service(access::policies::delete_policy)
        .service(access::policies::put_group)
        .service(audit::events)
        .service(audit::verify)
        .service(audit::summary)
        .service(access::break_glass::open_break_glass)
        .service(access::break_glass::list_break_glass)
        .service(access::break_glass::end_break_glass)
        .service(backends::list_backends)
        .service(backends::put_backend)
        .service(backends::get_backend)
        .service(backends::delete_backend)
        .service(backends::verify_backend)
        .service(backends::rotate_root)
        .service(roles::list_roles)
        .service(roles::put_role)
        .service(roles::get_role)
        .service(roles::delete_role)
        .service(leases::issue_lease)
        .service(leases::list_leases)
        .service(leases::get_lease)
        .service(leases::renew_lease)
        .service(leases::revoke_lease)
        .service(leases::force_revoke_lease)
        .service(revocations::start_revocation)
        .service(revocations::list_revocations)
        .service(revocations::get_revocation)
        .service(revocations::lift_fence)
        .service(rotations::list_rotations)
        .service(rotations::overdue_rotations)
        .service(rotations::get_rotation)
        .service(rotations::promote_rotation)
        .service(rotations::put_static_role)
        .service(rotations::get_static_role)
        .service(rotations::static_role_credentials)
        .service(rotations::rotate_static_role)
        .service(secrets::create_secret)
        .service(secrets::list_secrets)
        .service(secrets::update_secret)
        .service(secrets::create_version)
        .service(secrets::promote_alias)
        .service(secrets::disable_version)
        .service(secrets::enable_version)
        .service(secrets::destroy_version)
        .service(rotations::put_rotation_policy)
        .service(rotations::rotate_secret)
        .service(rotations::rollback_secret)
        .openapi_service(|api| {
            web::resource("/v1/openapi.json").route(web::get().to(move || {
                let api = api.clone();
                async move { HttpResponse::Ok().json(api) }
            }))
        })
        .into_app()
        .default_service(web::to(|| async {
            actix_web::ResponseError::error_response(&ApiError::NotFound(
                "no such route; GET /v1/openapi.json lists every route".into(),
            ))
        }))
        .wrap(actix_web::middleware::from_fn(middleware::observe))
}
