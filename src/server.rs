//! Builds the service from `Settings`: opens the store, binds the HTTP server, restores
//! every challenge in the background (`/readyz` and the API answer 503 until it is done)
//! and runs until stopped. A graceful stop (`ServerHandle::stop(true)`, which the binary
//! sends on SIGTERM or SIGINT) stops accepting, lets in-flight requests finish, stops
//! the actors and flushes.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Instant;

use actix_web::dev::{Server, ServerHandle, Service};
use actix_web::{web, App, HttpResponse, HttpServer};
use futures_util::FutureExt;

use crate::api::{self, AnonymousLimiter, ApiError, ApiState, TrustedProxies};
use crate::auth::Verifier;
use crate::challenge::{HashKey, Services};
use crate::clock::{SharedClock, SystemClock};
use crate::config::Settings;
use crate::metrics as m;
use crate::store::{self, SnapshotStore};
use crate::tenant::Registry;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("{0}")]
    Config(String),
    #[error("cannot listen: {0}")]
    Listen(#[from] std::io::Error),
}

/// A built, bound server: run it with [`Application::run`].
pub struct Application {
    port: u16,
    metrics_port: Option<u16>,
    server: Server,
    registry: Arc<Registry>,
    store: SnapshotStore,
}

impl Application {
    /// Opens the store, binds `listener` and starts the restore. Call inside an actix
    /// `System`.
    pub async fn build(settings: Settings, listener: TcpListener) -> Result<Self, StartError> {
        Self::build_with_clock(settings, listener, Arc::new(SystemClock)).await
    }

    pub async fn build_with_clock(
        settings: Settings,
        listener: TcpListener,
        clock: SharedClock,
    ) -> Result<Self, StartError> {
        if let Some(refusal) = settings.refuse_dev_key_on(listener.local_addr()?.ip()) {
            return Err(StartError::Config(refusal));
        }
        let metrics = m::install();
        let verifier = Verifier::from_settings(&settings.auth).map_err(StartError::Config)?;
        if settings.uses_dev_key() {
            tracing::warn!(
                insecure = settings.auth.insecure_dev_key,
                "!!! USING THE PUBLIC DEVELOPMENT SIGNING KEY from config/default.toml: anyone can mint \
                 tokens for this server. Configure your own [[auth.keys]] before any real use. !!!"
            );
        }
        let data_dir = settings.data_dir().to_path_buf();
        let secret = store::server_secret(&data_dir, settings.storage.secret.expose())?;
        let store = SnapshotStore::open_with(
            &data_dir,
            settings.storage.cache_capacity_bytes,
            settings.storage.checkpoints(),
        )?;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let services = Services::build(&settings, store.clone(), clock, HashKey::new(secret))
            .map_err(StartError::Config)?;
        let jwks = services.actions.signer().jwks();
        let services = Arc::new(services);
        // Webhooks left in the outbox by the last run go out again, with their event ids.
        let resumed = services.outbox.resume()?;
        if resumed > 0 {
            tracing::info!(webhooks = resumed, "resuming webhook deliveries");
        }
        let registry = Registry::new(services, settings.engine.arbiters);

        let port = listener.local_addr()?.port();
        let metrics_listener = settings
            .metrics
            .listen
            .map(|addr| {
                TcpListener::bind(addr).map_err(|e| {
                    StartError::Config(format!("cannot listen on metrics.listen {addr}: {e}"))
                })
            })
            .transpose()?;
        let metrics_addr = metrics_listener
            .as_ref()
            .map(TcpListener::local_addr)
            .transpose()?;
        let workers = if settings.server.workers == 0 {
            cores
        } else {
            settings.server.workers
        };
        let shutdown_timeout = settings.server.shutdown_timeout_seconds;
        let head_timeout =
            std::time::Duration::from_millis(settings.server.request_head_timeout_ms);
        let settings_arbiters = settings.engine.arbiters;
        let state = web::Data::new(ApiState {
            engine: crate::engine::Engine::new(registry.clone(), &settings),
            registry: registry.clone(),
            verifier,
            anonymous: AnonymousLimiter::new(settings.limits.anonymous_answers_per_ip_per_minute),
            proxies: TrustedProxies::parse(&settings.server.trusted_proxies)
                .map_err(StartError::Config)?,
            openapi: serde_json::to_vec(&crate::api::openapi::document(&settings))
                .expect("the document encodes")
                .into(),
            settings,
            metrics,
            jwks,
            metrics_addr,
        });
        let adopting = registry.clone();
        let server = HttpServer::new(move || {
            adopting.adopt_current_arbiter();
            App::new()
                .app_data(state.clone())
                .wrap_fn(|req, srv| {
                    let started = Instant::now();
                    let method = m::method_label(req.method());
                    let route = m::route_label(req.path());
                    srv.call(req).map(move |res| {
                        let status = match &res {
                            Ok(r) => r.status(),
                            Err(e) => e.as_response_error().status_code(),
                        };
                        let elapsed = started.elapsed();
                        tracing::debug!(method, route, status = status.as_u16(), micros = elapsed.as_micros() as u64, "request");
                        metrics::histogram!(m::HTTP_SECONDS, "face" => m::face_label(route), "method" => method, "route" => route, "status" => m::status_label(status))
                            .record(elapsed.as_secs_f64());
                        res
                    })
                })
                .configure(api::routes)
                .default_service(web::to(|| async { HttpResponse::from_error(ApiError::RouteNotFound) }))
                .wrap(actix_web::middleware::from_fn(api::ops::split_listeners))
        })
        .workers(workers)
        .client_request_timeout(head_timeout)
        .client_disconnect_timeout(std::time::Duration::from_secs(1))
        .shutdown_timeout(shutdown_timeout)
        .listen(listener)?;
        let server = match metrics_listener {
            Some(metrics) => server.listen(metrics)?,
            None => server,
        };
        let server = server.disable_signals().run();
        let restoring = registry.clone();
        let actor_threads = if settings_arbiters == 0 {
            workers
        } else {
            settings_arbiters
        };
        std::thread::Builder::new()
            .name("restore".into())
            .spawn(move || {
                restoring.wait_for_arbiters(actor_threads);
                let started = Instant::now();
                match restoring.restore() {
                    Ok(report) => tracing::info!(
                        live = report.live,
                        retained = report.retained,
                        expired_while_down = report.expired_while_down,
                        deleted = report.deleted,
                        seconds = started.elapsed().as_secs_f64(),
                        "restore finished; ready"
                    ),
                    Err(e) => {
                        tracing::error!(error = %e, "restore failed; the data directory needs attention");
                        std::process::exit(2);
                    }
                }
            })?;
        tracing::info!(port, "listening");
        Ok(Application {
            port,
            metrics_port: metrics_addr.map(|a| a.port()),
            server,
            registry,
            store,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the separate `/metrics` listener, if `metrics.listen` configures one.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_port
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped, then stops the actors and flushes the store.
    pub async fn run(self) -> std::io::Result<()> {
        let result = self.server.await;
        tracing::info!("shutting down: flushing snapshots");
        if let Err(e) = self.store.flush_blocking() {
            tracing::error!(error = %e, "final flush failed");
        }
        self.registry.stop();
        // The outbound clients are never dropped: the SMTP pool's and the HTTP clients'
        // drops spawn clean-up tasks, and at exit the last reference may go on a worker
        // thread whose runtime is already shutting down. The process is ending anyway.
        let services = self.registry.services();
        std::mem::forget(services.deliverer.clone());
        std::mem::forget(services.actions.clone());
        result
    }
}
