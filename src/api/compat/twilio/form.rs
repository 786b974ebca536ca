//! Twilio's request encoding: `application/x-www-form-urlencoded` bodies (and query
//! strings) with PascalCase names, dotted sub-keys (`Details.Message`,
//! `Config.TimeStep`), repeated keys for lists (`Details.Fields=…&Details.Fields=…`), and
//! JSON text inside a value for object parameters (`HiddenDetails`, `Metadata`, each
//! `Details.Fields` element). A [`Form`] keeps the pairs in order; its getters say what
//! a parameter must be and name it when it is not.

use super::errors::TwilioError;

/// The pairs of a form body or query string, in order.
#[derive(Debug, Default, Clone)]
pub struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    pub fn parse(text: &[u8]) -> Form {
        Form {
            pairs: url::form_urlencoded::parse(text).into_owned().collect(),
        }
    }

    /// A single-valued parameter; given twice is an error.
    pub fn get(&self, name: &str) -> Result<Option<&str>, TwilioError> {
        let mut values = self.values(name);
        let first = values.next();
        if values.next().is_some() {
            return Err(TwilioError::invalid(format!(
                "{name} must be given at most once"
            )));
        }
        Ok(first)
    }

    /// A required single-valued parameter.
    pub fn required(&self, name: &str) -> Result<&str, TwilioError> {
        self.get(name)?
            .ok_or_else(|| TwilioError::invalid(format!("Missing required parameter {name}")))
    }

    /// Every value of a repeated parameter, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.values(name).collect()
    }

    fn values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> + 'a {
        let name = name.to_string();
        self.pairs
            .iter()
            .filter(move |(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// An unsigned integer parameter within `range`.
    pub fn number(
        &self,
        name: &str,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<Option<u64>, TwilioError> {
        let Some(raw) = self.get(name)? else {
            return Ok(None);
        };
        match raw.parse::<u64>() {
            Ok(n) if range.contains(&n) => Ok(Some(n)),
            _ => Err(TwilioError::invalid(format!(
                "{name} must be an integer between {} and {}",
                range.start(),
                range.end()
            ))),
        }
    }

    /// A boolean parameter (`true` / `false`, as the SDK writes them).
    pub fn boolean(&self, name: &str) -> Result<Option<bool>, TwilioError> {
        match self.get(name)? {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(_) => Err(TwilioError::invalid(format!(
                "{name} must be true or false"
            ))),
        }
    }

    /// A JSON-object parameter whose values are all strings, at most `max` bytes of text.
    pub fn string_map(
        &self,
        name: &str,
        max: usize,
    ) -> Result<Option<serde_json::Map<String, serde_json::Value>>, TwilioError> {
        let Some(raw) = self.get(name)? else {
            return Ok(None);
        };
        if raw.len() > max {
            return Err(TwilioError::invalid(format!(
                "{name} is longer than {max} characters"
            )));
        }
        string_map(name, raw).map(Some)
    }
}

/// `raw` as a JSON object of string values, or an error naming `name`.
pub fn string_map(
    name: &str,
    raw: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, TwilioError> {
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(raw)
        .map_err(|_| TwilioError::invalid(format!("{name} must be a JSON object")))?;
    if !map.values().all(serde_json::Value::is_string) {
        return Err(TwilioError::invalid(format!(
            "{name} must hold string values only"
        )));
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_and_repeated_keys_keep_their_values_in_order() {
        let form = Form::parse(
            b"Details.Message=Hi+there&Details.Fields=%7B%22label%22%3A%22a%22%7D&Details.Fields=%7B%7D&Config.TimeStep=30",
        );
        assert_eq!(form.get("Details.Message").unwrap(), Some("Hi there"));
        assert_eq!(form.all("Details.Fields"), [r#"{"label":"a"}"#, "{}"]);
        assert_eq!(form.number("Config.TimeStep", 20..=60).unwrap(), Some(30));
        assert_eq!(form.get("Missing").unwrap(), None);
    }

    #[test]
    fn a_scalar_given_twice_or_out_of_shape_is_refused() {
        let form = Form::parse(b"A=1&A=2&N=61&B=yes&M=%5B1%5D&S=%7B%22k%22%3A1%7D");
        let e = form.get("A").unwrap_err();
        assert_eq!((e.status, e.code), (400, 60200));
        assert!(form.number("N", 20..=60).is_err());
        assert!(form.boolean("B").is_err());
        assert!(form.string_map("M", 1024).is_err());
        assert!(form.string_map("S", 1024).is_err());
        assert!(form.string_map("S", 3).is_err());
        assert!(form.required("Z").unwrap_err().message.contains("Z"));
    }

    #[test]
    fn a_string_map_round_trips() {
        let form = Form::parse(b"Metadata=%7B%22os%22%3A%22Android%22%7D");
        let map = form.string_map("Metadata", 1024).unwrap().unwrap();
        assert_eq!(map["os"], "Android");
    }
}
