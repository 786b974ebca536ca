//! The webhook outbox: every status webhook is an event stored with the change it
//! reports (see [`crate::store::outbox`]), then sent from here, one task per event,
//! retried with backoff while the failure may pass, and dead-lettered after its last
//! attempt. A restart resumes the events left, with the same event ids and bodies, where
//! their backoff left them: delivery is at least once, and receivers dedupe on the id.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{record, Channel, DeliveryError, WebhookSender};
use crate::challenge::HashKey;
use crate::clock::SharedClock;
use crate::metrics as m;
use crate::model::{ChallengeId, EventId, TenantId};
use crate::store::{DeadLetter, SnapshotStore, StoreError, WebhookEvent};

/// How an event is signed when it is sent.
enum Style {
    Json,
    TwilioForm(crate::config::Secret),
}

pub struct Outbox {
    store: SnapshotStore,
    sender: WebhookSender,
    key: HashKey,
    clock: SharedClock,
    /// The auth tokens of the Twilio accounts (`[[compat.twilio.accounts]]`) that sign
    /// their form webhooks; an event names its account, never holds its token.
    twilio_tokens: std::collections::HashMap<String, crate::config::Secret>,
}

impl Outbox {
    pub fn new(
        store: SnapshotStore,
        sender: WebhookSender,
        key: HashKey,
        clock: SharedClock,
    ) -> Outbox {
        Outbox {
            store,
            sender,
            key,
            clock,
            twilio_tokens: Default::default(),
        }
    }

    /// The Twilio accounts whose form webhooks this outbox signs.
    pub fn with_twilio_accounts(mut self, accounts: &[crate::config::TwilioAccount]) -> Self {
        self.twilio_tokens = accounts
            .iter()
            .filter(|a| !a.auth_token.is_empty())
            .map(|a| (a.account_sid.clone(), a.auth_token.clone()))
            .collect();
        self
    }

    /// A new form-encoded event for `challenge`, signed at delivery with the Twilio
    /// account's auth token. Not stored yet.
    pub fn form_event(
        &self,
        tenant: &TenantId,
        challenge: ChallengeId,
        url: &str,
        body: String,
        account_sid: &str,
    ) -> WebhookEvent {
        WebhookEvent {
            id: EventId::random(),
            tenant: tenant.clone(),
            challenge,
            url: url.to_string(),
            body,
            attempts: 0,
            next_attempt_at: self.clock.now_ms(),
            format: crate::store::EventFormat::TwilioForm {
                account_sid: account_sid.to_string(),
            },
        }
    }

    /// Stores an event, makes it durable, then starts sending it. Call on an async
    /// runtime.
    pub async fn enqueue(self: &Arc<Self>, event: WebhookEvent) -> Result<(), StoreError> {
        let store = self.store.clone();
        let stored = event.clone();
        tokio::task::spawn_blocking(move || store.outbox().put(&stored))
            .await
            .map_err(|e| StoreError::Io(std::io::Error::other(e)))??;
        self.store.durable().await?;
        self.dispatch(event);
        Ok(())
    }

    /// A new event for `challenge`: `body` gets its `event_id`. Not stored yet.
    pub fn event(
        &self,
        tenant: &TenantId,
        challenge: ChallengeId,
        url: &str,
        mut body: serde_json::Value,
    ) -> WebhookEvent {
        let id = EventId::random();
        body["event_id"] = serde_json::Value::String(id.to_string());
        WebhookEvent {
            id,
            tenant: tenant.clone(),
            challenge,
            url: url.to_string(),
            body: body.to_string(),
            attempts: 0,
            next_attempt_at: self.clock.now_ms(),
            format: crate::store::EventFormat::Json,
        }
    }

    /// Starts sending an event whose write is durable. Call on an async runtime.
    pub fn dispatch(self: &Arc<Self>, event: WebhookEvent) {
        metrics::gauge!(m::WEBHOOKS_PENDING).increment(1.0);
        tokio::spawn(self.clone().run(event));
    }

    /// Starts sending every event left from before the last stop; returns how many.
    /// Call on an async runtime, once, at start.
    pub fn resume(self: &Arc<Self>) -> Result<usize, StoreError> {
        let pending = self.store.outbox().pending()?;
        metrics::gauge!(m::WEBHOOK_DEAD_LETTERS).set(self.store.outbox().dead_count() as f64);
        let resumed = pending.len();
        metrics::gauge!(m::WEBHOOKS_PENDING).set(0.0);
        for event in pending {
            self.dispatch(event);
        }
        Ok(resumed)
    }

    async fn run(self: Arc<Self>, mut event: WebhookEvent) {
        let started = Instant::now();
        let outcome = self.deliver(&mut event).await;
        record(Channel::Webhook, started, outcome.as_ref().err());
        let outbox = self.store.outbox();
        let dead = outcome.is_err();
        let done = match outcome {
            Ok(()) => outbox.remove(&event.id),
            Err(error) => {
                tracing::warn!(challenge = %event.challenge, event = %event.id, error = %error, "webhook not delivered; dead-lettered");
                outbox.bury(&DeadLetter {
                    error: error.to_string(),
                    dead_at: self.clock.now_ms(),
                    event: event.clone(),
                })
            }
        };
        // Made durable (in a flush shared with others) so that a later crash does not
        // send it again; if that fails, it is sent again after a restart.
        let done = match done {
            Ok(()) => self.store.durable().await,
            Err(e) => Err(e),
        };
        if let Err(e) = done {
            tracing::error!(error = %e, event = %event.id, "cannot take a finished webhook out of the outbox; it may be sent again");
        }
        metrics::gauge!(m::WEBHOOKS_PENDING).decrement(1.0);
        if dead {
            metrics::counter!(m::WEBHOOKS_DEAD_LETTERED).increment(1);
            metrics::gauge!(m::WEBHOOK_DEAD_LETTERS).set(outbox.dead_count() as f64);
        }
    }

    /// Waits until the event is due, then runs the sender's retry loop from the attempts
    /// already made, writing each failed attempt back with when the next is due.
    async fn deliver(&self, event: &mut WebhookEvent) -> Result<(), DeliveryError> {
        let wait = event.next_attempt_at - self.clock.now_ms();
        if wait > 0 {
            tokio::time::sleep(Duration::from_millis(wait as u64)).await;
        }
        let style = match &event.format {
            crate::store::EventFormat::Json => Style::Json,
            crate::store::EventFormat::TwilioForm { account_sid } => {
                match self.twilio_tokens.get(account_sid) {
                    Some(token) => Style::TwilioForm(token.clone()),
                    None => {
                        return Err(DeliveryError::InvalidRecipient(format!(
                            "the Twilio account {account_sid} has no auth_token configured"
                        )))
                    }
                }
            }
        };
        let secret = match &style {
            Style::Json => crate::challenge::actor::webhook_secret(&self.key, &event.tenant),
            Style::TwilioForm(token) => token.expose().to_string(),
        };
        let id = event.id.to_string();
        let (url, body) = (event.url.clone(), event.body.clone());
        let made = event.attempts;
        let outbox = self.store.outbox();
        let record_attempt = |attempts, delay: Duration| {
            event.attempts = attempts;
            event.next_attempt_at = self.clock.now_ms() + delay.as_millis() as i64;
            if let Err(e) = outbox.put(event) {
                tracing::error!(error = %e, event = %event.id, "cannot record a webhook attempt");
            }
        };
        let secret = secret.as_bytes();
        self.sender
            .deliver_from(
                &url,
                body.as_bytes(),
                super::webhook::Signing {
                    secret,
                    twilio_form: matches!(style, Style::TwilioForm(_)),
                },
                Some(&id),
                made,
                record_attempt,
            )
            .await
            .map(drop)
    }
}
