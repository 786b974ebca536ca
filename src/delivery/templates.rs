//! Message text: the email subject, text and HTML bodies and the SMS body of a code or a
//! link challenge, rendered with minijinja (Jinja2 syntax, which policy authors are likely
//! to know already).
//!
//! A policy may carry a [`TemplateSet`]: per-locale overrides of any of the four fields.
//! Each field is looked up along one chain and the first hit wins: the requested locale
//! (`nl-BE`), its language (`nl`), the set's `default_locale`, then the shipped English
//! default (files under `src/delivery/templates/`, embedded in the binary). [`check`] runs
//! when a policy is created or replaced, so a broken template is refused with its locale
//! and field named, rather than failing later at delivery.
//!
//! Policy templates come from API callers, so rendering is bounded: only `.html` templates
//! are HTML-escaped (escaping a text body or an SMS would show `&amp;` to the reader),
//! every render runs on a fuel budget, sources and outputs have size limits, and the
//! engine's `debug` feature is left out, so an error message never quotes the variables
//! (the code).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

use minijinja::value::Value;
use minijinja::{AutoEscape, Environment};
use serde::{Deserialize, Serialize};

use crate::clock::{rfc3339, Millis};
use crate::model::{DetailField, Details};

/// The locale of the shipped templates, the end of every fallback chain.
pub const SHIPPED_LOCALE: &str = "en";
/// Largest template source accepted in a policy, per field.
pub const MAX_SOURCE_BYTES: usize = 64 * 1024;
/// Largest rendered field.
pub const MAX_OUTPUT_BYTES: usize = 256 * 1024;
/// Instructions one render may execute; ample for any message, fatal to a runaway loop.
const FUEL: u64 = 100_000;

/// What the message asks the reader to do: type a code, or open a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Code,
    Link,
}

/// One overridable part of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Subject,
    Text,
    Html,
    Sms,
}

impl Field {
    pub const ALL: [Field; 4] = [Field::Subject, Field::Text, Field::Html, Field::Sms];

    pub fn as_str(self) -> &'static str {
        match self {
            Field::Subject => "subject",
            Field::Text => "text",
            Field::Html => "html",
            Field::Sms => "sms",
        }
    }

    /// The template name's extension decides escaping: only `.html` is escaped.
    fn extension(self) -> &'static str {
        match self {
            Field::Html => "html",
            _ => "txt",
        }
    }
}

/// A policy's templates: overrides per locale, and the locale to fall back to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateSet {
    /// Used when the requested locale (and its language) has no override for a field.
    #[serde(default = "shipped_locale", alias = "locale_default")]
    pub default_locale: String,
    /// Locale tag (`en`, `nl`, `nl-BE`; matched case-insensitively, `_` as `-`) → overrides.
    #[serde(default, alias = "variants")]
    pub locales: BTreeMap<String, LocaleTemplates>,
}

impl Default for TemplateSet {
    fn default() -> Self {
        TemplateSet {
            default_locale: shipped_locale(),
            locales: BTreeMap::new(),
        }
    }
}

fn shipped_locale() -> String {
    SHIPPED_LOCALE.to_string()
}

/// Overrides for one locale; a missing field falls back along the chain. An empty `html`
/// turns the HTML part off (text-only email); the other fields may not be empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocaleTemplates {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms: Option<String>,
}

impl LocaleTemplates {
    pub fn get(&self, field: Field) -> Option<&str> {
        match field {
            Field::Subject => self.subject.as_deref(),
            Field::Text => self.text.as_deref(),
            Field::Html => self.html.as_deref(),
            Field::Sms => self.sms.as_deref(),
        }
    }
}

/// What a template can use. `code` and `link` are secrets: Debug leaves them out.
#[derive(Clone)]
pub struct MessageVars {
    /// The one-time code (code messages).
    pub code: Option<String>,
    /// The answer link, answer token included (link messages).
    pub link: Option<String>,
    pub user_id: String,
    pub details: Details,
    /// The locale the caller asked for; `None` (or a malformed tag) uses the set's default.
    pub locale: Option<String>,
    pub expires_at: Millis,
    /// The time of rendering, from the engine's clock; `expires_in` is counted from it.
    pub now: Millis,
}

impl fmt::Debug for MessageVars {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageVars")
            .field("code", &self.code.as_ref().map(|_| "***"))
            .field("link", &self.link.as_ref().map(|_| "***"))
            .field("user_id", &self.user_id)
            .field("locale", &self.locale)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A rendered email; `html` is `None` when the policy turned the HTML part off.
#[derive(Clone, PartialEq, Eq)]
pub struct EmailContent {
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
}

impl fmt::Debug for EmailContent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailContent")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A template does not parse, or fails on sample values; refused at policy create.
    #[error("template `{locale}.{field}` is invalid: {message}")]
    Invalid {
        locale: String,
        field: &'static str,
        message: String,
    },
    /// A template failed while rendering a real message.
    #[error("template `{locale}.{field}` failed to render: {message}")]
    Render {
        locale: String,
        field: &'static str,
        message: String,
    },
    #[error(
        "locale `{0}` is not a locale tag (letters, digits, `-` or `_`; at most 35 characters)"
    )]
    BadLocale(String),
    /// A subject with a line break would let its text forge mail headers.
    #[error("the rendered subject contains a line break")]
    SubjectLineBreak,
    #[error("the rendered SMS is {length} characters long; sms.max_length is {max}")]
    SmsTooLong { length: usize, max: usize },
}

/// Renders messages from a policy's [`TemplateSet`] and the shipped defaults.
#[derive(Debug, Clone)]
pub struct Templates {
    sms_max_length: usize,
}

impl Templates {
    /// `sms_max_length` is `sms.max_length`: the longest SMS body, in characters.
    pub fn new(sms_max_length: usize) -> Templates {
        Templates { sms_max_length }
    }

    /// The subject, text and HTML of an email. The subject is trimmed and may not contain
    /// a line break.
    pub fn email(
        &self,
        set: &TemplateSet,
        kind: MessageKind,
        vars: &MessageVars,
    ) -> Result<EmailContent, TemplateError> {
        let context = context(set, vars);
        let chain = chain(set, vars.locale.as_deref());
        let subject = render(set, &chain, kind, Field::Subject, &context)?;
        let subject = subject.trim().to_string();
        if subject.contains(['\r', '\n']) {
            return Err(TemplateError::SubjectLineBreak);
        }
        let text = render(set, &chain, kind, Field::Text, &context)?;
        let html = match resolve(set, &chain, Field::Html) {
            Source::Override { source: "", .. } => None,
            _ => Some(render(set, &chain, kind, Field::Html, &context)?),
        };
        Ok(EmailContent {
            subject,
            text,
            html,
        })
    }

    /// The SMS body, trimmed, at most `sms.max_length` characters.
    pub fn sms(
        &self,
        set: &TemplateSet,
        kind: MessageKind,
        vars: &MessageVars,
    ) -> Result<String, TemplateError> {
        let context = context(set, vars);
        let chain = chain(set, vars.locale.as_deref());
        let body = render(set, &chain, kind, Field::Sms, &context)?;
        let body = body.trim().to_string();
        check_sms_length(&body, self.sms_max_length)?;
        Ok(body)
    }
}

/// The SMS length rule, shared with the gateway: counted in characters, not bytes.
pub fn check_sms_length(body: &str, max: usize) -> Result<(), TemplateError> {
    let length = body.chars().count();
    if length > max {
        return Err(TemplateError::SmsTooLong { length, max });
    }
    Ok(())
}

/// Checks every template of `set`: locale tags are well formed, sources are within
/// [`MAX_SOURCE_BYTES`], non-empty where required, parse, and render with sample values
/// (which catches unknown filters and runaway loops). The error names locale and field.
pub fn check(set: &TemplateSet) -> Result<(), TemplateError> {
    normalize(&set.default_locale)
        .ok_or_else(|| TemplateError::BadLocale(set.default_locale.clone()))?;
    let env = environment();
    for (locale, templates) in &set.locales {
        let tag = normalize(locale).ok_or_else(|| TemplateError::BadLocale(locale.clone()))?;
        let sample = context(set, &sample_vars(&tag));
        for field in Field::ALL {
            let Some(source) = templates.get(field) else {
                continue;
            };
            let invalid = |message: String| TemplateError::Invalid {
                locale: locale.clone(),
                field: field.as_str(),
                message,
            };
            if source.len() > MAX_SOURCE_BYTES {
                return Err(invalid(format!("longer than {MAX_SOURCE_BYTES} bytes")));
            }
            if source.trim().is_empty() && field != Field::Html {
                return Err(invalid(
                    "is empty; leave the field out to use the default".to_string(),
                ));
            }
            let output = env
                .render_named_str(&template_name(&tag, field), source, sample.clone())
                .map_err(|e| invalid(e.to_string()))?;
            if output.len() > MAX_OUTPUT_BYTES {
                return Err(invalid(format!(
                    "renders to more than {MAX_OUTPUT_BYTES} bytes"
                )));
            }
        }
    }
    Ok(())
}

/// The one environment: shipped templates registered by name, escaping by extension,
/// a fuel budget. Immutable once built.
fn environment() -> &'static Environment<'static> {
    static ENVIRONMENT: OnceLock<Environment<'static>> = OnceLock::new();
    ENVIRONMENT.get_or_init(|| {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html") {
                AutoEscape::Html
            } else {
                AutoEscape::None
            }
        });
        env.set_fuel(Some(FUEL));
        for (name, source) in SHIPPED {
            env.add_template(name, source)
                .expect("shipped templates parse");
        }
        env
    })
}

/// Shipped defaults, named `<kind>/<field>.<ext>`.
const SHIPPED: [(&str, &str); 8] = [
    (
        "code/subject.txt",
        include_str!("templates/code_subject.txt"),
    ),
    ("code/text.txt", include_str!("templates/code_text.txt")),
    ("code/html.html", include_str!("templates/code_html.html")),
    ("code/sms.txt", include_str!("templates/code_sms.txt")),
    (
        "link/subject.txt",
        include_str!("templates/link_subject.txt"),
    ),
    ("link/text.txt", include_str!("templates/link_text.txt")),
    ("link/html.html", include_str!("templates/link_html.html")),
    ("link/sms.txt", include_str!("templates/link_sms.txt")),
];

fn shipped_name(kind: MessageKind, field: Field) -> String {
    let kind = match kind {
        MessageKind::Code => "code",
        MessageKind::Link => "link",
    };
    format!("{kind}/{}.{}", field.as_str(), field.extension())
}

fn template_name(locale: &str, field: Field) -> String {
    format!("{locale}/{}.{}", field.as_str(), field.extension())
}

/// Where one field's template comes from.
enum Source<'a> {
    Override { locale: &'a str, source: &'a str },
    Shipped,
}

/// `nl_BE` → `nl-be`; `None` for anything that is not a plausible tag.
fn normalize(tag: &str) -> Option<String> {
    let ok = !tag.is_empty()
        && tag.len() <= 35
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !tag.starts_with(['-', '_']);
    ok.then(|| tag.to_ascii_lowercase().replace('_', "-"))
}

/// The normalized locales to try, most specific first, without repeats.
fn chain(set: &TemplateSet, requested: Option<&str>) -> Vec<String> {
    let mut chain = Vec::with_capacity(3);
    if let Some(tag) = requested.and_then(normalize) {
        if let Some((language, _)) = tag.split_once('-') {
            let language = language.to_string();
            chain.push(tag);
            chain.push(language);
        } else {
            chain.push(tag);
        }
    }
    if let Some(default) = normalize(&set.default_locale) {
        if !chain.contains(&default) {
            chain.push(default);
        }
    }
    chain
}

fn resolve<'a>(set: &'a TemplateSet, chain: &[String], field: Field) -> Source<'a> {
    for wanted in chain {
        let found = set
            .locales
            .iter()
            .find(|(tag, _)| normalize(tag).as_deref() == Some(wanted.as_str()));
        if let Some((tag, templates)) = found {
            if let Some(source) = templates.get(field) {
                return Source::Override {
                    locale: tag,
                    source,
                };
            }
        }
    }
    Source::Shipped
}

fn render(
    set: &TemplateSet,
    chain: &[String],
    kind: MessageKind,
    field: Field,
    context: &Value,
) -> Result<String, TemplateError> {
    let env = environment();
    let (locale, result) = match resolve(set, chain, field) {
        Source::Override { locale, source } => {
            let name = template_name(&normalize(locale).unwrap_or_default(), field);
            (locale, env.render_named_str(&name, source, context.clone()))
        }
        Source::Shipped => (
            "en (shipped)",
            env.get_template(&shipped_name(kind, field))
                .and_then(|t| t.render(context.clone())),
        ),
    };
    let failed = |message: String| TemplateError::Render {
        locale: locale.to_string(),
        field: field.as_str(),
        message,
    };
    let output = result.map_err(|e| failed(e.to_string()))?;
    if output.len() > MAX_OUTPUT_BYTES {
        return Err(failed(format!(
            "renders to more than {MAX_OUTPUT_BYTES} bytes"
        )));
    }
    Ok(output)
}

/// The template variables. Absent values are left undefined (they print as nothing),
/// never `none`.
fn context(set: &TemplateSet, vars: &MessageVars) -> Value {
    let remaining = (vars.expires_at - vars.now).max(0);
    let seconds = u64::try_from((remaining + 500) / 1000).unwrap_or(0);
    let fields: Vec<Value> = vars.details.fields.iter().map(field_value).collect();
    let mut details: BTreeMap<&str, Value> = BTreeMap::new();
    if let Some(message) = &vars.details.message {
        details.insert("message", Value::from(message.as_str()));
    }
    details.insert("fields", Value::from(fields));

    let locale = vars
        .locale
        .as_deref()
        .filter(|tag| normalize(tag).is_some())
        .unwrap_or(&set.default_locale);
    let mut context: BTreeMap<&str, Value> = BTreeMap::new();
    if let Some(code) = &vars.code {
        context.insert("code", Value::from(code.as_str()));
    }
    if let Some(link) = &vars.link {
        context.insert("link", Value::from(link.as_str()));
    }
    context.insert("expires_in", Value::from(human_duration(seconds)));
    context.insert("expires_in_minutes", Value::from(rounded_minutes(seconds)));
    context.insert("expires_in_seconds", Value::from(seconds));
    context.insert("expires_at", Value::from(rfc3339(vars.expires_at)));
    context.insert("user_id", Value::from(vars.user_id.as_str()));
    context.insert("details", Value::from(details));
    context.insert("locale", Value::from(locale));
    Value::from(context)
}

fn field_value(field: &DetailField) -> Value {
    let mut map: BTreeMap<&str, Value> = BTreeMap::new();
    map.insert("label", Value::from(field.label.as_str()));
    map.insert("value", Value::from(field.value.as_str()));
    Value::from(map)
}

/// Values that exercise every variable, for [`check`].
fn sample_vars(locale: &str) -> MessageVars {
    MessageVars {
        code: Some("123456".to_string()),
        link: Some("https://example.com/challenge?token=sample".to_string()),
        user_id: "user-1".to_string(),
        details: Details {
            message: Some("Sign in from a new device?".to_string()),
            fields: vec![DetailField {
                label: "IP".to_string(),
                value: "203.0.113.9".to_string(),
            }],
        },
        locale: Some(locale.to_string()),
        expires_at: 1_700_000_300_000,
        now: 1_700_000_000_000,
    }
}

/// Minutes, rounded to the nearest, and at least 1 while any time is left.
fn rounded_minutes(seconds: u64) -> u64 {
    if seconds == 0 {
        0
    } else {
        ((seconds + 30) / 60).max(1)
    }
}

/// "45 seconds", "5 minutes", "1 hour 30 minutes", "2 days 3 hours" — English, like the
/// shipped templates; other languages use `expires_in_minutes` or `expires_at`.
pub fn human_duration(seconds: u64) -> String {
    fn unit(n: u64, name: &str) -> String {
        if n == 1 {
            format!("1 {name}")
        } else {
            format!("{n} {name}s")
        }
    }
    fn pair(big: u64, big_name: &str, small: u64, small_name: &str) -> String {
        if small == 0 {
            unit(big, big_name)
        } else {
            format!("{} {}", unit(big, big_name), unit(small, small_name))
        }
    }
    const MINUTE: u64 = 60;
    const HOUR: u64 = 60 * MINUTE;
    const DAY: u64 = 24 * HOUR;
    if seconds < MINUTE {
        return unit(seconds, "second");
    }
    let minutes = rounded_minutes(seconds);
    if minutes < 60 {
        return unit(minutes, "minute");
    }
    // Round to whole minutes first, so 1 h 59 min 50 s reads "2 hours".
    let seconds = minutes * MINUTE;
    if seconds < DAY {
        return pair(seconds / HOUR, "hour", seconds % HOUR / MINUTE, "minute");
    }
    let hours = (seconds + HOUR / 2) / HOUR;
    pair(hours / 24, "day", hours % 24, "hour")
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = 1_700_000_000_000;

    fn vars(kind: MessageKind) -> MessageVars {
        MessageVars {
            code: (kind == MessageKind::Code).then(|| "482913".to_string()),
            link: (kind == MessageKind::Link)
                .then(|| "https://auth.example/c/ch_1?token=tok_abc&x=1".to_string()),
            user_id: "u-123".to_string(),
            details: Details {
                message: None,
                fields: Vec::new(),
            },
            locale: None,
            expires_at: NOW + 300_000,
            now: NOW,
        }
    }

    fn set(locales: &[(&str, LocaleTemplates)]) -> TemplateSet {
        TemplateSet {
            default_locale: "en".to_string(),
            locales: locales
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        }
    }

    fn subject(text: &str) -> LocaleTemplates {
        LocaleTemplates {
            subject: Some(text.to_string()),
            ..LocaleTemplates::default()
        }
    }

    #[test]
    fn shipped_code_email_carries_the_code_and_expiry() {
        let email = Templates::new(1600)
            .email(
                &TemplateSet::default(),
                MessageKind::Code,
                &vars(MessageKind::Code),
            )
            .unwrap();
        assert_eq!(email.subject, "Your verification code");
        assert!(email.text.contains("482913"), "{}", email.text);
        assert!(
            email.text.contains("expires in 5 minutes"),
            "{}",
            email.text
        );
        assert!(!email.text.contains("none"), "{}", email.text);
        assert!(!email.text.contains("\n\n\n"), "{:?}", email.text);
        let html = email.html.unwrap();
        assert!(html.contains(">482913<"), "{html}");
        assert!(html.contains("lang=\"en\""));
        assert!(!html.contains("http"), "no external assets: {html}");
    }

    #[test]
    fn shipped_text_lays_out_details_line_by_line() {
        let mut v = vars(MessageKind::Code);
        v.details = Details {
            message: Some("Sign in from Ottawa?".to_string()),
            fields: vec![
                DetailField {
                    label: "IP".to_string(),
                    value: "203.0.113.9".to_string(),
                },
                DetailField {
                    label: "Browser".to_string(),
                    value: "Firefox".to_string(),
                },
            ],
        };
        let text = Templates::new(1600)
            .email(&TemplateSet::default(), MessageKind::Code, &v)
            .unwrap()
            .text;
        assert_eq!(
            text,
            "Your verification code is:\n\n    482913\n\nIt expires in 5 minutes.\n\n\
             Sign in from Ottawa?\n\nIP: 203.0.113.9\nBrowser: Firefox\n\n\
             If you did not ask for this code, you can ignore this message."
        );
    }

    #[test]
    fn shipped_link_email_and_sms_carry_the_link() {
        let templates = Templates::new(1600);
        let vars = vars(MessageKind::Link);
        let email = templates
            .email(&TemplateSet::default(), MessageKind::Link, &vars)
            .unwrap();
        assert!(email
            .text
            .contains("https://auth.example/c/ch_1?token=tok_abc&x=1"));
        assert!(email.text.contains("5 minutes"));
        let html = email.html.unwrap();
        assert!(html.contains("tok_abc&amp;x=1"), "{html}");
        let sms = templates
            .sms(&TemplateSet::default(), MessageKind::Link, &vars)
            .unwrap();
        assert!(sms.contains("tok_abc&x=1"), "{sms}");
    }

    #[test]
    fn shipped_code_sms_reads_as_one_line() {
        let sms = Templates::new(1600)
            .sms(
                &TemplateSet::default(),
                MessageKind::Code,
                &vars(MessageKind::Code),
            )
            .unwrap();
        assert_eq!(sms, "482913 is your code. It expires in 5 minutes.");
    }

    #[test]
    fn details_are_escaped_in_html_but_not_in_text() {
        let mut vars = vars(MessageKind::Code);
        vars.details = Details {
            message: Some("Approve <b>Tom & Jerry</b>?".to_string()),
            fields: vec![DetailField {
                label: "IP".to_string(),
                value: "<203.0.113.9>".to_string(),
            }],
        };
        let email = Templates::new(1600)
            .email(&TemplateSet::default(), MessageKind::Code, &vars)
            .unwrap();
        assert!(email.text.contains("Approve <b>Tom & Jerry</b>?"));
        assert!(email.text.contains("IP: <203.0.113.9>"));
        let html = email.html.unwrap();
        assert!(
            html.contains("Approve &lt;b&gt;Tom &amp; Jerry&lt;&#x2f;b&gt;?"),
            "{html}"
        );
        assert!(!html.contains("<b>"));
        assert!(html.contains("&lt;203.0.113.9&gt;"));
    }

    #[test]
    fn overrides_apply_per_locale_and_fall_back_along_the_chain() {
        let set = TemplateSet {
            default_locale: "fr".to_string(),
            locales: [
                ("nl".to_string(), subject("Uw code ({{ locale }})")),
                (
                    "nl-BE".to_string(),
                    LocaleTemplates {
                        sms: Some("BE {{ code }}".to_string()),
                        ..LocaleTemplates::default()
                    },
                ),
                (
                    "fr".to_string(),
                    LocaleTemplates {
                        subject: Some("Votre code".to_string()),
                        text: Some("Code : {{ code }}".to_string()),
                        ..LocaleTemplates::default()
                    },
                ),
            ]
            .into_iter()
            .collect(),
        };
        let templates = Templates::new(1600);
        let mut v = vars(MessageKind::Code);

        v.locale = Some("nl_be".to_string());
        let email = templates.email(&set, MessageKind::Code, &v).unwrap();
        // nl-be has no subject → nl; no text in nl-be or nl → the default locale fr.
        assert_eq!(email.subject, "Uw code (nl_be)");
        assert_eq!(email.text, "Code : 482913");
        // Nobody overrides html → shipped.
        assert!(email.html.unwrap().contains("Your verification code is:"));
        assert_eq!(
            templates.sms(&set, MessageKind::Code, &v).unwrap(),
            "BE 482913"
        );

        v.locale = Some("nl-NL".to_string());
        assert_eq!(
            templates.sms(&set, MessageKind::Code, &v).unwrap(),
            "482913 is your code. It expires in 5 minutes."
        );

        v.locale = Some("de".to_string());
        assert_eq!(
            templates
                .email(&set, MessageKind::Code, &v)
                .unwrap()
                .subject,
            "Votre code"
        );

        v.locale = None;
        let email = templates.email(&set, MessageKind::Code, &v).unwrap();
        assert_eq!(email.subject, "Votre code");

        v.locale = Some("not a tag!".to_string());
        let email = templates.email(&set, MessageKind::Code, &v).unwrap();
        assert_eq!(email.subject, "Votre code");
    }

    #[test]
    fn an_empty_html_override_makes_a_text_only_email() {
        let set = set(&[(
            "en",
            LocaleTemplates {
                html: Some(String::new()),
                ..LocaleTemplates::default()
            },
        )]);
        check(&set).unwrap();
        let email = Templates::new(1600)
            .email(&set, MessageKind::Code, &vars(MessageKind::Code))
            .unwrap();
        assert_eq!(email.html, None);
    }

    #[test]
    fn check_names_the_locale_and_field_of_a_broken_template() {
        let broken = set(&[
            ("en", subject("fine")),
            (
                "nl",
                LocaleTemplates {
                    text: Some("{% if code %}unclosed".to_string()),
                    ..LocaleTemplates::default()
                },
            ),
        ]);
        let error = check(&broken).unwrap_err();
        assert!(
            matches!(&error, TemplateError::Invalid { locale, field: "text", .. } if locale == "nl")
        );
        assert!(error.to_string().contains("`nl.text`"), "{error}");
    }

    #[test]
    fn check_refuses_unknown_filters_runaway_loops_bad_tags_and_empty_fields() {
        let unknown_filter = set(&[("de", subject("{{ code | shout }}"))]);
        assert!(check(&unknown_filter)
            .unwrap_err()
            .to_string()
            .contains("`de.subject`"));

        let runaway = set(&[(
            "en",
            LocaleTemplates {
                text: Some(
                    "{% for a in range(1000) %}{% for b in range(1000) %}x{% endfor %}{% endfor %}"
                        .to_string(),
                ),
                ..LocaleTemplates::default()
            },
        )]);
        assert!(matches!(
            check(&runaway),
            Err(TemplateError::Invalid { field: "text", .. })
        ));

        let bad_tag = set(&[("en us", subject("x"))]);
        assert!(matches!(check(&bad_tag), Err(TemplateError::BadLocale(tag)) if tag == "en us"));

        let bad_default = TemplateSet {
            default_locale: String::new(),
            ..TemplateSet::default()
        };
        assert!(matches!(
            check(&bad_default),
            Err(TemplateError::BadLocale(_))
        ));

        let empty = set(&[("en", subject("  "))]);
        assert!(check(&empty)
            .unwrap_err()
            .to_string()
            .contains("`en.subject`"));

        assert!(check(&TemplateSet::default()).is_ok());
        assert!(check(&set(&[("pt-BR", subject("Seu código {{ code }}"))])).is_ok());
    }

    #[test]
    fn an_sms_over_the_limit_is_refused() {
        let set = set(&[(
            "en",
            LocaleTemplates {
                sms: Some("{{ code }} {{ details.message }}".to_string()),
                ..LocaleTemplates::default()
            },
        )]);
        let mut v = vars(MessageKind::Code);
        v.details.message = Some("é".repeat(20));
        // 6 + 1 + 20 characters (the é counts once, though it is two bytes).
        assert_eq!(
            Templates::new(27)
                .sms(&set, MessageKind::Code, &v)
                .unwrap()
                .chars()
                .count(),
            27
        );
        assert_eq!(
            Templates::new(26)
                .sms(&set, MessageKind::Code, &v)
                .unwrap_err(),
            TemplateError::SmsTooLong {
                length: 27,
                max: 26
            }
        );
    }

    #[test]
    fn a_line_break_in_the_rendered_subject_is_refused() {
        let set = set(&[("en", subject("Code for {{ details.message }}"))]);
        let mut v = vars(MessageKind::Code);
        v.details.message = Some("x\r\nBcc: victim@example.com".to_string());
        assert_eq!(
            Templates::new(1600)
                .email(&set, MessageKind::Code, &v)
                .unwrap_err(),
            TemplateError::SubjectLineBreak
        );
        // A trailing newline in the template itself is trimmed, not refused.
        let set = self::set(&[("en", subject("Your code\n"))]);
        let email = Templates::new(1600)
            .email(&set, MessageKind::Code, &vars(MessageKind::Code))
            .unwrap();
        assert_eq!(email.subject, "Your code");
    }

    #[test]
    fn every_variable_is_available() {
        let set = set(&[("en", LocaleTemplates {
            text: Some(
                "{{ code }}|{{ link }}|{{ expires_in }}|{{ expires_in_minutes }}|{{ expires_in_seconds }}|\
                 {{ expires_at }}|{{ user_id }}|{{ details.message }}|{% for f in details.fields %}{{ f.label }}={{ f.value }}{% endfor %}|{{ locale }}"
                    .to_string(),
            ),
            ..LocaleTemplates::default()
        })]);
        let mut v = vars(MessageKind::Code);
        v.link = Some("L".to_string());
        v.locale = Some("en-GB".to_string());
        v.details = Details {
            message: Some("M".to_string()),
            fields: vec![DetailField {
                label: "IP".to_string(),
                value: "1.2.3.4".to_string(),
            }],
        };
        let text = Templates::new(1600)
            .email(&set, MessageKind::Code, &v)
            .unwrap()
            .text;
        assert_eq!(
            text,
            "482913|L|5 minutes|5|300|2023-11-14T22:18:20Z|u-123|M|IP=1.2.3.4|en-GB"
        );
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(1), "1 second");
        assert_eq!(human_duration(45), "45 seconds");
        assert_eq!(human_duration(60), "1 minute");
        assert_eq!(human_duration(299), "5 minutes");
        assert_eq!(human_duration(3599), "1 hour");
        assert_eq!(human_duration(5400), "1 hour 30 minutes");
        assert_eq!(human_duration(7190), "2 hours");
        assert_eq!(human_duration(86400), "1 day");
        assert_eq!(human_duration(2 * 86400 + 3 * 3600), "2 days 3 hours");
    }

    #[test]
    fn a_template_set_reads_policy_json_with_either_naming() {
        let set: TemplateSet = serde_json::from_str(
            r#"{"locale_default": "nl", "variants": {"nl": {"subject": "Uw code"}}}"#,
        )
        .unwrap();
        assert_eq!(set.default_locale, "nl");
        assert_eq!(set.locales["nl"].subject.as_deref(), Some("Uw code"));
        let unknown = serde_json::from_str::<TemplateSet>(r#"{"locales": {"nl": {"body": "x"}}}"#);
        assert!(unknown.is_err());
    }

    #[test]
    fn debug_output_hides_the_code_and_link() {
        let v = vars(MessageKind::Code);
        assert!(!format!("{v:?}").contains("482913"));
        let email = Templates::new(1600)
            .email(&TemplateSet::default(), MessageKind::Code, &v)
            .unwrap();
        assert!(!format!("{email:?}").contains("482913"));
    }
}
