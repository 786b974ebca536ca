//! Bearer-token authentication: `jwt` verifies a JWT against the configured keys into a
//! [`Principal`] (tenant, subject, scopes); `scopes` names what each scope grants;
//! `mint` signs development tokens for the `token` subcommand.

pub mod jwt;
pub mod mint;
pub mod principal;
pub mod scopes;

pub use jwt::{AuthError, Verifier};
pub use principal::Principal;
pub use scopes::{Scope, Scopes};
