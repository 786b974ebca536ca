//! Operations endpoints: `/healthz` (alive), `/readyz` (restore finished, store writable),
//! `/metrics` (Prometheus text), `/openapi.json` (generated from the handlers' and
//! DTOs' annotations).

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::error::{ErrorBody, ErrorDetail};
use super::native::{challenges, configuration, devices, dto, factors, policies};
use super::{authenticate, ApiError, State};
use crate::model::policy::{CodeAlphabet, Conditions, ResendMode, Template, Templates};
use crate::model::{
    ChallengeType, DetailField, Details, PolicyRef, PolicySpec, Properties, State as ChallengeState,
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics))
        .route("/openapi.json", web::get().to(openapi))
        .route("/.well-known/jwks.json", web::get().to(jwks));
}

/// The public keys of the tokens actions carry, for receivers to verify them.
async fn jwks(state: State) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "public, max-age=300"))
        .json(&state.jwks)
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// Ready once the restore has finished, and for as long as the store takes writes: after
/// a failed flush (sled keeps an I/O error until the database is reopened) it answers 503
/// for good, so that an orchestrator restarts the node.
async fn readyz(state: State) -> HttpResponse {
    if let Some(reason) = state.registry.services().store.failure() {
        return HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({"status": "storage_failed", "reason": reason}));
    }
    if state.registry.is_ready() {
        HttpResponse::Ok().json(serde_json::json!({"status": "ready"}))
    } else {
        HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "1"))
            .json(serde_json::json!({"status": "restoring"}))
    }
}

async fn metrics(req: HttpRequest, state: State) -> Result<HttpResponse, ApiError> {
    if state.settings.metrics.require_scope {
        let principal = authenticate(&req, &state)?;
        state.engine.authorize_metrics(&principal)?;
    }
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render()))
}

/// Middleware of the whole service: with a separate metrics listener (`metrics.listen`),
/// that listener serves `/metrics` only and the API's listener does not serve it; both
/// answer anything else 404 `not_found`.
pub async fn split_listeners(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let metrics_listener = req.app_data::<State>().and_then(|state| state.metrics_addr);
    let serves = match metrics_listener {
        None => true,
        Some(addr) => {
            let on_metrics = req.app_config().local_addr() == addr;
            on_metrics == (req.path() == "/metrics")
        }
    };
    if serves {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    let (req, _) = req.into_parts();
    let response = HttpResponse::from_error(ApiError::RouteNotFound);
    Ok(ServiceResponse::new(req, response).map_into_right_body())
}

async fn openapi(state: State) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(state.openapi.clone())
}

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut http = Http::new(HttpAuthScheme::Bearer);
        http.bearer_format = Some("JWT".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(http));
        let mut device = Http::new(HttpAuthScheme::Bearer);
        device.bearer_format = Some("JWT".into());
        device.description = Some(
            "A push device's own JWT: ES256, signed by its enrolled key, sub = the factor id, exp at most 300 s ahead"
                .into(),
        );
        components.add_security_scheme("device_jwt", SecurityScheme::Http(device));
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "challenge-server", description = "Native API v1: challenges for login and approval flows, their policies, each tenant's runtime configuration and users' enrolled factors, and the push device routes."),
    paths(
        challenges::create,
        challenges::get,
        challenges::list,
        challenges::answer,
        challenges::cancel,
        challenges::complete,
        challenges::issue,
        challenges::resend,
        challenges::start_method,
        challenges::webhook_secret,
        policies::create,
        policies::list,
        policies::get,
        policies::replace,
        policies::delete,
        configuration::get,
        configuration::replace,
        factors::enroll,
        factors::list,
        factors::get,
        factors::verify,
        factors::delete,
        devices::list,
        devices::answer
    ),
    components(schemas(
        dto::CreateChallenge,
        dto::ActorSpec,
        dto::Recipient,
        dto::AnswerRequest,
        dto::ChallengeDto,
        dto::ActorDto,
        dto::AnsweredBy,
        dto::AnonymousAnswerDto,
        dto::AnsweringActor,
        dto::AnswerResponse,
        dto::ChallengeList,
        dto::WebhookSecret,
        dto::WebauthnChallengeView,
        dto::DeliveryView,
        dto::MethodDto,
        dto::MethodStateDto,
        dto::MethodSpec,
        dto::ActionsSpec,
        dto::ActionSpec,
        dto::ActionsView,
        dto::ActionView,
        dto::ActionResultView,
        PolicyRef,
        policies::PolicyDto,
        policies::PolicyList,
        PolicySpec,
        Templates,
        Template,
        Conditions,
        CodeAlphabet,
        ResendMode,
        configuration::ConfigurationDto,
        Properties,
        factors::EnrollFactor,
        factors::VerifyFactor,
        factors::FactorDto,
        factors::FactorList,
        factors::TotpView,
        factors::PushView,
        factors::WebauthnView,
        factors::CredentialView,
        factors::RegistrationView,
        factors::NotificationConfig,
        devices::DeviceChallenge,
        devices::DeviceChallengeList,
        devices::DeviceAnswer,
        crate::factors::push::Platform,
        crate::factors::FactorType,
        crate::factors::FactorStatus,
        crate::factors::totp::Algorithm,
        ChallengeType,
        ChallengeState,
        Details,
        DetailField,
        ErrorBody,
        ErrorDetail
    )),
    modifiers(&BearerScheme)
)]
pub struct ApiDoc;
