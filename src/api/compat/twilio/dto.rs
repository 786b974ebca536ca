//! What the Twilio face stores in its records and how it renders resources: snake_case
//! keys, date-times exactly `YYYY-MM-DDTHH:MM:SSZ` (the only form the SDK parses), the
//! paging envelope with absolute `meta` URLs. Objects the device signs over (`details`,
//! `hidden_details`) are rendered one way only, so the text a device received is the
//! text the server rebuilds when it checks the signature.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::errors::TwilioError;
use crate::clock::Millis;

/// `YYYY-MM-DDTHH:MM:SSZ` (UTC, whole seconds) of a time in ms.
pub fn date(ms: Millis) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

/// A date-time parameter as the SDK sends it (`YYYY-MM-DDTHH:MM:SSZ`, or any RFC 3339
/// time), in ms.
pub fn parse_date(name: &str, raw: &str) -> Result<Millis, TwilioError> {
    use time::format_description::well_known::Rfc3339;
    let t = time::OffsetDateTime::parse(raw, &Rfc3339).map_err(|_| {
        TwilioError::invalid(format!(
            "{name} must be a date-time like 2025-01-31T12:00:00Z"
        ))
    })?;
    Ok((t.unix_timestamp_nanos() / 1_000_000) as Millis)
}

/// A Verify Service as stored (namespace `twilio.service`, named by its SID).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceRecord {
    pub account_sid: String,
    pub friendly_name: String,
    pub code_length: u64,
    pub totp_issuer: Option<String>,
    pub totp_time_step: u64,
    pub totp_code_length: u64,
    pub totp_skew: u64,
    pub push_include_date: bool,
    pub push_apn_credential_sid: Option<String>,
    pub push_fcm_credential_sid: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// An Entity as stored (namespace `twilio.entity`, named `<service SID>/<identity>`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EntityRecord {
    pub sid: String,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// What a factor has in Twilio's model beyond the engine's factor (namespace
/// `twilio.factor`, named by the factor's SID).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FactorRecord {
    pub metadata: Option<serde_json::Map<String, Value>>,
    pub app_id: Option<String>,
    pub notification_platform: Option<String>,
    pub notification_token: Option<String>,
    pub sdk_version: Option<String>,
}

/// A Webhook as stored (namespace `twilio.webhook`, named `<service SID>/<webhook SID>`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookRecord {
    pub sid: String,
    pub friendly_name: String,
    pub event_types: Vec<String>,
    pub webhook_url: String,
    pub status: String,
    pub version: String,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// The Twilio paging envelope: `key` names the list, `url` is the page's own absolute
/// URL without its paging parameters, and the others carry every filter.
pub struct Envelope<'a> {
    pub key: &'a str,
    /// Absolute URL of the list, without a query.
    pub url: &'a str,
    /// The filters, as given (Twilio names), in a stable order.
    pub filters: &'a [(&'a str, String)],
    pub page: u64,
    pub page_size: usize,
    /// The token of the next page, if any.
    pub next: Option<String>,
    /// The token of the previous page, if any.
    pub previous: Option<String>,
}

impl Envelope<'_> {
    fn page_url(&self, page: u64, token: Option<&str>) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in self.filters {
            query.append_pair(name, value);
        }
        query.append_pair("PageSize", &self.page_size.to_string());
        query.append_pair("Page", &page.to_string());
        if let Some(token) = token {
            query.append_pair("PageToken", token);
        }
        format!("{}?{}", self.url, query.finish())
    }

    pub fn render(&self, items: Vec<Value>) -> Value {
        let mut body = serde_json::Map::new();
        body.insert(self.key.to_string(), Value::Array(items));
        body.insert(
            "meta".into(),
            json!({
                "page": self.page,
                "page_size": self.page_size,
                "first_page_url": self.page_url(0, None),
                "previous_page_url": self.previous.as_deref().map(|t| self.page_url(self.page.saturating_sub(1), Some(t))),
                "url": self.page_url(self.page, None),
                "next_page_url": self.next.as_deref().map(|t| self.page_url(self.page + 1, Some(t))),
                "key": self.key,
            }),
        );
        Value::Object(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_have_exactly_the_sdk_format() {
        assert_eq!(date(0), "1970-01-01T00:00:00Z");
        assert_eq!(date(1_700_000_000_999), "2023-11-14T22:13:20Z");
        assert_eq!(
            parse_date("ExpirationDate", "2023-11-14T22:13:20Z").unwrap(),
            1_700_000_000_000
        );
        assert!(parse_date("ExpirationDate", "tomorrow").is_err());
    }

    #[test]
    fn an_envelope_carries_every_filter_in_absolute_urls() {
        let filters = [
            ("Status", "pending".to_string()),
            ("Order", "desc".to_string()),
        ];
        let envelope = Envelope {
            key: "challenges",
            url: "http://h/v2/Services/VA1/Entities/e/Challenges",
            filters: &filters,
            page: 1,
            page_size: 2,
            next: Some("PT4".into()),
            previous: Some("PB2".into()),
        };
        let body = envelope.render(vec![json!({"sid": "YC1"})]);
        let meta = &body["meta"];
        assert_eq!(meta["key"], "challenges");
        assert_eq!(
            meta["next_page_url"],
            "http://h/v2/Services/VA1/Entities/e/Challenges?Status=pending&Order=desc&PageSize=2&Page=2&PageToken=PT4"
        );
        assert!(meta["previous_page_url"]
            .as_str()
            .unwrap()
            .contains("Page=0&PageToken=PB2"));
        assert_eq!(body["challenges"][0]["sid"], "YC1");
        let last = Envelope {
            next: None,
            previous: None,
            ..envelope
        }
        .render(vec![]);
        assert!(last["meta"]["next_page_url"].is_null());
    }
}
