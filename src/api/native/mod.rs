//! The native API, `/api/v1` (see `spec/native-api.md`): `challenges.rs` has the
//! handlers, `dto.rs` the request and response shapes.

pub mod challenges;
pub mod dto;

use actix_web::{web, HttpResponse};

use crate::api::ApiError;

async fn method_not_allowed() -> HttpResponse {
    HttpResponse::from_error(ApiError::MethodNotAllowed)
}

/// A resource that answers JSON 405 to methods it does not route.
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
            .service(resource("/challenges/{id}/resend").route(web::post().to(challenges::resend))),
    );
}
