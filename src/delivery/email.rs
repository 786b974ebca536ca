//! Email through the operator's SMTP relay, with lettre's async SMTP client: plain, STARTTLS
//! or implicit TLS (`email.tls`), SMTP AUTH when `email.username` is set, and a pool of
//! reused connections so a burst of challenges does not pay a handshake each.
//!
//! Every message is built here from an [`EmailMessage`] — the rendered subject, text and
//! optional HTML — so headers come only from lettre's builder: the recipient is parsed as a
//! mailbox, and a line break in the recipient or the subject is refused before anything
//! is sent (it could otherwise add headers such as `Bcc`).

use std::fmt;
use std::time::{Duration, Instant};

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::templates::{EmailContent, TemplateError};
use super::{record, Channel, DeliveryError};
use crate::config::{EmailSettings, SmtpTls};

/// One email. `text` and `html` hold the code or link: Debug leaves them out.
#[derive(Clone)]
pub struct EmailMessage {
    /// A bare address or `Name <address>`.
    pub to: String,
    pub subject: String,
    pub text: String,
    /// With HTML the message is `multipart/alternative` (text first, HTML preferred).
    pub html: Option<String>,
}

impl EmailMessage {
    /// A message to `to` with rendered content.
    pub fn new(to: impl Into<String>, content: EmailContent) -> EmailMessage {
        EmailMessage {
            to: to.into(),
            subject: content.subject,
            text: content.text,
            html: content.html,
        }
    }
}

impl fmt::Debug for EmailMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailMessage")
            .field("to", &self.to)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// Sends email through the configured relay. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct EmailTransport {
    smtp: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    relay: String,
    timeout: Duration,
    /// At most `email.pool_max_size` messages in flight: a burst of challenges queues
    /// here and reuses pooled connections instead of opening one connection per message
    /// (which overwhelms a relay, whose stalled accepts then cost whole timeouts).
    in_flight: std::sync::Arc<tokio::sync::Semaphore>,
}

impl fmt::Debug for EmailTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailTransport")
            .field("relay", &self.relay)
            .field("from", &self.from.email)
            .finish_non_exhaustive()
    }
}

impl EmailTransport {
    /// Builds the transport from `[email]`. Connects lazily, on the first send. Must run
    /// inside a Tokio runtime: the pool's idle-connection sweeper is spawned there.
    pub fn from_settings(settings: &EmailSettings) -> Result<EmailTransport, String> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(
                "the email transport must be built inside a Tokio runtime (its connection pool runs there)"
                    .to_string(),
            );
        }
        let from: Mailbox = settings
            .from
            .parse()
            .map_err(|e| format!("email.from: {e}"))?;
        let host = settings.smtp_host.as_str();
        let builder = match settings.tls {
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                .map_err(|e| format!("email.tls = \"starttls\" for {host}: {e}"))?,
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)
                .map_err(|e| format!("email.tls = \"tls\" for {host}: {e}"))?,
        };
        let timeout = Duration::from_millis(settings.timeout_ms);
        let mut builder = builder
            .port(settings.smtp_port)
            .timeout(Some(timeout))
            .pool_config(PoolConfig::new().max_size(settings.pool_max_size));
        if !settings.username.is_empty() {
            builder = builder.credentials(Credentials::new(
                settings.username.clone(),
                settings.password.expose().to_string(),
            ));
        }
        Ok(EmailTransport {
            smtp: builder.build(),
            from,
            relay: format!("{host}:{}", settings.smtp_port),
            timeout,
            in_flight: std::sync::Arc::new(tokio::sync::Semaphore::new(
                settings.pool_max_size.max(1) as usize,
            )),
        })
    }

    /// Sends one message; `Ok` once the relay accepted it (queued, not necessarily in
    /// the mailbox). Not retried here: a resend is the caller's decision.
    pub async fn send(&self, message: &EmailMessage) -> Result<(), DeliveryError> {
        let _permit = self.in_flight.acquire().await;
        let started = Instant::now();
        let outcome = match self.build(message) {
            // The whole exchange is bounded too, not only each socket operation: a relay
            // that accepts the connection and then stalls must not hold a send forever.
            Ok(email) => match tokio::time::timeout(self.timeout, self.smtp.send(email)).await {
                Ok(sent) => sent.map(drop).map_err(|e| self.smtp_failure(&e)),
                Err(_) => Err(DeliveryError::Timeout(format!(
                    "no answer from the relay within {} ms",
                    self.timeout.as_millis()
                ))),
            },
            Err(error) => Err(error),
        };
        record(Channel::Email, started, outcome.as_ref().err());
        outcome
    }

    fn build(&self, message: &EmailMessage) -> Result<Message, DeliveryError> {
        if has_line_break(&message.to) {
            return Err(DeliveryError::InvalidRecipient(
                "the email address contains a line break".to_string(),
            ));
        }
        let to: Mailbox = message.to.trim().parse().map_err(|_| {
            DeliveryError::InvalidRecipient("not a valid email address".to_string())
        })?;
        if has_line_break(&message.subject) {
            return Err(TemplateError::SubjectLineBreak.into());
        }
        let builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(message.subject.as_str())
            .message_id(Some(self.message_id()));
        let built = match &message.html {
            Some(html) => builder.multipart(MultiPart::alternative_plain_html(
                message.text.clone(),
                html.clone(),
            )),
            None => builder
                .header(ContentType::TEXT_PLAIN)
                .body(message.text.clone()),
        };
        built.map_err(|e| DeliveryError::InvalidRecipient(format!("unusable message: {e}")))
    }

    /// `<random@domain of From>`: unique, and under a domain the sender controls (the
    /// host name may be a container id). Lettre adds `Date` by itself.
    fn message_id(&self) -> String {
        let random: [u8; 16] = rand::random();
        format!("<{}@{}>", hex::encode(random), self.from.email.domain())
    }

    /// An SMTP failure as a reason with no server text (it may quote the recipient or the
    /// credentials' user): the reply code, or what kind of failure it was.
    fn smtp_failure(&self, error: &lettre::transport::smtp::Error) -> DeliveryError {
        if error.is_timeout() {
            return DeliveryError::Timeout(format!(
                "no answer from the SMTP relay within {} ms",
                self.timeout.as_millis()
            ));
        }
        if let Some(code) = error.status() {
            let hint = match code.to_string().as_str() {
                "535" | "534" | "530" => " (authentication failed or required)",
                "550" | "551" | "553" => " (mailbox refused)",
                _ => "",
            };
            return if error.is_permanent() {
                DeliveryError::Rejected(format!("SMTP {code}{hint}"))
            } else {
                DeliveryError::Transport(format!("SMTP {code} (temporary){hint}"))
            };
        }
        let what = if error.is_tls() {
            "TLS with the SMTP relay failed"
        } else if error.is_response() {
            "the SMTP relay answered something unreadable"
        } else if error.is_client() {
            "the SMTP exchange failed"
        } else {
            "could not connect to or talk with the SMTP relay"
        };
        DeliveryError::Transport(what.to_string())
    }
}

fn has_line_break(s: &str) -> bool {
    s.contains(['\r', '\n'])
}
