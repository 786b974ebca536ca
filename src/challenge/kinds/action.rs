//! The `one_time_use_action` kind: answered like `token` (a per-actor answer token, or a
//! relaying service naming the actor); the answer picks which list of HTTP actions runs.
//! Here: the pure bookkeeping of that choice and of each action's result. Running the
//! requests is `crate::actions`; the actor ties the two together, one action at a time,
//! recording each result durably before the next starts.

use crate::clock::Millis;
use crate::model::{ActionPlan, ActionResult, ActionSet, ActionStatus};

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
