//! A tenant's runtime configuration (spec/onewelcome-acs.md, "Global Configuration
//! API"): read the one in effect; replace it as a whole at the expected version —
//! checked against the file's caps, swapped in the store off the async workers, made
//! durable, and only then put into effect for the next request.

use std::sync::Arc;

use super::input::check_range;
use super::{authorize, error, Engine, Error};
use crate::auth::{Principal, Scope};
use crate::config::Limits;
use crate::model::configuration::{CODE_LENGTH, MAX_ANONYMOUS_FAILURES, MAX_RETENTION_SECONDS};
use crate::model::{Properties, TenantConfig};
use crate::store::Precondition;

impl Engine {
    /// The tenant's configuration in effect (`challenge:configuration:get`).
    pub async fn configuration(&self, principal: &Principal) -> Result<Arc<TenantConfig>, Error> {
        authorize(principal, Scope::ConfigurationGet)?;
        Ok(self.tenant(&principal.tenant).await?.config())
    }

    /// Replaces the tenant's configuration if `expected` admits its version (0 before
    /// the first replace); in effect from the next request (`challenge:configuration:put`).
    pub async fn replace_configuration(
        &self,
        principal: &Principal,
        expected: Precondition,
        properties: Properties,
    ) -> Result<TenantConfig, Error> {
        authorize(principal, Scope::ConfigurationPut)?;
        check(&properties, &self.limits)?;
        let tenant = self.tenant(&principal.tenant).await?;
        let id = tenant.id.clone();
        let now = self.registry.services().clock.now_ms();
        let config = self
            .blocking(move |store| {
                store
                    .configuration()
                    .replace(&id, &expected, properties, now)
                    .map_err(|e| error::write_error(e, || Error::Internal, Error::Internal))
            })
            .await?;
        self.durable().await?;
        tenant.set_config(config.clone());
        Ok(config)
    }
}

/// Every property within its bounds: the file's caps, and each default within its
/// maximum. The message names the property.
pub fn check(p: &Properties, limits: &Limits) -> Result<(), Error> {
    check_range(
        "max_ttl_seconds",
        Some(p.max_ttl_seconds),
        1..=limits.max_ttl_seconds,
    )?;
    check_range(
        "default_ttl_seconds",
        Some(p.default_ttl_seconds),
        1..=p.max_ttl_seconds,
    )?;
    check_range(
        "max_attempts",
        Some(p.max_attempts),
        1..=limits.max_attempts,
    )?;
    check_range(
        "default_max_attempts",
        Some(p.default_max_attempts),
        1..=p.max_attempts,
    )?;
    check_range(
        "default_code_length",
        Some(p.default_code_length),
        CODE_LENGTH,
    )?;
    check_range(
        "retention_seconds",
        Some(p.retention_seconds),
        0..=MAX_RETENTION_SECONDS,
    )?;
    check_range(
        "max_live_challenges",
        Some(p.max_live_challenges),
        1..=limits.max_live_challenges,
    )?;
    check_range(
        "long_poll_max_seconds",
        Some(p.long_poll_max_seconds),
        0..=limits.long_poll_max_seconds,
    )?;
    check_range(
        "anonymous_failures_per_challenge_per_minute",
        Some(p.anonymous_failures_per_challenge_per_minute),
        0..=MAX_ANONYMOUS_FAILURES,
    )?;
    crate::challenge::kinds::action::check_allowed_scopes(
        "allowed_action_scopes",
        &p.allowed_action_scopes,
    )
}
