//! One integration-test binary: every test starts its own server on 127.0.0.1:0 over a
//! fresh sled directory (in-process, or the real binary where a crash is simulated).
//! Delivery tests start their own receivers instead (`sinks.rs`).

mod acs;
mod actions;
mod agilicus_sdk;
mod apiture;
mod auth;
mod bad_input;
mod bounded;
mod configuration;
mod delivered_challenges;
mod disclosure;
mod durability;
mod expiry;
mod factors;
mod helpers;
mod lifecycle;
mod methods;
mod operations;
mod pages;
mod pending;
mod policies;
mod push;
mod races;
mod readiness;
mod safe_defaults;
mod secrets;
mod sinks;
mod transports;
mod twilio;
mod twilio_sdk;
mod webauthn;
mod webhooks;
