//! The device face of push factors: a device authenticates with a JWT signed by its own
//! enrolled key ([`Engine::device`]), lists the push challenges sent to it, and answers
//! them with its signed decision. A device sees only challenges that name its factor;
//! any other id is not found. Answers go to the challenge's actor like every answer, so
//! first-answer-wins and durability hold as for any other kind.

use std::time::Instant;

use super::{Engine, Error, View};
use crate::challenge::kinds::push::Decision;
use crate::challenge::kinds::token::{Attempt, DeviceProof, Signed};
use crate::challenge::messages::Answer;
use crate::factors::push::{self, TokenRefusal};
use crate::factors::{FactorData, FactorStatus};
use crate::metrics as m;
use crate::model::{Challenge, ChallengeId, ChallengeType, FactorId, State, TenantId};
use crate::store::ListFilter;

/// An authenticated device: the push factor whose key signed its token.
#[derive(Debug, Clone)]
pub struct Device {
    pub tenant: TenantId,
    pub user_id: Box<str>,
    pub factor_id: FactorId,
}

fn refused(why: TokenRefusal) -> Error {
    Error::DeviceUnauthorized {
        code: why.code(),
        message: why.message(),
    }
}

impl Engine {
    /// The device whose enrolled push factor signed `token` (see
    /// [`push::check_token`]); 401 with the refusal's code otherwise. An unknown or
    /// deleted factor is `invalid_device_token`, as a bad signature is.
    pub async fn device(&self, token: &str) -> Result<Device, Error> {
        let id = push::token_subject(token).ok_or(refused(TokenRefusal::Invalid))?;
        let factor = self
            .blocking(move |store| store.factors().find_push(&id))
            .await?
            .ok_or(refused(TokenRefusal::Invalid))?;
        let FactorData::Push(key) = &factor.data else {
            return Err(refused(TokenRefusal::Invalid));
        };
        let now = self.now_ms().div_euclid(1000);
        push::check_token(&key.public_key, &factor.id, token, now).map_err(refused)?;
        if factor.status != FactorStatus::Verified {
            return Err(Error::DeviceUnauthorized {
                code: "device_not_verified",
                message: "the device's enrollment has not been verified",
            });
        }
        Ok(Device {
            tenant: factor.tenant,
            user_id: factor.user_id,
            factor_id: factor.id,
        })
    }

    /// The device of one of the user's push factors, for a face whose callers answer for
    /// the device with the account's own credentials (`challenge:answer`): the factor
    /// must be a verified push factor of `user_id` in the principal's tenant.
    pub async fn device_of(
        &self,
        principal: &crate::auth::Principal,
        user_id: String,
        factor_id: FactorId,
    ) -> Result<Device, Error> {
        super::authorize(principal, crate::auth::Scope::Answer)?;
        let factor = self.find_factor(principal, user_id, factor_id).await?;
        if !matches!(factor.data, FactorData::Push(_)) {
            return Err(Error::FactorNotFound);
        }
        if factor.status != FactorStatus::Verified {
            return Err(Error::conflict(
                "factor_not_verified",
                "the factor's enrollment has not been verified",
            ));
        }
        Ok(Device {
            tenant: factor.tenant,
            user_id: factor.user_id,
            factor_id: factor.id,
        })
    }

    /// The device of one of the user's verified push factors, proven by a JWT its key
    /// signed (see [`push::check_jws`]), for a face whose devices sign their own tokens;
    /// with the token's claims for the face to hold to its own grants. 401 with the
    /// refusal's code otherwise; another user's or tenant's factor is not found.
    pub async fn device_by_jwt(
        &self,
        principal: &crate::auth::Principal,
        user_id: String,
        factor_id: FactorId,
        token: &str,
    ) -> Result<(Device, serde_json::Value), Error> {
        let factor = self.find_factor(principal, user_id, factor_id).await?;
        let FactorData::Push(key) = &factor.data else {
            return Err(refused(TokenRefusal::Invalid));
        };
        let now = self.now_ms().div_euclid(1000);
        let claims = push::check_jws(&key.public_key, token, now).map_err(refused)?;
        if factor.status != FactorStatus::Verified {
            return Err(Error::DeviceUnauthorized {
                code: "device_not_verified",
                message: "the device's enrollment has not been verified",
            });
        }
        let device = Device {
            tenant: factor.tenant,
            user_id: factor.user_id,
            factor_id: factor.id,
        };
        Ok((device, claims))
    }

    /// A page of the push challenges that name the device's factor, in id order, in
    /// `state` if given.
    pub async fn device_challenges(
        &self,
        device: &Device,
        state: Option<State>,
        after: Option<ChallengeId>,
        limit: usize,
    ) -> Result<(Vec<Challenge>, Option<ChallengeId>), Error> {
        let filter = ListFilter {
            user_id: Some(device.user_id.to_string()),
            state,
            kind: Some(ChallengeType::Push),
            factor: Some(device.factor_id),
        };
        let (page, next) = self
            .registry
            .list_for_factor(
                device.tenant.clone(),
                device.factor_id,
                after,
                filter,
                limit,
            )
            .await?;
        // A challenge that offers several methods shows the device its push method.
        let page = page
            .into_iter()
            .map(|c| crate::challenge::methods::for_factor(&c, device.factor_id).unwrap_or(c))
            .collect();
        Ok((page, next))
    }

    /// Answers one of the device's push challenges with its signed decision: `verified`
    /// (approved) or `declined` (denied). Another device's challenge, or any other id,
    /// is `challenge_not_found`; a bad signature `invalid_signature`; a challenge no
    /// longer issued is refused by its state (`already_answered`, `expired`, …). A
    /// refusal changes nothing. Acknowledged once the outcome is durable.
    pub async fn device_answer(
        &self,
        device: &Device,
        id: &ChallengeId,
        decision: Decision,
        signature: Signed,
    ) -> Result<View, Error> {
        let started = Instant::now();
        let result = self
            .try_device_answer(device, id, decision, signature)
            .await;
        let outcome = match &result {
            Ok(view) if view.life.state == State::Declined => "declined",
            Ok(_) => "verified",
            Err(Error::Invalid {
                code: "invalid_signature",
                ..
            }) => "invalid_signature",
            Err(_) => "rejected",
        };
        metrics::counter!(m::ANSWERED, "type" => ChallengeType::Push.as_str(), "outcome" => outcome)
            .increment(1);
        metrics::histogram!(m::ANSWER_SECONDS, "outcome" => outcome)
            .record(started.elapsed().as_secs_f64());
        result
    }

    async fn try_device_answer(
        &self,
        device: &Device,
        id: &ChallengeId,
        decision: Decision,
        signature: Signed,
    ) -> Result<View, Error> {
        if let Signed::Native(signature) = &signature {
            super::input::check_text("signature", signature, 512)?;
        }
        let tenant = Some(&device.tenant);
        let view = self.registry.view(tenant, id).await?;
        // A push method answers only once started: until then its device never saw it.
        let method = crate::challenge::methods::push_method(&view, device.factor_id)
            .filter(|m| m.started())
            .map(|m| m.id);
        let own = view.kind == ChallengeType::Push && view.factor() == Some(device.factor_id);
        if !own && method.is_none() {
            return Err(Error::ChallengeNotFound);
        }
        let attempt = Attempt {
            token: None,
            code: None,
            actor_id: None,
            allowed: decision.allowed(),
            on_behalf: false,
            device: Some(DeviceProof {
                factor_id: device.factor_id,
                signature,
            }),
            credential: None,
            method,
        };
        Ok(self.registry.send(tenant, id, Answer(attempt)).await??)
    }
}
