//! The bounds every string and list of a request is held to (README.md, "Limits"), and
//! the checks that name the offending field. Faces parse their wire format into domain
//! values; these checks run in the engine, so every face holds the same bounds.

use super::Error;
use crate::model::Details;

pub const MAX_USER_ID: usize = 256;
pub const MAX_MESSAGE: usize = 1024;
pub const MAX_FIELDS: usize = 20;
pub const MAX_LABEL: usize = 64;
pub const MAX_VALUE: usize = 256;
pub const MAX_HIDDEN_DETAILS: usize = 4096;
pub const MAX_URL: usize = 2048;
pub const MAX_IDEMPOTENCY_KEY: usize = 128;
pub const MAX_CODE: usize = 32;

/// Checks a string's length in characters (1..=max), naming the field.
pub fn check_text(field: &str, value: &str, max: usize) -> Result<(), Error> {
    let n = value.chars().count();
    if n == 0 {
        return Err(Error::invalid(
            "invalid_field",
            format!("{field} must not be empty"),
        ));
    }
    if n > max {
        return Err(Error::invalid(
            "field_too_long",
            format!("{field} is longer than {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(
            "invalid_field",
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(())
}

/// Checks an optional number against its range, naming the field: `out_of_range`.
pub fn check_range<T>(
    field: &str,
    value: Option<T>,
    range: std::ops::RangeInclusive<T>,
) -> Result<(), Error>
where
    T: PartialOrd + std::fmt::Display,
{
    match value {
        Some(v) if !range.contains(&v) => Err(Error::invalid(
            "out_of_range",
            format!(
                "{field} must be between {} and {}",
                range.start(),
                range.end()
            ),
        )),
        _ => Ok(()),
    }
}

pub fn check_details(details: &Details) -> Result<(), Error> {
    if let Some(message) = &details.message {
        check_text("details.message", message, MAX_MESSAGE)?;
    }
    if details.fields.len() > MAX_FIELDS {
        return Err(Error::invalid(
            "too_many_items",
            format!("details.fields holds more than {MAX_FIELDS} entries"),
        ));
    }
    for (i, field) in details.fields.iter().enumerate() {
        check_text(
            &format!("details.fields[{i}].label"),
            &field.label,
            MAX_LABEL,
        )?;
        check_text(
            &format!("details.fields[{i}].value"),
            &field.value,
            MAX_VALUE,
        )?;
    }
    Ok(())
}

pub fn check_url(field: &str, value: &str) -> Result<(), Error> {
    check_text(field, value, MAX_URL)?;
    let lower = value.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
        .ok_or_else(|| {
            Error::invalid(
                "invalid_url",
                format!("{field} must be an http or https URL"),
            )
        })?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || host.contains(char::is_whitespace) || host.contains('@') {
        return Err(Error::invalid(
            "invalid_url",
            format!("{field} must name a host"),
        ));
    }
    Ok(())
}

/// Applies the outbound URL policy to a URL given in a request.
pub fn check_outbound(
    field: &str,
    url: &str,
    policy: &crate::outbound::OutboundPolicy,
) -> Result<(), Error> {
    use crate::outbound::Refused;
    match policy.check_url(url) {
        Ok(_) => Ok(()),
        Err(Refused::Malformed) => Err(Error::invalid(
            "invalid_url",
            format!("{field} must be an http or https URL with a host"),
        )),
        Err(refused) => Err(Error::invalid(
            "url_not_allowed",
            format!("{field}: {refused}"),
        )),
    }
}
