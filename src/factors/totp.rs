//! TOTP (RFC 6238) with `totp-rs`: the parameters a factor may have, fresh seeds, which
//! time step a presented code belongs to, and the enrollment's key URI (Google's
//! `otpauth://` format) and its QR code. Pure functions of the seed, the parameters and
//! the time: the replay rule (a step is accepted once) is applied by the caller against
//! the factor's stored last step.

use rand::RngCore;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use totp_rs::TOTP;
use zeroize::Zeroizing;

/// The HMAC of a factor's codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    Sha1,
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "sha1" => Some(Algorithm::Sha1),
            "sha256" => Some(Algorithm::Sha256),
            "sha512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "sha1",
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// RFC 4226 §4 asks for at least 128 bits; a seed as long as the hash's output is what
    /// RFC 6238's reference uses.
    fn seed_len(self) -> usize {
        match self {
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
            Algorithm::Sha512 => 64,
        }
    }

    fn of_crate(self) -> totp_rs::Algorithm {
        match self {
            Algorithm::Sha1 => totp_rs::Algorithm::SHA1,
            Algorithm::Sha256 => totp_rs::Algorithm::SHA256,
            Algorithm::Sha512 => totp_rs::Algorithm::SHA512,
        }
    }
}

pub const DIGITS: std::ops::RangeInclusive<u32> = 6..=8;
pub const PERIOD_SECONDS: std::ops::RangeInclusive<u32> = 20..=60;
pub const SKEW_STEPS: std::ops::RangeInclusive<u32> = 0..=2;

/// A factor's TOTP parameters, within the bounds above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    pub algorithm: Algorithm,
    pub digits: u8,
    pub period_seconds: u32,
    pub skew_steps: u8,
}

/// A parameter outside its bounds; `field` is its request (and config) name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} must be between {min} and {max}")]
pub struct OutOfRange {
    pub field: &'static str,
    pub min: u32,
    pub max: u32,
}

impl Params {
    /// The parameters, if each is within its bounds.
    pub fn check(
        algorithm: Algorithm,
        digits: u32,
        period_seconds: u32,
        skew_steps: u32,
    ) -> Result<Params, OutOfRange> {
        let within = |field, value: u32, range: std::ops::RangeInclusive<u32>| {
            if range.contains(&value) {
                Ok(())
            } else {
                Err(OutOfRange {
                    field,
                    min: *range.start(),
                    max: *range.end(),
                })
            }
        };
        within("digits", digits, DIGITS)?;
        within("period_seconds", period_seconds, PERIOD_SECONDS)?;
        within("skew_steps", skew_steps, SKEW_STEPS)?;
        Ok(Params {
            algorithm,
            digits: digits as u8,
            period_seconds,
            skew_steps: skew_steps as u8,
        })
    }

    /// The time step that `unix_seconds` falls in.
    pub fn step_at(&self, unix_seconds: u64) -> u64 {
        unix_seconds / u64::from(self.period_seconds)
    }

    fn totp(&self, seed: &[u8], issuer: Option<String>, account: String) -> TOTP {
        TOTP::new_unchecked(
            self.algorithm.of_crate(),
            usize::from(self.digits),
            self.skew_steps,
            u64::from(self.period_seconds),
            seed.to_vec(),
            issuer,
            account,
        )
    }
}

/// A fresh seed from the OS CSPRNG, as long as the algorithm's hash output.
pub fn new_seed(algorithm: Algorithm) -> Zeroizing<Vec<u8>> {
    let mut seed = Zeroizing::new(vec![0u8; algorithm.seed_len()]);
    rand::rngs::OsRng.fill_bytes(&mut seed);
    seed
}

/// The seed as the base32 (RFC 4648, unpadded) text that authenticator apps take.
pub fn base32(seed: &[u8]) -> Zeroizing<String> {
    let params = Params {
        algorithm: Algorithm::Sha1,
        digits: 6,
        period_seconds: 30,
        skew_steps: 0,
    };
    Zeroizing::new(params.totp(seed, None, String::new()).get_secret_base32())
}

/// What a presented code is within `skew_steps` of the current step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matched {
    /// The code of this step, the earliest of the window after the last accepted one.
    Fresh(u64),
    /// Only the code of a step at or before the last accepted one.
    Spent,
    /// The code of no step of the window.
    Nothing,
}

/// Which step of the window around `unix_seconds` the code `presented` is for. When two
/// steps of the window share a code, the earliest one after `last_step` is taken, so an
/// accepted code never advances the factor past a step whose own code is still to come.
/// Every step of the window is compared, each in constant time, so the time taken does
/// not say which matched. Spaces and dashes a person typed are ignored.
pub fn matching_step(
    params: &Params,
    seed: &[u8],
    presented: &str,
    unix_seconds: u64,
    last_step: Option<u64>,
) -> Matched {
    let presented: String = presented
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    let totp = params.totp(seed, None, String::new());
    let current = params.step_at(unix_seconds);
    let skew = u64::from(params.skew_steps);
    let mut fresh = None;
    let mut spent = false;
    for step in current.saturating_sub(skew)..=current + skew {
        let code = Zeroizing::new(totp.generate(step * u64::from(params.period_seconds)));
        let equal: bool = code.as_bytes().ct_eq(presented.as_bytes()).into();
        if equal {
            if last_step.is_some_and(|last| step <= last) {
                spent = true;
            } else if fresh.is_none() {
                fresh = Some(step);
            }
        }
    }
    match (fresh, spent) {
        (Some(step), _) => Matched::Fresh(step),
        (None, true) => Matched::Spent,
        (None, false) => Matched::Nothing,
    }
}

/// The key URI an authenticator app imports (Google's key-URI format): label
/// `issuer:account`, the secret in base32, and the parameters that differ from the
/// apps' defaults.
pub fn key_uri(params: &Params, seed: &[u8], issuer: &str, account: &str) -> Zeroizing<String> {
    Zeroizing::new(
        params
            .totp(seed, Some(issuer.to_string()), account.to_string())
            .get_url(),
    )
}

/// A QR code of `text` as a standalone SVG document.
pub fn qr_svg(text: &str) -> Zeroizing<String> {
    let code = qrcode::QrCode::with_error_correction_level(text, qrcode::EcLevel::M)
        .expect("a key URI fits in a QR code");
    Zeroizing::new(
        code.render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(200, 200)
            .quiet_zone(true)
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Params {
        Params::check(Algorithm::Sha1, 6, 30, 1).unwrap()
    }

    /// RFC 6238 appendix B, SHA-1, 8 digits, at T = 59 s.
    #[test]
    fn the_rfc_test_vector_matches_its_step() {
        let p = Params::check(Algorithm::Sha1, 8, 30, 0).unwrap();
        let seed = b"12345678901234567890";
        assert_eq!(
            matching_step(&p, seed, "94287082", 59, None),
            Matched::Fresh(1)
        );
        assert_eq!(
            matching_step(&p, seed, "94287083", 59, None),
            Matched::Nothing
        );
        assert_eq!(
            matching_step(&p, seed, "94287082", 59, Some(1)),
            Matched::Spent
        );
    }

    #[test]
    fn a_code_of_a_neighbouring_step_matches_within_the_skew_only() {
        let p = params();
        let seed = new_seed(Algorithm::Sha1);
        let totp = p.totp(&seed, None, String::new());
        let now = 1_700_000_000;
        let next = totp.generate(now + 30);
        assert_eq!(
            matching_step(&p, &seed, &next, now, None),
            Matched::Fresh(p.step_at(now) + 1)
        );
        let later = totp.generate(now + 60);
        assert_eq!(
            matching_step(&p, &seed, &later, now, None),
            Matched::Nothing
        );
    }

    /// Two steps of one window sharing a code, made likely by 1-digit codes: the
    /// earliest fresh step wins, and a step at or before the last accepted one never does.
    #[test]
    fn of_two_steps_sharing_a_code_the_earliest_fresh_one_is_taken() {
        let p = Params {
            algorithm: Algorithm::Sha1,
            digits: 1,
            period_seconds: 30,
            skew_steps: 2,
        };
        let seed = b"12345678901234567890";
        let totp = p.totp(seed, None, String::new());
        let (now, first, second) = (1000..2000u64)
            .find_map(|current| {
                let window: Vec<String> = (current - 2..=current + 2)
                    .map(|step| totp.generate(step * 30))
                    .collect();
                (0..5)
                    .flat_map(|i| (i + 1..5).map(move |j| (i, j)))
                    .find(|&(i, j)| window[i] == window[j])
                    .map(|(i, j)| (current * 30, current - 2 + i as u64, current - 2 + j as u64))
            })
            .expect("some window of five 1-digit codes repeats one");
        let code = totp.generate(first * 30);
        assert_eq!(
            matching_step(&p, seed, &code, now, None),
            Matched::Fresh(first)
        );
        assert_eq!(
            matching_step(&p, seed, &code, now, Some(first)),
            Matched::Fresh(second)
        );
        assert_eq!(
            matching_step(&p, seed, &code, now, Some(second)),
            Matched::Spent
        );
    }

    #[test]
    fn bounds_name_the_field() {
        assert_eq!(
            Params::check(Algorithm::Sha1, 9, 30, 1).unwrap_err().field,
            "digits"
        );
        assert_eq!(
            Params::check(Algorithm::Sha1, 6, 61, 1).unwrap_err().field,
            "period_seconds"
        );
        assert_eq!(
            Params::check(Algorithm::Sha1, 6, 30, 3).unwrap_err().field,
            "skew_steps"
        );
    }

    #[test]
    fn the_key_uri_carries_the_parameters_and_the_qr_is_svg() {
        let p = Params::check(Algorithm::Sha256, 8, 60, 1).unwrap();
        let seed = new_seed(Algorithm::Sha256);
        let uri = key_uri(&p, &seed, "Acme Bank", "alice");
        assert!(uri.starts_with("otpauth://totp/Acme%20Bank:alice?secret="));
        assert!(uri.contains(&format!("secret={}", base32(&seed).as_str())));
        for part in [
            "digits=8",
            "algorithm=SHA256",
            "issuer=Acme%20Bank",
            "period=60",
        ] {
            assert!(uri.contains(part), "{part} in {}", uri.as_str());
        }
        let svg = qr_svg(&uri);
        assert!(svg.contains("<svg") && svg.trim_end().ends_with("</svg>"));
    }
}
