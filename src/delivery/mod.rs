//! Getting a challenge to a person, and news of it back to the calling service: email
//! through an SMTP relay ([`email`]), SMS through an HTTP gateway ([`sms`]), signed status
//! webhooks ([`webhook`]), and the templates that turn a challenge into message text
//! ([`templates`]).
//!
//! Nothing here knows challenges, actors or HTTP routes. The engine renders a message with
//! [`Templates`], hands it to a transport from the one [`Deliverer`] it holds, and turns the
//! outcome into a message for the challenge's actor. Sends are awaited on a spawned task,
//! never inside an actor's handler: a transport may take seconds (SMTP round trips, webhook
//! retries with backoff), and an actor must keep answering meanwhile.
//!
//! The SMTP relay and the SMS gateway come from the operator's configuration and are
//! trusted; webhook URLs come from requests, and the caller checks them against the
//! outbound-URL policy before they reach [`WebhookSender::deliver`].

pub mod cap;
pub mod email;
pub mod outbox;
pub mod sms;
pub mod templates;
pub mod webhook;

use std::time::{Duration, Instant};

pub use email::{EmailMessage, EmailTransport};
pub use outbox::Outbox;
pub use sms::{parse_e164, PhoneNumber, SmsGateway, SmsMessage};
pub use templates::{
    check, EmailContent, LocaleTemplates, MessageKind, MessageVars, TemplateError, TemplateSet,
    Templates,
};
pub use webhook::{signature, verify, WebhookSender, EVENT_ID_HEADER, SIGNATURE_HEADER};

use crate::config::Settings;

/// Why a message did not go out. What it carries is short and free of secrets (no
/// passwords, codes, links or response bodies), so it may be logged and stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// The address or number is not one a message can be sent to; retrying cannot help.
    #[error("invalid recipient: {0}")]
    InvalidRecipient(String),
    /// The relay or gateway could not be reached or the exchange broke off.
    #[error("transport failed: {0}")]
    Transport(String),
    /// The relay or gateway answered and refused the message (an SMTP or HTTP error status).
    #[error("rejected: {0}")]
    Rejected(String),
    /// No answer within the configured time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The message could not be rendered, or what was rendered is unsendable.
    #[error(transparent)]
    Template(#[from] TemplateError),
}

impl DeliveryError {
    /// Stable snake_case name, used as the `outcome` metric label and in delivery reports.
    pub fn kind(&self) -> &'static str {
        match self {
            DeliveryError::InvalidRecipient(_) => "invalid_recipient",
            DeliveryError::Transport(_) => "transport",
            DeliveryError::Rejected(_) => "rejected",
            DeliveryError::Timeout(_) => "timeout",
            DeliveryError::Template(_) => "template",
        }
    }
}

/// The `channel` label of the delivery metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Email,
    Sms,
    Webhook,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Webhook => "webhook",
        }
    }
}

/// Records one send in `deliveries_total` and `delivery_duration_seconds`; `error` is
/// `None` when it went out.
fn record(channel: Channel, started: Instant, error: Option<&DeliveryError>) {
    let outcome = error.map_or("sent", DeliveryError::kind);
    metrics::counter!(crate::metrics::DELIVERIES, "channel" => channel.as_str(), "outcome" => outcome)
        .increment(1);
    metrics::histogram!(crate::metrics::DELIVERY_SECONDS, "channel" => channel.as_str())
        .record(started.elapsed().as_secs_f64());
}

/// The HTTP client of the SMS gateway and the webhooks: a whole-request timeout, and no
/// redirects (a redirect could lead a request where its URL check never looked).
fn http_client(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .user_agent(concat!("challenge-server/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// A request that got no HTTP answer, as a reason free of the URL (which may carry a
/// credential in its query).
fn http_failure(error: &reqwest::Error, timeout: Duration) -> DeliveryError {
    if error.is_timeout() {
        DeliveryError::Timeout(format!("no answer within {} ms", timeout.as_millis()))
    } else if error.is_connect() {
        DeliveryError::Transport("could not connect".to_string())
    } else {
        DeliveryError::Transport("the request failed before an answer".to_string())
    }
}

/// Everything the engine needs to deliver: the configured transports and the templates.
/// Cheap to clone (the transports share their connection pools), so each send task can
/// hold its own copy.
#[derive(Clone, Debug)]
pub struct Deliverer {
    email: Option<EmailTransport>,
    sms: Option<SmsGateway>,
    webhooks: WebhookSender,
    templates: Templates,
}

impl Deliverer {
    /// Builds the transports `settings` turn on. Must run inside a Tokio runtime (the
    /// actix system's will do): the SMTP pool starts its idle-connection sweeper there.
    pub fn from_settings(settings: &Settings) -> Result<Deliverer, String> {
        let email = if settings.email.smtp_host.is_empty() {
            None
        } else {
            Some(EmailTransport::from_settings(&settings.email)?)
        };
        let sms = if settings.sms.gateway_url.is_empty() {
            None
        } else {
            Some(SmsGateway::from_settings(&settings.sms)?)
        };
        Ok(Deliverer {
            email,
            sms,
            webhooks: WebhookSender::guarded(
                &settings.webhooks,
                crate::outbound::OutboundPolicy {
                    allow_hosts: settings.actions.allow_hosts.clone(),
                    allow_private: settings.actions.allow_private,
                },
            )?,
            templates: Templates::new(settings.sms.max_length),
        })
    }

    /// The SMTP transport; `None` when `email.smtp_host` is empty (email is off).
    pub fn email(&self) -> Option<&EmailTransport> {
        self.email.as_ref()
    }

    /// The SMS gateway; `None` when `sms.gateway_url` is empty (SMS is off).
    pub fn sms(&self) -> Option<&SmsGateway> {
        self.sms.as_ref()
    }

    pub fn webhooks(&self) -> &WebhookSender {
        &self.webhooks
    }

    pub fn templates(&self) -> &Templates {
        &self.templates
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_kinds_are_stable_names() {
        let kinds: Vec<_> = [
            DeliveryError::InvalidRecipient("x".into()),
            DeliveryError::Transport("x".into()),
            DeliveryError::Rejected("x".into()),
            DeliveryError::Timeout("x".into()),
            DeliveryError::Template(TemplateError::SubjectLineBreak),
        ]
        .iter()
        .map(DeliveryError::kind)
        .collect();
        assert_eq!(
            kinds,
            [
                "invalid_recipient",
                "transport",
                "rejected",
                "timeout",
                "template"
            ]
        );
    }

    #[tokio::test]
    async fn development_settings_turn_email_on_and_sms_off() {
        let deliverer = Deliverer::from_settings(&Settings::development()).unwrap();
        assert!(deliverer.email().is_some());
        assert!(deliverer.sms().is_none());
    }

    #[test]
    fn building_outside_a_runtime_is_an_error_not_a_panic() {
        let error = Deliverer::from_settings(&Settings::development()).unwrap_err();
        assert!(error.contains("Tokio runtime"), "{error}");
    }
}
