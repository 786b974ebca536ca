//! The `webauthn` kind: answered with an assertion (`navigator.credentials.get`) by a
//! credential of one of the user's verified WebAuthn factors — the one `factor_id`
//! names, or else every one the user has. Create runs the relying party's
//! authentication start: the request options go to the caller (and the answer page),
//! the crate's state stays in the challenge's snapshot.
//!
//! Judging an answer: the crate checks the signature over this challenge's
//! `clientDataJSON` (so an assertion for another challenge, from another origin or by a
//! credential the challenge did not allow fails), then the factor's stored signature
//! counter is advanced by compare-and-swap in the store — a counter that does not move
//! forward ([`counter_advances`]) is refused, as a cloned authenticator's would be. Every
//! refusal is a wrong answer and costs one attempt. The counter and `last_used_at` are
//! durable with the challenge's own change, before the answer is acknowledged.
//!
//! Anonymous answers (the answer page, or the answer route with `answer_token`) carry
//! the actor's answer token as well: the token says who may try, the assertion proves
//! the credential.

use super::token::{self, Attempt, AttemptError};
use super::{Field, HashKey, Kind, KindPlan, PlanContext};
use crate::challenge::messages::ChallengeError;
use crate::challenge::state::Verdict;
use crate::challenge::Services;
use crate::clock::Millis;
use crate::engine::{CreateRequest, Error};
use crate::factors::webauthn::{self, counter_advances};
use crate::factors::{self, CodeMiss, FactorData, FactorStatus, FactorType};
use crate::model::{Challenge, KindData, PolicySpec, State, WebauthnPlan};
use crate::store::WriteError;

/// The `webauthn` kind.
pub struct Webauthn;

fn not_verified() -> Error {
    Error::conflict(
        "factor_not_verified",
        "the factor's enrollment has not been verified",
    )
}

impl Kind for Webauthn {
    fn accepts(&self, field: Field) -> bool {
        matches!(field, Field::Factor | Field::Actors)
    }

    fn user_factors(&self) -> Option<FactorType> {
        Some(FactorType::Webauthn)
    }

    /// The named factor, or all the user's verified WebAuthn factors (of one relying
    /// party), allowed in one authentication ceremony.
    fn plan(
        &self,
        request: &CreateRequest,
        _policy: Option<&PolicySpec>,
        ctx: &PlanContext<'_>,
    ) -> Result<KindPlan, Error> {
        let chosen: Vec<&factors::Factor> = match request.factor_id {
            Some(_) => {
                let factor = super::named_factor(ctx, FactorType::Webauthn)?;
                vec![factor]
            }
            None => {
                let verified: Vec<&factors::Factor> = ctx
                    .user_factors
                    .iter()
                    .filter(|f| {
                        f.kind() == FactorType::Webauthn && f.status == FactorStatus::Verified
                    })
                    .collect();
                if verified.is_empty() {
                    return Err(Error::conflict(
                        "factor_not_verified",
                        "the user has no verified webauthn factor",
                    ));
                }
                verified
            }
        };
        let mut party_id = None;
        let mut credentials = Vec::with_capacity(chosen.len());
        for factor in &chosen {
            let FactorData::Webauthn(w) = &factor.data else {
                continue;
            };
            let Some(credential) = &w.credential else {
                return Err(not_verified());
            };
            match party_id {
                None => party_id = Some(w.relying_party.clone()),
                Some(ref id) if *id != w.relying_party => {
                    return Err(Error::invalid(
                        "relying_party_ambiguous",
                        "the user's webauthn factors belong to several relying parties: name one with factor_id",
                    ))
                }
                Some(_) => {}
            }
            credentials.push((factor.id, credential));
        }
        let party_id = party_id.ok_or_else(not_verified)?;
        let party = ctx
            .services
            .webauthn
            .find(ctx.tenant, Some(&party_id))
            .ok_or_else(|| {
                Error::conflict(
                    "unknown_relying_party",
                    "the factor's relying party is no longer configured for the tenant",
                )
            })?;
        let allowed: Vec<&webauthn::StoredCredential> =
            credentials.iter().map(|(_, c)| *c).collect();
        let (options, state) = party.start_authentication(&allowed).map_err(|e| {
            tracing::error!(error = %e, "cannot open a WebAuthn authentication");
            Error::Internal
        })?;
        Ok(KindData::Webauthn(WebauthnPlan {
            relying_party: party_id,
            credentials: credentials
                .into_iter()
                .map(|(f, c)| (f, c.id.clone()))
                .collect(),
            options: options.into(),
            state: state.into(),
        }))
    }

    /// Without the factor nothing can be judged: see [`Kind::judge_in`] below.
    fn judge(
        &self,
        _key: &HashKey,
        _challenge: &Challenge,
        _attempt: &Attempt,
    ) -> Result<Verdict, AttemptError> {
        Ok(Verdict::Wrong)
    }

    fn judge_in(
        &self,
        services: &Services,
        c: &Challenge,
        attempt: &Attempt,
        now: Millis,
    ) -> Result<Verdict, ChallengeError> {
        if attempt.code.is_some() {
            return Err(ChallengeError::Attempt(AttemptError::CodeNotAccepted));
        }
        let Some(raw) = &attempt.credential else {
            return Err(ChallengeError::Attempt(AttemptError::CredentialRequired));
        };
        // Who answers: the token's actor (anonymous), or the named one (bearer).
        let actor = if attempt.on_behalf {
            match attempt.actor_id {
                Some(id) => c
                    .actors
                    .iter()
                    .position(|a| a.id == id)
                    .ok_or(ChallengeError::Attempt(AttemptError::UnknownActor))?,
                None => 0,
            }
        } else {
            if attempt.token.is_none() {
                return Ok(Verdict::Unrecognized);
            }
            match token::verify(&services.key, &c.actors, attempt) {
                Ok(Verdict::Accepted { actor, .. }) => usize::from(actor),
                Ok(other) => return Ok(other),
                Err(e) => return Err(ChallengeError::Attempt(e)),
            }
        };
        let kind = FactorType::Webauthn.as_str();
        let wrong = || {
            factors::count_code(kind, Err(CodeMiss::Wrong));
            Ok(Verdict::Wrong)
        };
        // A challenge that cannot take an answer moves no counter: its state refuses.
        let answerable = c.life.state == State::Issued && now < c.life.expires_at;
        let (true, Some(plan)) = (answerable, c.webauthn()) else {
            return Ok(Verdict::Wrong);
        };
        let Some(assertion) = webauthn::parse_assertion(raw) else {
            return Err(ChallengeError::Attempt(AttemptError::CredentialRequired));
        };
        let Some(party) = services.webauthn.find(&c.tenant, Some(&plan.relying_party)) else {
            return wrong();
        };
        let result = match party.finish_authentication(&assertion, &plan.state) {
            Ok(result) => result,
            Err(_) => return wrong(),
        };
        let presented: &[u8] = result.cred_id().as_ref();
        let Some((factor_id, _)) = plan
            .credentials
            .iter()
            .find(|(_, id)| id.as_slice() == presented)
        else {
            return wrong();
        };
        let claimed = services
            .store
            .factors()
            .update(&c.tenant, &c.user_id, factor_id, |factor| {
                let FactorData::Webauthn(w) = &factor.data else {
                    return Err(());
                };
                let Some(stored) = &w.credential else {
                    return Err(());
                };
                if factor.status != FactorStatus::Verified
                    || stored.id.as_slice() != presented
                    || !counter_advances(stored.counter, result.counter())
                {
                    return Err(());
                }
                let mut next = factor.clone();
                next.data = FactorData::Webauthn(webauthn::WebauthnFactor {
                    relying_party: w.relying_party.clone(),
                    registration: None,
                    credential: Some(stored.used(&result)),
                });
                next.last_used_at = Some(now);
                Ok(next)
            });
        match claimed {
            Ok(Ok(_)) => {
                factors::count_code(kind, Ok(()));
                Ok(Verdict::Accepted {
                    actor: actor as u16,
                    allowed: attempt.allowed,
                })
            }
            // A counter that did not advance, or a factor deleted since the create.
            Ok(Err(())) | Err(WriteError::NotFound) => wrong(),
            Err(e) => {
                tracing::error!(error = %e, challenge = %c.id, "cannot record a WebAuthn counter; answer refused");
                Err(ChallengeError::Store(e.to_string()))
            }
        }
    }
}
