//! One live challenge, one actor. `state` is the pure state machine, `kinds` the rules by
//! which each kind issues and verifies answers, `actor` the `ChallengeActor` that owns a
//! challenge and executes the effects, `messages` what it handles, `methods` the state machine of a challenge that offers
//! several methods.

pub mod actor;
pub mod kinds;
pub mod messages;
pub mod methods;
pub mod state;

use std::sync::Arc;

use crate::clock::SharedClock;
use crate::config::Limits;
use crate::store::SnapshotStore;

pub use actor::ChallengeActor;
pub use kinds::HashKey;

/// What every challenge actor and supervisor needs, shared.
pub struct Services {
    pub deliverer: crate::delivery::Deliverer,
    pub recipients: crate::delivery::cap::RecipientCap,
    pub delivery: crate::config::DeliverySettings,
    /// Origin of the links the server sends (`server.public_base_url`, no trailing `/`).
    pub base_url: String,
    pub store: SnapshotStore,
    /// Sends the status webhooks stored with the changes they report.
    pub outbox: Arc<crate::delivery::Outbox>,
    pub actions: Arc<crate::actions::ActionRunner>,
    pub clock: SharedClock,
    pub key: HashKey,
    /// Seals and opens enrolled factors' secrets (`[storage] secrets_key_file`).
    pub seal: crate::factors::SealKey,
    /// The service's TOTP defaults.
    pub totp: crate::config::TotpSettings,
    /// `[push] gateway_url`, if set.
    pub push_gateway: Option<String>,
    /// The WebAuthn relying parties of every tenant (`[webauthn]`).
    pub webauthn: Arc<crate::factors::webauthn::RelyingParties>,
    pub limits: Limits,
}

pub type SharedServices = Arc<Services>;

impl Services {
    /// Everything built from the settings, over an open store: the transports, the
    /// action runner and its signer. `Err` says which setting is wrong.
    pub fn build(
        settings: &crate::config::Settings,
        store: SnapshotStore,
        clock: crate::clock::SharedClock,
        key: HashKey,
    ) -> Result<Services, String> {
        let signer = crate::auth::mint::ActionSigner::from_settings(settings)?;
        let actions = crate::actions::ActionRunner::new(&settings.actions, signer)?;
        let deliverer = crate::delivery::Deliverer::from_settings(settings)?;
        let outbox = crate::delivery::Outbox::new(
            store.clone(),
            deliverer.webhooks().clone(),
            key.clone(),
            clock.clone(),
        )
        .with_twilio_accounts(&settings.compat.twilio.accounts);
        let secrets_key_file = settings.secrets_key_file();
        let seal_key = crate::store::key_file(&secrets_key_file).map_err(|e| {
            format!(
                "storage.secrets_key_file ({}): {e}",
                secrets_key_file.display()
            )
        })?;
        Ok(Services {
            deliverer,
            recipients: crate::delivery::cap::RecipientCap::new(
                settings.delivery.per_recipient_daily_cap,
                settings.delivery.per_recipient_daily_cap_per_tenant,
            ),
            delivery: settings.delivery.clone(),
            base_url: settings
                .server
                .public_base_url
                .trim_end_matches('/')
                .to_string(),
            store,
            outbox: Arc::new(outbox),
            actions: Arc::new(actions),
            clock,
            key,
            seal: crate::factors::SealKey::new(&seal_key),
            totp: settings.totp.clone(),
            push_gateway: Some(settings.push.gateway_url.clone()).filter(|u| !u.is_empty()),
            webauthn: Arc::new(
                crate::factors::webauthn::RelyingParties::from_settings(&settings.webauthn)
                    .map_err(|(key, message)| format!("{key}: {message}"))?,
            ),
            limits: settings.limits.clone(),
        })
    }
}
