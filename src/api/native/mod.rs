//! The native API, `/api/v1` (see `spec/native-api.md`): `challenges.rs` has the
//! handlers, `dto.rs` the request and response shapes.

pub mod challenges;
pub mod dto;

use actix_web::web;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            .service(
                web::resource("/challenges")
                    .route(web::post().to(challenges::create))
                    .route(web::get().to(challenges::list)),
            )
            .service(
                web::resource("/challenges/{id}")
                    .route(web::get().to(challenges::get))
                    .route(web::delete().to(challenges::cancel)),
            )
            .service(
                web::resource("/challenges/{id}/answer").route(web::post().to(challenges::answer)),
            )
            .service(
                web::resource("/challenges/{id}/complete")
                    .route(web::post().to(challenges::complete)),
            )
            .service(
                web::resource("/challenges/{id}/resend").route(web::post().to(challenges::resend)),
            ),
    );
}
