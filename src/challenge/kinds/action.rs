//! The `one_time_use_action` kind: answered like `token` (a per-actor answer token, or a
//! relaying service naming the actor); the answer picks which list of HTTP actions runs.
//! Here: the pure bookkeeping of that choice and of each action's result. Running the
//! requests is `crate::actions`; the actor ties the two together, one action at a time,
//! recording each result durably before the next starts.

use super::token::{self, Attempt, AttemptError};
use super::{Field, HashKey, Kind, KindPlan, PlanContext, PolicyField};
use crate::challenge::state::Verdict;
use crate::clock::Millis;
use crate::engine::{input, ActionsRequest, CreateRequest, Error};
use crate::model::{ActionPlan, ActionResult, ActionSet, ActionStatus, Challenge, PolicySpec};

/// The `one_time_use_action` kind: a token kind that carries its actions.
pub struct OneTimeUseAction;

impl Kind for OneTimeUseAction {
    fn accepts(&self, field: Field) -> bool {
        matches!(field, Field::Actions | Field::Actors)
    }

    fn requires(&self, field: Field) -> bool {
        field == Field::Actions
    }

    fn policy_applies(&self, field: PolicyField) -> bool {
        field == PolicyField::ActionScopes
    }

    fn plan(
        &self,
        request: &CreateRequest,
        policy: Option<&PolicySpec>,
        ctx: &PlanContext<'_>,
    ) -> Result<KindPlan, Error> {
        let spec = request.actions.as_ref().ok_or_else(|| {
            Error::invalid(
                "invalid_field",
                "actions is required for one_time_use_action",
            )
        })?;
        let actors = request.actors.as_ref().map_or(1, Vec::len);
        if !spec.actor_orgs.is_empty() && spec.actor_orgs.len() != actors {
            return Err(Error::invalid(
                "invalid_field",
                "actor organisations are named for every actor or for none",
            ));
        }
        let allowed = AllowedScopes {
            server: &ctx.actions.allowed_scopes,
            tenant: &ctx.config.allowed_action_scopes,
            policy: policy
                .and_then(|p| p.allowed_action_scopes.as_deref())
                .unwrap_or_default(),
        };
        Ok(KindPlan::Actions(parse_actions(
            spec,
            ctx.actions,
            &allowed,
            ctx.services.actions.policy(),
        )?))
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

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];
pub const MAX_SCOPES: usize = 16;
pub const MAX_SCOPE: usize = 511;
pub const MAX_CONTENT_TYPE: usize = 256;

/// The scopes an action may ask for: denied unless one of the three lists names it —
/// the server's (`actions.allowed_scopes`), the tenant's configuration
/// (`allowed_action_scopes`) or the challenge's policy (`allowed_action_scopes`).
pub struct AllowedScopes<'a> {
    pub server: &'a [String],
    pub tenant: &'a [String],
    pub policy: &'a [String],
}

impl AllowedScopes<'_> {
    pub fn allows(&self, scope: &str) -> bool {
        [self.server, self.tenant, self.policy]
            .iter()
            .any(|list| list.iter().any(|s| s == scope))
    }
}

/// One entry of an allow-list of action scopes (a tenant's or a policy's) is a scope an
/// action could name: 1 to [`MAX_SCOPE`] characters, no whitespace.
pub fn check_allowed_scopes(field: &str, scopes: &[String]) -> Result<(), Error> {
    if scopes.len() > crate::model::configuration::MAX_ALLOWED_ACTION_SCOPES {
        return Err(Error::invalid(
            "too_many_items",
            format!(
                "{field} holds more than {} entries",
                crate::model::configuration::MAX_ALLOWED_ACTION_SCOPES
            ),
        ));
    }
    for (i, scope) in scopes.iter().enumerate() {
        input::check_text(&format!("{field}[{i}]"), scope, MAX_SCOPE)?;
        if scope.contains(char::is_whitespace) {
            return Err(Error::invalid(
                "invalid_field",
                format!("{field}[{i}] contains whitespace; scopes contain no spaces"),
            ));
        }
    }
    Ok(())
}

/// Validates the two action lists into the plan a challenge keeps.
pub fn parse_actions(
    spec: &ActionsRequest,
    settings: &crate::config::ActionSettings,
    allowed: &AllowedScopes<'_>,
    policy: &crate::outbound::OutboundPolicy,
) -> Result<crate::model::ActionPlan, Error> {
    if spec.approved.is_empty() && spec.declined.is_empty() {
        return Err(Error::invalid(
            "invalid_field",
            "actions needs at least one approved or declined action",
        ));
    }
    let mut lists = Vec::new();
    for (name, list) in [("approved", &spec.approved), ("declined", &spec.declined)] {
        if list.len() > settings.max_actions {
            return Err(Error::invalid(
                "too_many_items",
                format!(
                    "actions.{name} holds more than {} entries",
                    settings.max_actions
                ),
            ));
        }
        let mut parsed = Vec::with_capacity(list.len());
        for (i, a) in list.iter().enumerate() {
            let field = format!("actions.{name}[{i}]");
            let method = a.method.to_ascii_uppercase();
            if !METHODS.contains(&method.as_str()) {
                return Err(Error::invalid(
                    "invalid_method",
                    format!("{field}.method must be one of {}", METHODS.join(", ")),
                ));
            }
            input::check_url(&format!("{field}.uri"), &a.uri)?;
            input::check_outbound(&format!("{field}.uri"), &a.uri, policy)?;
            if let Some(ct) = &a.content_type {
                input::check_text(&format!("{field}.content_type"), ct, MAX_CONTENT_TYPE)?;
                if reqwest::header::HeaderValue::from_str(ct).is_err() {
                    return Err(Error::invalid(
                        "invalid_field",
                        format!("{field}.content_type is not a valid header value"),
                    ));
                }
            }
            if let Some(body) = &a.body {
                if body.len() > settings.max_body_bytes {
                    return Err(Error::invalid(
                        "field_too_long",
                        format!(
                            "{field}.body is larger than {} bytes",
                            settings.max_body_bytes
                        ),
                    ));
                }
            }
            let scopes = a.scopes.clone().unwrap_or_default();
            if scopes.len() > MAX_SCOPES {
                return Err(Error::invalid(
                    "too_many_items",
                    format!("{field}.scopes holds more than {MAX_SCOPES} entries"),
                ));
            }
            for scope in &scopes {
                input::check_text(&format!("{field}.scopes"), scope, MAX_SCOPE)?;
                if scope.contains(char::is_whitespace) {
                    return Err(Error::invalid(
                        "invalid_field",
                        format!("{field}.scopes entries contain no spaces"),
                    ));
                }
                if !allowed.allows(scope) {
                    return Err(Error::invalid(
                        "scope_not_allowed",
                        format!(
                            "{field}.scopes: {scope:?} is allowed neither by the server \
                             (actions.allowed_scopes), nor by the tenant's configuration \
                             (allowed_action_scopes), nor by the policy (allowed_action_scopes)"
                        ),
                    ));
                }
            }
            parsed.push(crate::model::HttpAction {
                method: method.into(),
                uri: a.uri.as_str().into(),
                content_type: a.content_type.as_deref().map(Into::into),
                body: a.body.as_deref().map(Into::into),
                scopes: scopes.into_iter().map(Into::into).collect(),
            });
        }
        lists.push(parsed);
    }
    let declined = lists.pop().unwrap_or_default();
    let approved = lists.pop().unwrap_or_default();
    Ok(crate::model::ActionPlan {
        approved,
        declined,
        chosen: None,
        results: Vec::new(),
        actor_orgs: spec.actor_orgs.iter().map(|o| o.as_str().into()).collect(),
    })
}

/// What one execution of an action came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub succeeded: bool,
    pub attempts: u32,
    pub status_code: Option<u16>,
    pub last_error: Option<String>,
}

/// The answer is in: fix the list that runs and mark each of its actions pending.
/// Called once, in the transition that records the answer, so the intent to run is
/// durable together with the answer itself.
pub fn choose(plan: &mut ActionPlan, allowed: bool) {
    if plan.chosen.is_some() {
        return;
    }
    let set = if allowed {
        ActionSet::Approved
    } else {
        ActionSet::Declined
    };
    plan.chosen = Some(set);
    plan.results = plan
        .list(set)
        .iter()
        .map(|_| ActionResult {
            status: ActionStatus::Pending,
            attempts: 0,
            status_code: None,
            last_error: None,
            finished_at: None,
        })
        .collect();
}

/// The next action to run: the first pending one of the chosen list, in order.
pub fn next_pending(plan: &ActionPlan) -> Option<usize> {
    plan.chosen?;
    plan.results
        .iter()
        .position(|r| r.status == ActionStatus::Pending)
}

/// Records a finished execution. Attempts accumulate across restarts.
pub fn record(plan: &mut ActionPlan, index: usize, outcome: &Outcome, now: Millis) {
    if let Some(result) = plan.results.get_mut(index) {
        result.status = if outcome.succeeded {
            ActionStatus::Succeeded
        } else {
            ActionStatus::Failed
        };
        result.attempts = result.attempts.saturating_add(outcome.attempts);
        result.status_code = outcome.status_code;
        result.last_error = outcome.last_error.as_deref().map(Into::into);
        result.finished_at = Some(now);
    }
}

/// The `Idempotency-Key` every request of this action carries, on every attempt and
/// after every restart, so a receiver can tell a retry from a new request.
pub fn idempotency_key(challenge: &str, set: ActionSet, index: usize) -> String {
    format!("{challenge}.{}.{index}", set.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::HttpAction;

    fn action(uri: &str) -> HttpAction {
        HttpAction {
            method: "POST".into(),
            uri: uri.into(),
            content_type: None,
            body: None,
            scopes: vec![],
        }
    }

    fn plan() -> ActionPlan {
        ActionPlan {
            approved: vec![action("http://a/1"), action("http://a/2")],
            declined: vec![action("http://d/1")],
            chosen: None,
            results: vec![],
            actor_orgs: vec![],
        }
    }

    #[test]
    fn nothing_runs_before_an_answer() {
        assert_eq!(next_pending(&plan()), None);
    }

    #[test]
    fn approval_runs_the_approved_list_in_order_and_only_once() {
        let mut p = plan();
        choose(&mut p, true);
        assert_eq!(p.chosen, Some(ActionSet::Approved));
        assert_eq!(p.results.len(), 2);
        assert_eq!(next_pending(&p), Some(0));
        let ok = Outcome {
            succeeded: true,
            attempts: 2,
            status_code: Some(200),
            last_error: None,
        };
        record(&mut p, 0, &ok, 5);
        assert_eq!(next_pending(&p), Some(1));
        let failed = Outcome {
            succeeded: false,
            attempts: 1,
            status_code: Some(400),
            last_error: Some("400".into()),
        };
        record(&mut p, 1, &failed, 6);
        assert_eq!(next_pending(&p), None);
        assert_eq!(p.results[0].attempts, 2);
        assert_eq!(p.results[1].status, ActionStatus::Failed);
        choose(&mut p, false);
        assert_eq!(
            p.chosen,
            Some(ActionSet::Approved),
            "the choice never changes"
        );
    }

    #[test]
    fn a_decline_runs_the_declined_list() {
        let mut p = plan();
        choose(&mut p, false);
        assert_eq!(p.chosen, Some(ActionSet::Declined));
        assert_eq!(p.results.len(), 1);
    }

    #[test]
    fn idempotency_keys_name_challenge_list_and_index() {
        assert_eq!(
            idempotency_key("ch_x", ActionSet::Declined, 2),
            "ch_x.declined.2"
        );
    }
}
