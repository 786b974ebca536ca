//! challenge-server: a self-hostable challenge service for login and approval flows.
//!
//! - [`server`] builds the HTTP server from [`config::Settings`], restores the engine and
//!   runs until shutdown.
//! - [`challenge`]: one actix actor per live challenge; the pure state machine in
//!   `challenge::state`, per-kind rules in `challenge::kinds`.
//! - [`engine`]: the one façade every API face calls — typed operations over the
//!   registry, the store and the kinds; domain errors, no HTTP.
//! - [`tenant`]: a supervisor per tenant (quota, idempotency, revival of dead actors) and
//!   the registry that finds a challenge's actor in one hop.
//! - [`store`]: sled snapshots with a versioned format and group commit — the only code
//!   that knows sled.
//! - [`auth`]: bearer JWT verification into a [`auth::Principal`], scopes, dev tokens.
//! - [`api`]: the HTTP faces — native `/api/v1`, operations endpoints, the vendor
//!   faces (`api::compat`: Twilio Verify `/v2`, OneWelcome ACS `/compat/acs/v1`, Apiture
//!   `/auth`), the one error mapping.
//! - [`delivery`]: getting a challenge to a person — email over SMTP, SMS over an HTTP
//!   gateway, signed status webhooks — and the templates that word the messages.
//! - [`factors`]: users' enrolled credentials (TOTP, push device keys, WebAuthn
//!   credentials and their relying parties), their secrets sealed at rest.
//! - [`model`]: plain data (ids, the challenge record, states).
//! - [`actions`]: the HTTP actions of one-time-use challenges, exactly once;
//!   [`outbound`]: which URLs given in requests may be called.
//! - [`metrics`]: metric names and the Prometheus recorder; [`clock`]: injected time.

pub mod actions;
pub mod api;
pub mod auth;
pub mod challenge;
pub mod clock;
pub mod config;
pub mod delivery;
pub mod engine;
pub mod factors;
pub mod metrics;
pub mod model;
pub mod outbound;
pub mod server;
pub mod store;
pub mod tenant;
