//! The `totp` kind: answered with a current code of one of the user's verified TOTP
//! factors (`factor_id`), relayed by the calling service like an OTP code. A wrong code
//! costs one attempt.
//!
//! The replay rule: a code is accepted once per time step per factor. Judging an
//! answer advances the factor's last accepted step by compare-and-swap in the store, so
//! of any number of answers carrying the same code — to this challenge or to others,
//! at once or later, before or after a restart — exactly one wins; the step is durable
//! with the challenge's own change, before the answer is acknowledged. A code of the
//! same or an earlier step is refused exactly as a wrong code is: nothing tells a caller
//! that it had been valid.

use super::token::{Attempt, AttemptError};
use super::{Field, HashKey, Kind, KindPlan, PlanContext, Secrets};
use crate::challenge::messages::ChallengeError;
use crate::challenge::state::Verdict;
use crate::challenge::Services;
use crate::clock::Millis;
use crate::engine::{CreateRequest, Error};
use crate::factors::{self, CodeMiss, FactorStatus, FactorType};
use crate::model::{AnswerToken, Challenge, KindData, PolicySpec, State};
use crate::store::WriteError;

/// The `totp` kind.
pub struct Totp;

impl Kind for Totp {
    fn accepts(&self, field: Field) -> bool {
        matches!(field, Field::Factor | Field::Actors)
    }

    fn requires(&self, field: Field) -> bool {
        field == Field::Factor
    }

    /// The request names one of the user's factors, and it is a verified TOTP factor.
    fn plan(
        &self,
        request: &CreateRequest,
        _policy: Option<&PolicySpec>,
        ctx: &PlanContext<'_>,
    ) -> Result<KindPlan, Error> {
        if request.factor_id.is_none() {
            return Err(Error::invalid(
                "invalid_field",
                "factor_id is required for totp challenges",
            ));
        }
        let factor = super::named_factor(ctx, FactorType::Totp)?;
        Ok(KindData::Factor(factor.id))
    }

    /// No answer tokens: a code, relayed by the calling service, is the only answer.
    fn issue(
        &self,
        _challenge: &mut Challenge,
        _tokens: Vec<AnswerToken>,
        _ctx: &PlanContext<'_>,
    ) -> Result<Secrets, Error> {
        Ok(Secrets::AnswerTokens(Vec::new()))
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
        let miss = if attempt.on_behalf {
            Verdict::Wrong
        } else {
            Verdict::Unrecognized
        };
        let Some(code) = attempt.code.as_deref() else {
            if attempt.token.is_some() {
                return Ok(miss);
            }
            return Err(ChallengeError::Attempt(AttemptError::CodeRequired));
        };
        if !attempt.on_behalf {
            return Ok(Verdict::Unrecognized);
        }
        let actor = match attempt.actor_id {
            Some(id) => c
                .actors
                .iter()
                .position(|a| a.id == id)
                .ok_or(ChallengeError::Attempt(AttemptError::UnknownActor))?,
            None => 0,
        };
        // A challenge that cannot take an answer uses up no step: its state refuses.
        let answerable = c.life.state == State::Issued && now < c.life.expires_at;
        let (true, Some(factor_id)) = (answerable, c.factor()) else {
            return Ok(Verdict::Wrong);
        };
        let unix_seconds = (now / 1000).max(0) as u64;
        let claimed =
            services
                .store
                .factors()
                .update(&c.tenant, &c.user_id, &factor_id, |factor| {
                    if factor.status != FactorStatus::Verified {
                        return Err(CodeMiss::Wrong);
                    }
                    let step = factors::accept_totp(&services.seal, factor, code, unix_seconds)?;
                    let mut next = factors::with_step(factor, step);
                    next.last_used_at = Some(now);
                    Ok(next)
                });
        let kind = FactorType::Totp.as_str();
        match claimed {
            Ok(Ok(_)) => {
                factors::count_code(kind, Ok(()));
                Ok(Verdict::Accepted {
                    actor: actor as u16,
                    allowed: attempt.allowed,
                })
            }
            Ok(Err(why)) => {
                factors::count_code(kind, Err(why));
                Ok(Verdict::Wrong)
            }
            // Deleted since the challenge was created: no code of it counts any more.
            Err(WriteError::NotFound) => {
                factors::count_code(kind, Err(CodeMiss::Wrong));
                Ok(Verdict::Wrong)
            }
            Err(e) => {
                tracing::error!(error = %e, challenge = %c.id, "cannot record a TOTP step; answer refused");
                Err(ChallengeError::Store(e.to_string()))
            }
        }
    }
}
