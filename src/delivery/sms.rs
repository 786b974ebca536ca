//! SMS through the operator's HTTP gateway, in one of two request shapes (`sms.format`):
//!
//! - `json`: `POST {"to", "body", "challenge_id"}` (plus `"from"` when configured), signed
//!   with the webhook scheme when `sms.signing_secret` is set, so a small relay of the
//!   operator's own can check the request came from here;
//! - `twilio`: the form `To`, `From`, `Body` of Twilio's Messages resource, with HTTP basic
//!   auth — also spoken by several other providers and by test doubles.
//!
//! A refusal becomes a [`DeliveryError`] with the status code (and, from Twilio, its
//! numeric error code) — never the response body, which may echo the message and its code.

use std::fmt;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::templates::check_sms_length;
use super::webhook::{signature, unix_now, SIGNATURE_HEADER};
use super::{record, Channel, DeliveryError};
use crate::config::{Secret, SmsFormat, SmsSettings};

/// A number in E.164 form: `+`, then 8 to 15 digits, the first not 0.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses an E.164 number. No spaces, dashes or brackets: the caller normalizes. The
/// error does not repeat the number.
pub fn parse_e164(s: &str) -> Result<PhoneNumber, DeliveryError> {
    let invalid = |why: &str| Err(DeliveryError::InvalidRecipient(why.to_string()));
    let Some(digits) = s.strip_prefix('+') else {
        return invalid("a phone number must start with `+` and the country code (E.164)");
    };
    if !(8..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return invalid("a phone number must be `+` and 8 to 15 digits (E.164)");
    }
    if digits.starts_with('0') {
        return invalid("a country code never starts with 0 (E.164)");
    }
    Ok(PhoneNumber(s.to_string()))
}

/// One text message. `body` holds the code or link: Debug leaves it out.
#[derive(Clone)]
pub struct SmsMessage {
    /// E.164; checked again by [`SmsGateway::send`].
    pub to: String,
    pub body: String,
    /// Passed to `json` gateways so their reports can be matched to the challenge.
    pub challenge_id: String,
}

impl fmt::Debug for SmsMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmsMessage")
            .field("to", &self.to)
            .field("challenge_id", &self.challenge_id)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct JsonRequest<'a> {
    to: &'a str,
    body: &'a str,
    challenge_id: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    from: &'a str,
}

/// Sends SMS through the configured gateway. Cheap to clone.
#[derive(Clone)]
pub struct SmsGateway {
    http: reqwest::Client,
    url: reqwest::Url,
    format: SmsFormat,
    from: String,
    username: String,
    password: Secret,
    signing_secret: Secret,
    timeout: Duration,
    max_length: usize,
}

impl fmt::Debug for SmsGateway {
    // The URL may carry a credential; the host is enough to tell gateways apart.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmsGateway")
            .field("host", &self.url.host_str())
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl SmsGateway {
    /// Builds the gateway client from `[sms]` (already validated at start).
    pub fn from_settings(settings: &SmsSettings) -> Result<SmsGateway, String> {
        let url = reqwest::Url::parse(&settings.gateway_url)
            .map_err(|e| format!("sms.gateway_url: {e}"))?;
        let timeout = Duration::from_millis(settings.timeout_ms);
        let http =
            super::http_client(timeout).map_err(|e| format!("SMS gateway HTTP client: {e}"))?;
        Ok(SmsGateway {
            http,
            url,
            format: settings.format,
            from: settings.from.clone(),
            username: settings.username.clone(),
            password: settings.password.clone(),
            signing_secret: settings.signing_secret.clone(),
            timeout,
            max_length: settings.max_length,
        })
    }

    /// Sends one message; `Ok` once the gateway answered 2xx (accepted, not necessarily
    /// delivered to the handset). Not retried here: a resend is the caller's decision.
    pub async fn send(&self, message: &SmsMessage) -> Result<(), DeliveryError> {
        let started = Instant::now();
        let outcome = self.send_once(message).await;
        record(Channel::Sms, started, outcome.as_ref().err());
        outcome
    }

    async fn send_once(&self, message: &SmsMessage) -> Result<(), DeliveryError> {
        let to = parse_e164(&message.to)?;
        check_sms_length(&message.body, self.max_length)?;
        let mut request = self.http.post(self.url.clone());
        match self.format {
            SmsFormat::Json => {
                let payload = serde_json::to_vec(&JsonRequest {
                    to: to.as_str(),
                    body: &message.body,
                    challenge_id: &message.challenge_id,
                    from: &self.from,
                })
                .expect("a struct of strings serializes");
                if !self.signing_secret.is_empty() {
                    let header = signature(
                        self.signing_secret.expose().as_bytes(),
                        unix_now(),
                        &payload,
                    );
                    request = request.header(SIGNATURE_HEADER, header);
                }
                request = request
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(payload);
            }
            SmsFormat::Twilio => {
                request = request.form(&[
                    ("To", to.as_str()),
                    ("From", self.from.as_str()),
                    ("Body", message.body.as_str()),
                ]);
            }
        }
        if !self.username.is_empty() {
            request = request.basic_auth(&self.username, Some(self.password.expose()));
        }
        let response = request
            .send()
            .await
            .map_err(|error| super::http_failure(&error, self.timeout))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let twilio_code = match self.format {
            SmsFormat::Twilio => twilio_error_code(response).await,
            SmsFormat::Json => None,
        };
        Err(refusal(status.as_u16(), twilio_code))
    }
}

/// Twilio error codes that mean the number itself cannot receive this message.
const TWILIO_RECIPIENT_ERRORS: [u64; 5] = [
    21211, // invalid 'To' number
    21214, // 'To' number cannot be reached
    21408, // no permission to send to this region
    21610, // the recipient replied STOP
    21614, // 'To' is not a mobile number
];

fn refusal(status: u16, twilio_code: Option<u64>) -> DeliveryError {
    match twilio_code {
        Some(code) if TWILIO_RECIPIENT_ERRORS.contains(&code) => DeliveryError::InvalidRecipient(
            format!("the gateway answered {status} (Twilio error {code})"),
        ),
        Some(code) => DeliveryError::Rejected(format!(
            "the gateway answered {status} (Twilio error {code})"
        )),
        None => DeliveryError::Rejected(format!("the gateway answered {status}")),
    }
}

/// The numeric `code` of a Twilio error body, read from at most 4 KiB of it. Only the
/// number is kept.
async fn twilio_error_code(mut response: reqwest::Response) -> Option<u64> {
    const LIMIT: usize = 4096;
    let mut body = Vec::new();
    while body.len() < LIMIT {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    body.truncate(LIMIT);
    let value: serde_json::Value = serde_json::from_slice(&body).ok()?;
    value.get("code")?.as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_numbers_parse() {
        assert_eq!(parse_e164("+15551234567").unwrap().as_str(), "+15551234567");
        assert!(parse_e164("+3212345678").is_ok());
        assert!(parse_e164("+123456789012345").is_ok());
    }

    #[test]
    fn non_e164_numbers_are_invalid_recipients() {
        for bad in [
            "15551234567",
            "+1555",
            "+1234567890123456",
            "+0123456789",
            "+1 555 123 4567",
            "+1555123456a",
            "",
            "+",
        ] {
            let error = parse_e164(bad).unwrap_err();
            assert_eq!(error.kind(), "invalid_recipient", "{bad}");
            assert!(!error.to_string().contains(bad) || bad.is_empty() || bad == "+");
        }
    }

    #[test]
    fn twilio_recipient_errors_are_invalid_recipients() {
        assert_eq!(refusal(400, Some(21211)).kind(), "invalid_recipient");
        assert_eq!(refusal(400, Some(20003)).kind(), "rejected");
        assert_eq!(refusal(500, None).kind(), "rejected");
        assert!(refusal(401, Some(20003)).to_string().contains("20003"));
    }
}
