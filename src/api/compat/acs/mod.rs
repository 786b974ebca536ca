//! The OneWelcome ACS face (`/compat/acs/v1/…`, spec/onewelcome-acs.md): the native
//! Core, Management (policies) and Global Configuration APIs in ACS naming — camelCase
//! fields, upper-case enums (`EMAIL_OTP`, `ISSUED`), `policyAlias`,
//! `remainingAttempts`, `remainingResends` — with the native bearer tokens and scopes.
//! Translation only: `dto.rs` holds the shapes and their translation to and from the
//! native ones, `errors.rs` the native errors in ACS names, `challenges.rs` and
//! `policies.rs` the handlers, each making the engine call its native twin makes.
//! See README.md "OneWelcome ACS".

pub mod challenges;
pub mod dto;
pub mod errors;
pub mod policies;

use actix_web::http::header::{HeaderValue, ALLOW};
use actix_web::{web, HttpResponse, ResponseError};

use self::errors::AcsError;
use crate::api::ApiError;

/// A resource that answers 405 (with `Allow: allow`) to methods it does not route.
fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move || async move {
        let mut response: HttpResponse =
            AcsError::from(ApiError::MethodNotAllowed).error_response();
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static(allow));
        response
    }))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/compat/acs/v1")
            .service(
                resource("/challenges", "GET, POST")
                    .route(web::post().to(challenges::create))
                    .route(web::get().to(challenges::list)),
            )
            .service(
                resource("/challenges/{id}", "GET, DELETE")
                    .route(web::get().to(challenges::get))
                    .route(web::delete().to(challenges::cancel)),
            )
            .service(
                resource("/challenges/{id}/answer", "POST")
                    .route(web::post().to(challenges::answer)),
            )
            .service(
                resource("/challenges/{id}/complete", "POST")
                    .route(web::post().to(challenges::complete)),
            )
            .service(
                resource("/challenges/{id}/resend", "POST")
                    .route(web::post().to(challenges::resend)),
            )
            .service(
                resource("/policies", "GET, POST")
                    .route(web::post().to(policies::create))
                    .route(web::get().to(policies::list)),
            )
            .service(
                resource("/policies/{alias}", "GET, PUT, DELETE")
                    .route(web::get().to(policies::get))
                    .route(web::put().to(policies::replace))
                    .route(web::delete().to(policies::delete)),
            )
            .service(
                resource("/configuration", "GET, PUT")
                    .route(web::get().to(policies::configuration))
                    .route(web::put().to(policies::replace_configuration)),
            ),
    );
}
