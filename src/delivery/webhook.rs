//! Status webhooks: a signed JSON POST to the calling service's `callback_url`, retried
//! with exponential backoff while the failure may pass (no connection, a timeout, a 5xx).
//!
//! The signature scheme is shared with the JSON SMS gateway format: header
//! `X-Challenge-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`.
//! Signing the timestamp with the body lets a receiver refuse replays of an old delivery
//! ([`verify`] with a tolerance). Several `v1=` values may appear, so a receiver can accept
//! during a key rotation.
//!
//! The caller has already checked the URL against the outbound-URL policy; redirects are
//! never followed, since a redirect could lead past that check.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::{record, Channel, DeliveryError};
use crate::config::WebhookSettings;

/// How one webhook is signed: the native JSON scheme with `secret`, or Twilio's
/// form scheme with `secret` = the account's auth token.
#[derive(Clone, Copy)]
pub struct Signing<'a> {
    pub secret: &'a [u8],
    pub twilio_form: bool,
}

/// The header of Twilio's webhook signature.
pub const TWILIO_SIGNATURE_HEADER: &str = "X-Twilio-Signature";

/// Twilio's webhook signature: base64 of HMAC-SHA1 under the auth token of the full URL
/// followed by every POST parameter's name and value, sorted by name (as Twilio's
/// `RequestValidator` checks it).
pub fn twilio_signature(auth_token: &[u8], url: &str, form_body: &[u8]) -> String {
    use base64::Engine as _;
    use hmac::{Hmac, Mac};
    let mut params: Vec<(String, String)> = url::form_urlencoded::parse(form_body)
        .into_owned()
        .collect();
    params.sort();
    let mut mac = <Hmac<sha1::Sha1>>::new_from_slice(auth_token).expect("HMAC takes any key");
    mac.update(url.as_bytes());
    for (name, value) in &params {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The header that carries the signature, on webhooks and on JSON SMS gateway requests.
pub const SIGNATURE_HEADER: &str = "X-Challenge-Signature";

/// Longest wait between two attempts, however many retries came before.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// `t=<unix>,v1=<hex HMAC-SHA256 of "<unix>." followed by body>`.
pub fn signature(secret: &[u8], unix: i64, body: &[u8]) -> String {
    format!("t={unix},v1={}", hex::encode(mac(secret, unix, body)))
}

/// True when `header` carries a `v1` signature of `body` under `secret` and its `t` is
/// within `tolerance_secs` of `now` (unix seconds). Comparison is constant-time.
pub fn verify(secret: &[u8], header: &str, body: &[u8], now: i64, tolerance_secs: i64) -> bool {
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => {
                if timestamp.is_some() {
                    return false;
                }
                timestamp = value.parse::<i64>().ok();
            }
            Some(("v1", value)) => candidates.push(value),
            _ => {}
        }
    }
    let Some(timestamp) = timestamp else {
        return false;
    };
    if tolerance_secs < 0 || now.abs_diff(timestamp) > tolerance_secs.unsigned_abs() {
        return false;
    }
    let expected = mac(secret, timestamp, body);
    let mut matched = false;
    for candidate in candidates {
        if let Ok(given) = hex::decode(candidate) {
            matched |= bool::from(given.as_slice().ct_eq(expected.as_slice()));
        }
    }
    matched
}

fn mac(secret: &[u8], unix: i64, body: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(unix.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// Seconds since the Unix epoch, for signature timestamps.
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// Sends webhooks. Cheap to clone; clones share one connection pool.
#[derive(Debug, Clone)]
pub struct WebhookSender {
    http: reqwest::Client,
    timeout: Duration,
    max_retries: u32,
    backoff: Duration,
}

/// The header that carries a webhook's event id (also in its body as `event_id`), the
/// same on every attempt and after a restart: receivers dedupe on it.
pub const EVENT_ID_HEADER: &str = "X-Challenge-Event-Id";

/// One attempt's failure, and whether another attempt may fare better.
struct Failure {
    error: DeliveryError,
    retry: bool,
}

impl WebhookSender {
    pub fn from_settings(settings: &WebhookSettings) -> Result<WebhookSender, String> {
        let timeout = Duration::from_millis(settings.timeout_ms);
        let http = super::http_client(timeout).map_err(|e| format!("webhook HTTP client: {e}"))?;
        Ok(Self::with_client(settings, http))
    }

    /// Like [`WebhookSender::from_settings`], with every host name checked against the
    /// outbound-URL policy at connect time (callback URLs come from requests).
    pub fn guarded(
        settings: &WebhookSettings,
        policy: crate::outbound::OutboundPolicy,
    ) -> Result<WebhookSender, String> {
        let timeout = Duration::from_millis(settings.timeout_ms);
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve the host itself, past the guarded resolver.
            .no_proxy()
            .timeout(timeout)
            .dns_resolver(crate::outbound::GuardedResolver::new(policy))
            .user_agent(concat!("challenge-server/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("webhook HTTP client: {e}"))?;
        Ok(Self::with_client(settings, http))
    }

    fn with_client(settings: &WebhookSettings, http: reqwest::Client) -> WebhookSender {
        let timeout = Duration::from_millis(settings.timeout_ms);
        WebhookSender {
            http,
            timeout,
            max_retries: settings.max_retries,
            backoff: Duration::from_millis(settings.backoff_ms),
        }
    }

    /// POSTs `body` (JSON) to `url`, signed with `secret` (no signature header when
    /// `secret` is empty). Retries after connection errors, timeouts and 5xx answers, up
    /// to `webhooks.max_retries` times, sleeping between attempts — run it on a spawned
    /// task. A 4xx or 3xx answer is final. Returns the number of attempts made.
    pub async fn deliver(
        &self,
        url: &str,
        body: Vec<u8>,
        secret: &[u8],
    ) -> Result<u32, DeliveryError> {
        let started = Instant::now();
        let signing = Signing {
            secret,
            twilio_form: false,
        };
        let outcome = self
            .deliver_from(url, &body, signing, None, 0, |_, _| {})
            .await;
        record(Channel::Webhook, started, outcome.as_ref().err());
        outcome
    }

    /// The retry loop every webhook goes through: attempts (carrying `event_id` when
    /// given) until one succeeds, the failure is final, or the attempts run out, counting
    /// from `made` attempts already made (an outbox event resumed after a restart). Before
    /// each wait it calls `before_retry(attempts made, delay)`. Returns the attempts made.
    pub(crate) async fn deliver_from(
        &self,
        url: &str,
        body: &[u8],
        signing: Signing<'_>,
        event_id: Option<&str>,
        made: u32,
        mut before_retry: impl FnMut(u32, Duration),
    ) -> Result<u32, DeliveryError> {
        let url = match reqwest::Url::parse(url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => url,
            _ => {
                return Err(DeliveryError::InvalidRecipient(
                    "the webhook URL is not an http(s) URL".to_string(),
                ))
            }
        };
        let attempts = self.max_retries.saturating_add(1);
        let mut attempt = made;
        loop {
            attempt += 1;
            let failure = match self.attempt(&url, body, signing, event_id).await {
                Ok(()) => return Ok(attempt),
                Err(failure) => failure,
            };
            if !failure.retry || attempt >= attempts {
                return Err(after_attempts(failure.error, attempt));
            }
            let delay = self.delay_before_retry(attempt);
            before_retry(attempt, delay);
            tokio::time::sleep(delay).await;
        }
    }

    /// One POST of `body` to `url`, signed with `secret` (none when empty), carrying
    /// `event_id` in [`EVENT_ID_HEADER`] when given.
    async fn attempt(
        &self,
        url: &reqwest::Url,
        body: &[u8],
        signing: Signing<'_>,
        event_id: Option<&str>,
    ) -> Result<(), Failure> {
        let secret = signing.secret;
        let content_type = if signing.twilio_form {
            "application/x-www-form-urlencoded"
        } else {
            "application/json"
        };
        let mut request = self
            .http
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body.to_vec());
        if let Some(id) = event_id {
            request = request.header(EVENT_ID_HEADER, id);
        }
        if signing.twilio_form {
            request = request.header(
                TWILIO_SIGNATURE_HEADER,
                twilio_signature(secret, url.as_str(), body),
            );
        } else if !secret.is_empty() {
            request = request.header(SIGNATURE_HEADER, signature(secret, unix_now(), body));
        }
        let response = request.send().await.map_err(|error| Failure {
            error: super::http_failure(&error, self.timeout),
            retry: true,
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let (reason, retry) = if status.is_redirection() {
            (
                format!("answered {} (redirects are not followed)", status.as_u16()),
                false,
            )
        } else {
            (
                format!("answered {}", status.as_u16()),
                status.is_server_error(),
            )
        };
        Err(Failure {
            error: DeliveryError::Rejected(reason),
            retry,
        })
    }

    /// `backoff × 2^(retry − 1)`, capped at [`MAX_BACKOFF`], less up to a quarter at random
    /// so that webhooks failing together do not retry together.
    fn delay_before_retry(&self, attempt: u32) -> Duration {
        let doubled = self
            .backoff
            .saturating_mul(1u32 << (attempt - 1).min(20))
            .min(MAX_BACKOFF);
        let jitter = rand::thread_rng().gen_range(0.0..0.25);
        doubled.mul_f64(1.0 - jitter)
    }
}

fn after_attempts(error: DeliveryError, attempts: u32) -> DeliveryError {
    if attempts == 1 {
        return error;
    }
    let note = |reason: String| format!("{reason} (after {attempts} attempts)");
    match error {
        DeliveryError::Transport(r) => DeliveryError::Transport(note(r)),
        DeliveryError::Rejected(r) => DeliveryError::Rejected(note(r)),
        DeliveryError::Timeout(r) => DeliveryError::Timeout(note(r)),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec-test";

    #[test]
    fn a_signature_verifies_within_the_tolerance() {
        let header = signature(SECRET, 1_700_000_000, b"{\"a\":1}");
        assert!(header.starts_with("t=1700000000,v1="));
        assert!(verify(SECRET, &header, b"{\"a\":1}", 1_700_000_100, 300));
        assert!(!verify(SECRET, &header, b"{\"a\":1}", 1_700_000_301, 300));
        assert!(!verify(SECRET, &header, b"{\"a\":1}", 1_699_999_699, 300));
    }

    #[test]
    fn a_tampered_body_a_wrong_key_or_a_moved_timestamp_fails() {
        let header = signature(SECRET, 1_700_000_000, b"{\"a\":1}");
        assert!(!verify(SECRET, &header, b"{\"a\":2}", 1_700_000_000, 300));
        assert!(!verify(b"other", &header, b"{\"a\":1}", 1_700_000_000, 300));
        let moved = header.replace("t=1700000000", "t=1700000001");
        assert!(!verify(SECRET, &moved, b"{\"a\":1}", 1_700_000_000, 300));
    }

    #[test]
    fn any_of_several_signatures_may_match() {
        let good = signature(SECRET, 10, b"x");
        let v1 = good.split_once(",v1=").unwrap().1;
        let header = format!("t=10,v1={},v1={v1}", "00".repeat(32));
        assert!(verify(SECRET, &header, b"x", 10, 0));
    }

    #[test]
    fn the_twilio_signature_is_the_one_twilios_validator_computes() {
        // The vector of twilio-python's RequestValidator tests.
        let body = b"To=%2B18005551212&CallSid=CA1234567890ABCDE&Caller=%2B14158675309&Digits=1234&From=%2B14158675309";
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(
            twilio_signature(b"12345", url, body),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        );
        assert_ne!(
            twilio_signature(b"12346", url, body),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        );
    }

    #[test]
    fn malformed_headers_fail() {
        for header in [
            "",
            "t=10",
            "v1=00",
            "t=x,v1=00",
            "t=10,t=10,v1=zz",
            "t=10,v1=zz",
        ] {
            assert!(!verify(SECRET, header, b"x", 10, 300), "{header}");
        }
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let sender = WebhookSender::from_settings(&WebhookSettings {
            timeout_ms: 1000,
            max_retries: 20,
            backoff_ms: 1000,
        })
        .unwrap();
        let first = sender.delay_before_retry(1);
        let third = sender.delay_before_retry(3);
        assert!(first <= Duration::from_secs(1) && first >= Duration::from_millis(750));
        assert!(third <= Duration::from_secs(4) && third >= Duration::from_secs(3));
        assert!(sender.delay_before_retry(20) <= MAX_BACKOFF);
    }
}
