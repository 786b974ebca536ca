//! The `email_link` kind: each actor is emailed a link to the answer page carrying its
//! own answer token, so it is answered like `token`, by whoever holds the link.

use super::token::{self, Attempt, AttemptError};
use super::{delivered, Delivery, HashKey, Kind, KindPlan, PlanContext, SecretForm, Secrets};
use crate::challenge::state::Verdict;
use crate::engine::{CreateRequest, Error};
use crate::model::{AnswerToken, Challenge, DeliveryChannel, PolicySpec};

pub struct EmailLink;

impl Kind for EmailLink {
    fn delivery(&self) -> Option<Delivery> {
        Some(Delivery {
            channel: DeliveryChannel::Email,
            secret: SecretForm::Link,
        })
    }

    fn plan(
        &self,
        request: &CreateRequest,
        policy: Option<&PolicySpec>,
        ctx: &PlanContext<'_>,
    ) -> Result<KindPlan, Error> {
        delivered::plan(DeliveryChannel::Email, request, policy, ctx)
    }

    fn issue(
        &self,
        challenge: &mut Challenge,
        _tokens: Vec<AnswerToken>,
        ctx: &PlanContext<'_>,
    ) -> Result<Secrets, Error> {
        delivered::issue(challenge, ctx).map(Secrets::Delivered)
    }

    fn judge(
        &self,
        key: &HashKey,
        challenge: &Challenge,
        attempt: &Attempt,
    ) -> Result<Verdict, AttemptError> {
        token::judge(key, challenge, attempt)
    }
}
