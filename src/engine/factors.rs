//! Enrollment: a user's factors, tenant-sealed (every lookup is by tenant, user and id,
//! so another tenant's or user's factor is simply not found). Enroll creates an
//! `unverified` factor and hands its secret out once; verify proves the user holds it
//! (a TOTP code, accepted once per time step like a challenge's; a push device's
//! signature; a WebAuthn attestation, through the API or the enrollment page); delete removes it,
//! and challenges naming it find nothing from then on. Every change is durable before
//! it is acknowledged.

use super::input::{check_text, MAX_USER_ID};
use super::{authorize, error, Engine, Error};
use crate::auth::{Principal, Scope};
use crate::factors::push::{self, Platform, PushFactor};
use crate::factors::totp::{self, Algorithm, Params};
use crate::factors::webauthn::{self, PendingRegistration, WebauthnFactor};
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
    pub push: PushOptions,
    pub webauthn: WebauthnOptions,
}

/// A WebAuthn enrollment's options.
#[derive(Debug, Clone, Default)]
pub struct WebauthnOptions {
    /// One of the tenant's relying parties (`[webauthn]`); default: its first.
    pub relying_party_id: Option<String>,
}

/// A push enrollment's options: the device key and how the device hears of challenges.
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// base64 of the SPKI DER of a P-256 key.
    pub public_key: Option<String>,
    /// `webhook` or `none`; default `none`.
    pub platform: Option<String>,
}

/// What finishes an enrollment: a TOTP code, a push device's signature of
/// `verify.<factor id>`, or a WebAuthn attestation (the JSON the browser's
/// `navigator.credentials.create` returns).
#[derive(Debug, Clone)]
pub enum Proof {
    Code(String),
    Signature(String),
    Credential(serde_json::Value),
    /// A vendor face's proof for a push factor: a DER signature of `message`, the
    /// face's own enrollment string.
    Signed {
        message: String,
        der: Vec<u8>,
    },
}

#[derive(Debug, Clone, Default)]
pub struct TotpOptions {
    pub issuer: Option<String>,
    /// The account name the key URI shows; default the user id.
    pub account_name: Option<String>,
    pub algorithm: Option<String>,
    pub digits: Option<u64>,
    pub period_seconds: Option<u64>,
    pub skew_steps: Option<u64>,
}

/// The TOTP parameters [`Engine::retune_totp`] changes; `None` keeps one.
#[derive(Debug, Clone, Default)]
pub struct TotpChange {
    pub algorithm: Option<String>,
    pub digits: Option<u32>,
    pub period_seconds: Option<u32>,
    pub skew_steps: Option<u32>,
}

/// A new factor and what is shown of its secret this once (TOTP; a push factor has
/// none).
pub struct Enrolled {
    pub factor: Factor,
    pub secret: Option<EnrolledSecret>,
    pub ceremony: Option<EnrolledCeremony>,
}

/// A WebAuthn factor's open registration, for the enrollment response only.
pub struct EnrolledCeremony {
    pub relying_party: String,
    /// `{"publicKey": …}` for `navigator.credentials.create`.
    pub options: serde_json::Value,
    /// The enrollment page, with its one-time token: served on the relying party's
    /// origin, where the browser accepts the relying party id.
    pub page_url: String,
    pub expires_at: crate::clock::Millis,
}

/// A TOTP factor's secret, for the enrollment response only.
pub struct EnrolledSecret {
    /// The seed, base32.
    pub secret: zeroize::Zeroizing<String>,
    pub otpauth_uri: zeroize::Zeroizing<String>,
    pub qr_svg: zeroize::Zeroizing<String>,
}

/// Why a verification was refused, inside the store's compare-and-swap.
enum Refused {
    Verified,
    Code(factors::CodeMiss),
    Signature,
    /// The attestation did not verify against the open registration.
    Attestation,
    /// The registration closed before it was answered.
    Expired,
    /// The enrollment page's token is not this factor's.
    PageToken,
    /// The factor's relying party is no longer configured.
    NoParty,
    /// The credential is registered as another of the user's factors already.
    Duplicate,
    /// The other kind of proof was given; the one this factor takes.
    Proof(&'static str),
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
        let services = self.registry.services();
        let now = services.clock.now_ms();
        let id = FactorId::random();
        let totp_given = {
            let t = &request.totp;
            [
                ("issuer", t.issuer.is_some()),
                ("algorithm", t.algorithm.is_some()),
                ("digits", t.digits.is_some()),
                ("period_seconds", t.period_seconds.is_some()),
                ("skew_steps", t.skew_steps.is_some()),
            ]
            .into_iter()
            .find(|(_, given)| *given)
            .map(|(field, _)| field)
        };
        if kind != FactorType::Webauthn && request.webauthn.relying_party_id.is_some() {
            return Err(Error::invalid(
                "invalid_field",
                "relying_party_id is used by webauthn factors only",
            ));
        }
        let mut ceremony = None;
        let (data, secret) = match kind {
            FactorType::Webauthn => {
                if let Some(field) = totp_given {
                    return Err(Error::invalid(
                        "invalid_field",
                        format!("{field} is not used by webauthn factors"),
                    ));
                }
                if request.push.public_key.is_some() || request.push.platform.is_some() {
                    return Err(Error::invalid(
                        "invalid_field",
                        "public_key and notification are used by push factors only",
                    ));
                }
                let (data, opened) = self
                    .webauthn_data(request.webauthn, &principal.tenant, &id, &user_id, now)
                    .await?;
                ceremony = Some(opened);
                (data, None)
            }
            FactorType::Push => {
                let t = &request.totp;
                let given = [
                    ("issuer", t.issuer.is_some()),
                    ("algorithm", t.algorithm.is_some()),
                    ("digits", t.digits.is_some()),
                    ("period_seconds", t.period_seconds.is_some()),
                    ("skew_steps", t.skew_steps.is_some()),
                ];
                if let Some((field, _)) = given.iter().find(|(_, given)| *given) {
                    return Err(Error::invalid(
                        "invalid_field",
                        format!("{field} is not used by push factors"),
                    ));
                }
                (Self::push_data(request.push)?, None)
            }
            _ => {
                if request.push.public_key.is_some() || request.push.platform.is_some() {
                    return Err(Error::invalid(
                        "invalid_field",
                        "public_key and notification are used by push factors only",
                    ));
                }
                let (data, secret) =
                    self.totp_data(request.totp, &principal.tenant, &id, &user_id)?;
                (data, Some(secret))
            }
        };
        let factor = Factor {
            id,
            tenant: principal.tenant.clone(),
            user_id: user_id.as_str().into(),
            friendly_name: friendly_name.into(),
            status: FactorStatus::Unverified,
            created_at: now,
            updated_at: now,
            last_used_at: None,
            data,
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
        Ok(Enrolled {
            factor,
            secret,
            ceremony,
        })
    }

    /// A WebAuthn factor's data: an open registration under one of the tenant's relying
    /// parties, excluding the credentials the user has on it already.
    async fn webauthn_data(
        &self,
        options: WebauthnOptions,
        tenant: &crate::model::TenantId,
        id: &FactorId,
        user_id: &str,
        now: crate::clock::Millis,
    ) -> Result<(FactorData, EnrolledCeremony), Error> {
        let services = self.registry.services().clone();
        if let Some(rp) = &options.relying_party_id {
            check_text("relying_party_id", rp, 253)?;
        }
        let party = services
            .webauthn
            .find(tenant, options.relying_party_id.as_deref())
            .ok_or_else(|| {
                Error::invalid(
                    "unknown_relying_party",
                    match &options.relying_party_id {
                        Some(_) => "relying_party_id names none of the tenant's relying parties",
                        None => "the tenant has no WebAuthn relying party configured",
                    },
                )
            })?;
        let exclude = {
            let tenant = tenant.clone();
            let user = user_id.to_string();
            let rp = party.id.clone();
            self.blocking(move |store| {
                let (mine, _) = store.factors().list(&tenant, &user, None, 1000)?;
                Ok::<_, crate::store::StoreError>(
                    mine.into_iter()
                        .filter_map(|f| match f.data {
                            FactorData::Webauthn(w) if *w.relying_party == *rp => {
                                w.credential.map(|c| c.id)
                            }
                            _ => None,
                        })
                        .collect::<Vec<_>>(),
                )
            })
            .await?
        };
        let handle = webauthn::user_handle(&services.key, tenant, user_id);
        let (options, state) = party
            .start_registration(handle, user_id, exclude)
            .map_err(|e| {
                tracing::error!(error = %e, "cannot open a WebAuthn registration");
                Error::Internal
            })?;
        let token = crate::model::AnswerToken::random();
        let expires_at = now + services.webauthn.enrollment_ttl_ms;
        let data = FactorData::Webauthn(WebauthnFactor {
            relying_party: party.id.as_str().into(),
            registration: Some(PendingRegistration {
                options: options.as_str().into(),
                sealed_state: services.seal.seal(tenant, id, &state),
                page_token: services.key.hash(token.expose()),
                expires_at,
            }),
            credential: None,
        });
        let origin = party.origin.as_str().trim_end_matches('/');
        let opened = EnrolledCeremony {
            relying_party: party.id.clone(),
            options: serde_json::from_str(&options).map_err(|_| Error::Internal)?,
            page_url: format!("{origin}/enroll/{id}?t={}", token.expose()),
            expires_at,
        };
        Ok((data, opened))
    }

    /// A push factor's data from its options: a P-256 key, a known platform.
    fn push_data(options: PushOptions) -> Result<FactorData, Error> {
        let raw = options.public_key.ok_or_else(|| {
            Error::invalid("invalid_field", "public_key is required for push factors")
        })?;
        let public_key = push::parse_public_key(&raw).ok_or_else(|| {
            Error::invalid(
                "invalid_public_key",
                "public_key must be base64 of the SPKI DER of a P-256 (ES256) key",
            )
        })?;
        let platform = match options.platform.as_deref() {
            None => Platform::None,
            Some(p) => Platform::parse(p).ok_or_else(|| {
                Error::invalid(
                    "invalid_field",
                    "notification.platform must be one of webhook, none",
                )
            })?,
        };
        Ok(FactorData::Push(PushFactor {
            public_key,
            platform,
        }))
    }

    /// A TOTP factor's data and the secret shown once, from its options and the
    /// service's defaults.
    fn totp_data(
        &self,
        options: TotpOptions,
        tenant: &crate::model::TenantId,
        id: &FactorId,
        user_id: &str,
    ) -> Result<(FactorData, EnrolledSecret), Error> {
        let services = self.registry.services();
        let defaults = &services.totp;
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
        let seed = totp::new_seed(algorithm);
        let data = FactorData::Totp(TotpFactor {
            params,
            sealed_seed: services.seal.seal(tenant, id, &seed),
            last_step: None,
        });
        let account = options.account_name.as_deref().unwrap_or(user_id);
        let otpauth_uri = totp::key_uri(&params, &seed, &issuer, account);
        let secret = EnrolledSecret {
            secret: totp::base32(&seed),
            qr_svg: totp::qr_svg(&otpauth_uri),
            otpauth_uri,
        };
        Ok((data, secret))
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

    /// Finishes an enrollment (`challenge:enrollment:post`): a TOTP factor with a code
    /// from the user's authenticator (the code's time step counts as used, as a
    /// challenge's would), a push factor with the device's signature of
    /// `verify.<factor id>`. `verified`, or `wrong_answer` and still `unverified`.
    pub async fn verify_factor(
        &self,
        principal: &Principal,
        user_id: String,
        id: FactorId,
        proof: Proof,
    ) -> Result<Factor, Error> {
        authorize(principal, Scope::EnrollmentPost)?;
        check_text("user_id", &user_id, MAX_USER_ID)?;
        self.finish_enrollment(principal.tenant.clone(), user_id, id, proof, None)
            .await
    }

    /// Verifies a factor of `tenant`'s user with `proof`; with `page_token`, only if it
    /// is the token of the factor's enrollment page.
    async fn finish_enrollment(
        &self,
        tenant: crate::model::TenantId,
        user_id: String,
        id: FactorId,
        proof: Proof,
        page_token: Option<crate::model::AnswerToken>,
    ) -> Result<Factor, Error> {
        let attestation = match &proof {
            Proof::Code(code) => {
                check_text("code", code, super::input::MAX_CODE)?;
                None
            }
            Proof::Signature(signature) => {
                check_text("signature", signature, 512)?;
                None
            }
            Proof::Signed { der, .. } if der.len() > 256 => {
                return Err(Error::invalid(
                    "field_too_long",
                    "the signature is too long",
                ))
            }
            Proof::Signed { .. } => None,
            Proof::Credential(raw) => Some(webauthn::parse_attestation(raw).ok_or_else(|| {
                Error::invalid(
                    "invalid_credential",
                    "credential must be the JSON of a PublicKeyCredential from navigator.credentials.create",
                )
            })?),
        };
        let services = self.registry.services().clone();
        let now = services.clock.now_ms();
        let unix_seconds = (now / 1000).max(0) as u64;
        let proof_kind = kind_of(&proof);
        let outcome = self
            .blocking(move |store| {
                // The credentials the user has registered already: an authenticator
                // that ignored excludeCredentials does not register one twice.
                let registered: Vec<Vec<u8>> = match attestation {
                    Some(_) => store
                        .factors()
                        .list(&tenant, &user_id, None, 1000)
                        .map_err(Error::from)?
                        .0
                        .into_iter()
                        .filter_map(|f| match f.data {
                            FactorData::Webauthn(w) if f.id != id => w.credential.map(|c| c.id),
                            _ => None,
                        })
                        .collect(),
                    None => Vec::new(),
                };
                store
                    .factors()
                    .update(&tenant, &user_id, &id, |factor| {
                        if factor.status == FactorStatus::Verified {
                            return Err(Refused::Verified);
                        }
                        if let Some(token) = &page_token {
                            let FactorData::Webauthn(WebauthnFactor {
                                registration: Some(open),
                                ..
                            }) = &factor.data
                            else {
                                return Err(Refused::PageToken);
                            };
                            let presented = services.key.hash(token.expose());
                            if !crate::challenge::kinds::HashKey::matches(
                                &presented,
                                &open.page_token,
                            ) {
                                return Err(Refused::PageToken);
                            }
                        }
                        let mut next = match (&proof, &factor.data) {
                            (Proof::Code(code), FactorData::Totp(_)) => {
                                let step = factors::accept_totp(
                                    &services.seal,
                                    factor,
                                    code,
                                    unix_seconds,
                                )
                                .map_err(Refused::Code)?;
                                factors::with_step(factor, step)
                            }
                            (Proof::Signature(signature), FactorData::Push(device)) => {
                                let message = push::enrollment_message(&factor.id);
                                if !push::verify_der(
                                    &device.public_key,
                                    message.as_bytes(),
                                    signature,
                                ) {
                                    return Err(Refused::Signature);
                                }
                                factor.clone()
                            }
                            (Proof::Credential(_), FactorData::Webauthn(w)) => {
                                let open = w.registration.as_ref().ok_or(Refused::Attestation)?;
                                if now >= open.expires_at {
                                    return Err(Refused::Expired);
                                }
                                let party = services
                                    .webauthn
                                    .find(&factor.tenant, Some(&w.relying_party))
                                    .ok_or(Refused::NoParty)?;
                                let state = services
                                    .seal
                                    .open(&factor.tenant, &factor.id, &open.sealed_state)
                                    .ok_or(Refused::Code(factors::CodeMiss::Unreadable))?;
                                let attestation =
                                    attestation.as_ref().ok_or(Refused::Attestation)?;
                                let credential = party
                                    .finish_registration(attestation, &state)
                                    .map_err(|_| Refused::Attestation)?;
                                if registered.contains(&credential.id) {
                                    return Err(Refused::Duplicate);
                                }
                                let mut next = factor.clone();
                                next.data = FactorData::Webauthn(WebauthnFactor {
                                    relying_party: w.relying_party.clone(),
                                    registration: None,
                                    credential: Some(credential),
                                });
                                next
                            }
                            (Proof::Signed { message, der }, FactorData::Push(device)) => {
                                if !push::verify_der_bytes(
                                    &device.public_key,
                                    message.as_bytes(),
                                    der,
                                ) {
                                    return Err(Refused::Signature);
                                }
                                factor.clone()
                            }
                            (_, FactorData::Totp(_)) => return Err(Refused::Proof("code")),
                            (_, FactorData::Push(_)) => return Err(Refused::Proof("signature")),
                            (_, FactorData::Webauthn(_)) => {
                                return Err(Refused::Proof("credential"))
                            }
                        };
                        next.status = FactorStatus::Verified;
                        next.updated_at = now;
                        Ok(next)
                    })
                    .map_err(|e| error::write_error(e, || Error::Internal, Error::FactorNotFound))
            })
            .await?;
        match outcome {
            Ok(factor) => {
                self.durable().await?;
                factors::count_code(factor.kind().as_str(), Ok(()));
                Ok(factor)
            }
            Err(Refused::Verified) => Err(Error::conflict(
                "factor_already_verified",
                "the factor is verified already",
            )),
            Err(Refused::Code(miss)) => {
                factors::count_code(proof_kind, Err(miss));
                Err(Error::WrongCode)
            }
            Err(Refused::Attestation) => {
                factors::count_code(FactorType::Webauthn.as_str(), Err(factors::CodeMiss::Wrong));
                Err(Error::invalid(
                    "attestation_rejected",
                    "the attestation does not answer this enrollment's registration",
                ))
            }
            Err(Refused::Expired) => Err(Error::conflict(
                "enrollment_expired",
                "the registration has closed; delete the factor and enroll again",
            )),
            Err(Refused::PageToken) => Err(Error::FactorNotFound),
            Err(Refused::Duplicate) => Err(Error::conflict(
                "credential_already_registered",
                "this credential is registered as another of the user's factors already",
            )),
            Err(Refused::NoParty) => Err(Error::conflict(
                "unknown_relying_party",
                "the factor's relying party is no longer configured for the tenant",
            )),
            Err(Refused::Signature) => {
                factors::count_code(FactorType::Push.as_str(), Err(factors::CodeMiss::Wrong));
                Err(Error::WrongCode)
            }
            Err(Refused::Proof(needed)) => Err(Error::invalid(
                "invalid_field",
                format!("this factor is verified with {needed}"),
            )),
        }
    }

    /// The open registration of a WebAuthn factor, to the holder of its enrollment
    /// page's token (no bearer token: the token is the capability); `FactorNotFound` to
    /// anybody else, and once the factor is verified or the registration closed.
    pub async fn enrollment_page(
        &self,
        id: FactorId,
        token: &crate::model::AnswerToken,
    ) -> Result<(Factor, serde_json::Value), Error> {
        let factor = self
            .blocking(move |store| store.factors().find_by_id(&id, FactorType::Webauthn))
            .await?
            .ok_or(Error::FactorNotFound)?;
        let services = self.registry.services();
        let open = match &factor.data {
            FactorData::Webauthn(WebauthnFactor {
                registration: Some(open),
                ..
            }) if factor.status == FactorStatus::Unverified => open,
            _ => return Err(Error::FactorNotFound),
        };
        let presented = services.key.hash(token.expose());
        let matches = crate::challenge::kinds::HashKey::matches(&presented, &open.page_token);
        if !matches || services.clock.now_ms() >= open.expires_at {
            return Err(Error::FactorNotFound);
        }
        let options = serde_json::from_str(&open.options).map_err(|_| Error::Internal)?;
        Ok((factor, options))
    }

    /// Finishes a WebAuthn enrollment from its page: the page's token stands in for
    /// the bearer token; a wrong one is `FactorNotFound`.
    pub async fn finish_enrollment_page(
        &self,
        id: FactorId,
        token: &crate::model::AnswerToken,
        credential: serde_json::Value,
    ) -> Result<Factor, Error> {
        let (factor, _) = self.enrollment_page(id, token).await?;
        self.finish_enrollment(
            factor.tenant.clone(),
            factor.user_id.to_string(),
            id,
            Proof::Credential(credential),
            Some(token.clone()),
        )
        .await
    }

    /// Renames one of the user's factors (`challenge:enrollment:post`): 1–64 characters.
    /// Acknowledged once durable.
    pub async fn rename_factor(
        &self,
        principal: &Principal,
        user_id: String,
        id: FactorId,
        friendly_name: String,
    ) -> Result<Factor, Error> {
        authorize(principal, Scope::EnrollmentPost)?;
        check_text("user_id", &user_id, MAX_USER_ID)?;
        check_text("friendly_name", &friendly_name, MAX_FRIENDLY_NAME)?;
        if friendly_name.is_empty() {
            return Err(Error::invalid(
                "invalid_field",
                "friendly_name must not be empty",
            ));
        }
        let tenant = principal.tenant.clone();
        let now = self.now_ms();
        let renamed = self
            .blocking(move |store| {
                store
                    .factors()
                    .update(&tenant, &user_id, &id, |factor| {
                        let mut next = factor.clone();
                        next.friendly_name = friendly_name.as_str().into();
                        next.updated_at = now;
                        Ok::<_, std::convert::Infallible>(next)
                    })
                    .map_err(|e| error::write_error(e, || Error::Internal, Error::FactorNotFound))
            })
            .await?;
        self.durable().await?;
        let Ok(factor) = renamed;
        Ok(factor)
    }

    /// Changes the code parameters of one of the user's TOTP factors
    /// (`challenge:enrollment:post`): its algorithm, digits, period or skew, each kept
    /// when `None`. The seed stays. The last step a code was accepted for is carried
    /// over to the new period as the step holding its last second, so no code of a time
    /// already used answers again. `invalid_field` for a factor of another type.
    pub async fn retune_totp(
        &self,
        principal: &Principal,
        user_id: String,
        id: FactorId,
        change: TotpChange,
    ) -> Result<Factor, Error> {
        authorize(principal, Scope::EnrollmentPost)?;
        check_text("user_id", &user_id, MAX_USER_ID)?;
        let algorithm = match change.algorithm.as_deref() {
            None => None,
            Some(a) => Some(Algorithm::parse(a).ok_or_else(|| {
                Error::invalid(
                    "invalid_field",
                    "algorithm must be one of sha1, sha256, sha512",
                )
            })?),
        };
        let tenant = principal.tenant.clone();
        let now = self.now_ms();
        let retuned = self
            .blocking(move |store| {
                store
                    .factors()
                    .update(&tenant, &user_id, &id, |factor| {
                        let mut next = factor.clone();
                        let FactorData::Totp(totp) = &mut next.data else {
                            return Err(Error::invalid(
                                "invalid_field",
                                "only a TOTP factor has code parameters",
                            ));
                        };
                        let old = totp.params;
                        let params = Params::check(
                            algorithm.unwrap_or(old.algorithm),
                            change.digits.unwrap_or(u32::from(old.digits)),
                            change.period_seconds.unwrap_or(old.period_seconds),
                            change.skew_steps.unwrap_or(u32::from(old.skew_steps)),
                        )
                        .map_err(|e| Error::invalid("out_of_range", e.to_string()))?;
                        totp.last_step = totp.last_step.map(|step| {
                            let last_second = (step + 1) * u64::from(old.period_seconds) - 1;
                            params.step_at(last_second)
                        });
                        totp.params = params;
                        next.updated_at = now;
                        Ok(next)
                    })
                    .map_err(|e| error::write_error(e, || Error::Internal, Error::FactorNotFound))
            })
            .await??;
        self.durable().await?;
        Ok(retuned)
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

/// The factor type a proof is for (for metrics).
fn kind_of(proof: &Proof) -> &'static str {
    match proof {
        Proof::Code(_) => FactorType::Totp.as_str(),
        Proof::Signature(_) | Proof::Signed { .. } => FactorType::Push.as_str(),
        Proof::Credential(_) => FactorType::Webauthn.as_str(),
    }
}
