//! Enrollment: a user's factors, tenant-sealed (every lookup is by tenant, user and id,
//! so another tenant's or user's factor is simply not found). Enroll creates an
//! `unverified` factor and hands its secret out once; verify proves the user holds it
//! (a TOTP code, accepted once per time step like a challenge's); delete removes it,
//! and challenges naming it find nothing from then on. Every change is durable before
//! it is acknowledged.

use super::input::{check_text, MAX_USER_ID};
use super::{authorize, error, Engine, Error};
use crate::auth::{Principal, Scope};
use crate::factors::totp::{self, Algorithm, Params};
use crate::factors::{self, Factor, FactorData, FactorStatus, FactorType, TotpFactor};
use crate::metrics as m;
use crate::model::FactorId;

pub const MAX_FRIENDLY_NAME: usize = 64;
pub const MAX_ISSUER: usize = 64;

/// An enrollment as a face hands it over: the type as given, and the type's options,
/// each `None` for the service's default.
#[derive(Debug, Clone, Default)]
pub struct EnrollRequest {
    pub kind: String,
    pub friendly_name: Option<String>,
    pub totp: TotpOptions,
}

#[derive(Debug, Clone, Default)]
pub struct TotpOptions {
    pub issuer: Option<String>,
    pub algorithm: Option<String>,
    pub digits: Option<u64>,
    pub period_seconds: Option<u64>,
    pub skew_steps: Option<u64>,
}

/// A new factor and what is shown of its secret this once.
pub struct Enrolled {
    pub factor: Factor,
    pub secret: EnrolledSecret,
}

/// A TOTP factor's secret, for the enrollment response only.
pub struct EnrolledSecret {
    /// The seed, base32.
    pub secret: zeroize::Zeroizing<String>,
    pub otpauth_uri: zeroize::Zeroizing<String>,
    pub qr_svg: zeroize::Zeroizing<String>,
}

impl Engine {
    /// Enrolls a factor for `user_id` (`challenge:enrollment:post`): `unverified` until
    /// [`Engine::verify_factor`]. Acknowledged once durable.
    pub async fn enroll(
        &self,
        principal: &Principal,
        user_id: String,
        request: EnrollRequest,
    ) -> Result<Enrolled, Error> {
        authorize(principal, Scope::EnrollmentPost)?;
        check_text("user_id", &user_id, MAX_USER_ID)?;
        let kind = FactorType::parse(&request.kind).ok_or_else(|| {
            Error::invalid("invalid_field", "type must be one of totp, webauthn, push")
        })?;
        if !kind.enabled() {
            return Err(Error::FactorTypeNotEnabled(kind));
        }
        let friendly_name = request
            .friendly_name
            .unwrap_or_else(|| kind.as_str().to_string());
        check_text("friendly_name", &friendly_name, MAX_FRIENDLY_NAME)?;
        let defaults = &self.registry.services().totp;
        let options = request.totp;
        let issuer = options.issuer.unwrap_or_else(|| defaults.issuer.clone());
        check_text("issuer", &issuer, MAX_ISSUER)?;
        let algorithm = match options.algorithm.as_deref() {
            None => defaults.algorithm,
            Some(a) => Algorithm::parse(a).ok_or_else(|| {
                Error::invalid(
                    "invalid_field",
                    "algorithm must be one of sha1, sha256, sha512",
                )
            })?,
        };
        let number = |given: Option<u64>, default: u32| {
            given.map_or(default, |v| u32::try_from(v).unwrap_or(u32::MAX))
        };
        let params = Params::check(
            algorithm,
            number(options.digits, defaults.digits),
            number(options.period_seconds, defaults.period_seconds),
            number(options.skew_steps, defaults.skew_steps),
        )
        .map_err(|e| Error::invalid("out_of_range", e.to_string()))?;

        let services = self.registry.services();
        let now = services.clock.now_ms();
        let id = FactorId::random();
        let seed = totp::new_seed(algorithm);
        let factor = Factor {
            id,
            tenant: principal.tenant.clone(),
            user_id: user_id.as_str().into(),
            friendly_name: friendly_name.into(),
            status: FactorStatus::Unverified,
            created_at: now,
            updated_at: now,
            last_used_at: None,
            data: FactorData::Totp(TotpFactor {
                params,
                sealed_seed: services.seal.seal(&principal.tenant, &id, &seed),
                last_step: None,
            }),
        };
        let otpauth_uri = totp::key_uri(&params, &seed, &issuer, &user_id);
        let secret = EnrolledSecret {
            secret: totp::base32(&seed),
            qr_svg: totp::qr_svg(&otpauth_uri),
            otpauth_uri,
        };
        let stored = factor.clone();
        self.blocking(move |store| {
            store
                .factors()
                .insert(&stored)
                // A fresh 128-bit id taken already would be a broken random source.
                .map_err(|e| error::write_error(e, || Error::Internal, Error::Internal))
        })
        .await?;
        self.durable().await?;
        metrics::counter!(m::FACTORS_ENROLLED, "type" => kind.as_str()).increment(1);
        Ok(Enrolled { factor, secret })
    }

    /// A page of the user's factors in id order, after `after`, and the id to continue
    /// after if there are more (`challenge:enrollment:get`).
    pub async fn factors(
        &self,
        principal: &Principal,
        user_id: String,
        after: Option<FactorId>,
        limit: usize,
    ) -> Result<(Vec<Factor>, Option<FactorId>), Error> {
        authorize(principal, Scope::EnrollmentGet)?;
        check_text("user_id", &user_id, MAX_USER_ID)?;
        let tenant = principal.tenant.clone();
        self.blocking(move |store| {
            store
                .factors()
                .list(&tenant, &user_id, after.as_ref(), limit)
        })
        .await
    }

    /// One of the user's factors (`challenge:enrollment:get`).
    pub async fn factor(
        &self,
        principal: &Principal,
        user_id: String,
        id: FactorId,
    ) -> Result<Factor, Error> {
        authorize(principal, Scope::EnrollmentGet)?;
        self.find_factor(principal, user_id, id).await
    }

    /// The user's factor, or [`Error::FactorNotFound`]; no scope checked (callers do).
    pub(super) async fn find_factor(
        &self,
        principal: &Principal,
        user_id: String,
        id: FactorId,
    ) -> Result<Factor, Error> {
        check_text("user_id", &user_id, MAX_USER_ID)?;
        let tenant = principal.tenant.clone();
        self.blocking(move |store| store.factors().get(&tenant, &user_id, &id))
            .await?
            .ok_or(Error::FactorNotFound)
    }

    /// Finishes an enrollment with a code from the user's authenticator
    /// (`challenge:enrollment:post`): `verified`, or `wrong_answer` and still
    /// `unverified`. The code's time step counts as used, as a challenge's would.
    pub async fn verify_factor(
        &self,
        principal: &Principal,
        user_id: String,
        id: FactorId,
        code: String,
    ) -> Result<Factor, Error> {
        authorize(principal, Scope::EnrollmentPost)?;
        check_text("user_id", &user_id, MAX_USER_ID)?;
        check_text("code", &code, super::input::MAX_CODE)?;
        let services = self.registry.services().clone();
        let tenant = principal.tenant.clone();
        let now = services.clock.now_ms();
        let unix_seconds = (now / 1000).max(0) as u64;
        let outcome = self
            .blocking(move |store| {
                store
                    .factors()
                    .update(&tenant, &user_id, &id, |factor| {
                        if factor.status == FactorStatus::Verified {
                            return Err(None);
                        }
                        let step =
                            factors::accept_totp(&services.seal, factor, &code, unix_seconds)
                                .map_err(Some)?;
                        let mut next = factors::with_step(factor, step);
                        next.status = FactorStatus::Verified;
                        next.updated_at = now;
                        Ok(next)
                    })
                    .map_err(|e| error::write_error(e, || Error::Internal, Error::FactorNotFound))
            })
            .await?;
        let kind = FactorType::Totp.as_str();
        match outcome {
            Ok(factor) => {
                self.durable().await?;
                factors::count_code(kind, Ok(()));
                Ok(factor)
            }
            Err(None) => Err(Error::conflict(
                "factor_already_verified",
                "the factor is verified already",
            )),
            Err(Some(miss)) => {
                factors::count_code(kind, Err(miss));
                Err(Error::WrongCode)
            }
        }
    }

    /// Deletes one of the user's factors (`challenge:enrollment:delete`). Acknowledged
    /// once durable; challenges naming it accept no code from then on.
    pub async fn delete_factor(
        &self,
        principal: &Principal,
        user_id: String,
        id: FactorId,
    ) -> Result<(), Error> {
        authorize(principal, Scope::EnrollmentDelete)?;
        check_text("user_id", &user_id, MAX_USER_ID)?;
        let tenant = principal.tenant.clone();
        self.blocking(move |store| {
            store
                .factors()
                .remove(&tenant, &user_id, &id)
                .map_err(|e| error::write_error(e, || Error::Internal, Error::FactorNotFound))
        })
        .await?;
        self.durable().await
    }
}
