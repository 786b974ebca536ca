//! The native API, `/api/v1` (see `spec/native-api.md`): `challenges.rs` has the
//! challenge handlers and `dto.rs` their request and response shapes; `policies.rs` and
//! `configuration.rs` are the management plane, each with its own shapes; `factors.rs`
//! is enrollment, with its own shapes; `devices.rs` is what a push device calls.

pub mod challenges;
pub mod configuration;
pub mod devices;
pub mod dto;
pub mod factors;
pub mod policies;

use actix_web::http::header::{HeaderValue, ALLOW};
use actix_web::{web, HttpRequest, HttpResponse};

use crate::api::ApiError;

/// 405, with the methods the path's documented operations use in `Allow`.
async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    let mut response = HttpResponse::from_error(ApiError::MethodNotAllowed);
    let allow = req
        .match_pattern()
        .and_then(|p| crate::api::openapi::allowed_methods(&p));
    if let Some(value) = allow.and_then(|a| HeaderValue::from_str(a).ok()) {
        response.headers_mut().insert(ALLOW, value);
    }
    response
}

/// A resource that answers JSON 405 (with `Allow`) to methods it does not route.
fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            .service(
                resource("/challenges")
                    .route(web::post().to(challenges::create))
                    .route(web::get().to(challenges::list)),
            )
            .service(
                resource("/challenges/{id}")
                    .route(web::get().to(challenges::get))
                    .route(web::delete().to(challenges::cancel)),
            )
            .service(resource("/challenges/{id}/answer").route(web::post().to(challenges::answer)))
            .service(
                resource("/challenges/{id}/complete").route(web::post().to(challenges::complete)),
            )
            .service(resource("/challenges/{id}/resend").route(web::post().to(challenges::resend)))
            .service(resource("/challenges/{id}/issue").route(web::post().to(challenges::issue)))
            .service(
                resource("/challenges/{id}/methods/{method_id}/start")
                    .route(web::post().to(challenges::start_method)),
            )
            .service(
                resource("/policies")
                    .route(web::post().to(policies::create))
                    .route(web::get().to(policies::list)),
            )
            .service(
                resource("/policies/{alias}")
                    .route(web::get().to(policies::get))
                    .route(web::put().to(policies::replace))
                    .route(web::delete().to(policies::delete)),
            )
            .service(resource("/webhooks/secret").route(web::get().to(challenges::webhook_secret)))
            .service(
                resource("/configuration")
                    .route(web::get().to(configuration::get))
                    .route(web::put().to(configuration::replace)),
            )
            .service(
                resource("/users/{user_id}/factors")
                    .route(web::post().to(factors::enroll))
                    .route(web::get().to(factors::list)),
            )
            .service(
                resource("/users/{user_id}/factors/{factor_id}")
                    .route(web::get().to(factors::get))
                    .route(web::delete().to(factors::delete)),
            )
            .service(
                resource("/users/{user_id}/factors/{factor_id}/verify")
                    .route(web::post().to(factors::verify)),
            )
            .service(resource("/devices/challenges").route(web::get().to(devices::list)))
            .service(
                resource("/devices/challenges/{id}/answer").route(web::post().to(devices::answer)),
            ),
    );
}
