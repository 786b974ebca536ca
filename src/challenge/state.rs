//! THE state machine, as a pure function: `apply(life, event, now)` returns the next
//! lifecycle, the effects the actor must carry out, and the caller's result. No I/O, no
//! clock, no randomness — the actor passes `now` in and has already turned the presented
//! answer into a [`Verdict`] with its kind's rules (`challenge::kinds`).
//!
//! ```text
//! pending ──issue──> issued
//! issued ──correct──> verified ──complete──> completed
//! issued ──allowed=false──> declined
//! issued ──wrong × max_attempts──> failed
//! pending|issued|verified ──cancel──> cancelled
//! pending|issued|verified ──now ≥ expires_at──> expired
//! pending|issued ──retime──> the same state, with a new expires_at
//! ```
//! Every event first applies an expiry that is due, so an answer racing the expiry
//! timer sees `expired` even if the timer has not fired yet.

use crate::clock::Millis;
use crate::model::{Lifecycle, State};

/// What the kind's rules made of a presented answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A correct answer from the actor at this index; `allowed = false` declines.
    Accepted { actor: u16, allowed: bool },
    /// A wrong code (or a bearer caller's wrong token): costs one attempt.
    Wrong,
    /// An anonymous answer whose token matches no actor: proves nothing, costs nothing.
    Unrecognized,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Answer(Verdict),
    /// The expiry timer fired.
    Expire,
    Cancel,
    Complete,
    /// Issue a `pending` challenge.
    Issue,
    /// Move the expiry of a `pending` or `issued` challenge (earlier or later); one moved
    /// to a time already past expires it at once.
    Retime(Millis),
}

/// Why an event was refused; the API maps each to a stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    WrongAnswer {
        attempts_left: u32,
    },
    Unrecognized,
    AlreadyAnswered,
    Expired,
    Cancelled,
    Failed,
    NotCancellable(State),
    NotCompletable(State),
    /// An answer to a `pending` challenge: it has not been issued.
    NotIssued,
    /// An issue of a challenge that is not `pending`.
    NotPending(State),
    /// A new expiry for a challenge that is neither `pending` nor `issued`.
    NotRetimable(State),
}

/// What the actor must do after a transition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Effects {
    /// The lifecycle changed: snapshot it and wake long-poll waiters.
    pub changed: bool,
    /// The state became terminal in this step: release the quota slot, arm retention.
    pub ended: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub life: Lifecycle,
    pub effects: Effects,
    pub result: Result<(), Refusal>,
}

pub fn apply(life: Lifecycle, event: Event, now: Millis) -> Transition {
    let before = life;
    let (mut life, expired_now) = expire_if_due(life, now);
    let result = match event {
        Event::Expire => Ok(()),
        Event::Answer(verdict) => answer(&mut life, verdict, now),
        Event::Cancel => match life.state {
            State::Pending | State::Issued | State::Verified => {
                move_to(&mut life, State::Cancelled, now);
                Ok(())
            }
            other => Err(Refusal::NotCancellable(other)),
        },
        Event::Complete => match life.state {
            State::Verified => {
                move_to(&mut life, State::Completed, now);
                Ok(())
            }
            other => Err(Refusal::NotCompletable(other)),
        },
        Event::Issue => match life.state {
            State::Pending => {
                move_to(&mut life, State::Issued, now);
                Ok(())
            }
            other => Err(Refusal::NotPending(other)),
        },
        Event::Retime(expires_at) => match life.state {
            State::Pending | State::Issued => {
                life.expires_at = expires_at;
                life = expire_if_due(life, now).0;
                Ok(())
            }
            other => Err(Refusal::NotRetimable(other)),
        },
    };
    let changed = life != before;
    let ended = !before.state.is_terminal() && life.state.is_terminal();
    debug_assert!(!expired_now || changed);
    Transition {
        life,
        effects: Effects { changed, ended },
        result,
    }
}

fn expire_if_due(mut life: Lifecycle, now: Millis) -> (Lifecycle, bool) {
    let live = matches!(life.state, State::Pending | State::Issued | State::Verified);
    if live && now >= life.expires_at {
        move_to(&mut life, State::Expired, now);
        (life, true)
    } else {
        (life, false)
    }
}

fn answer(life: &mut Lifecycle, verdict: Verdict, now: Millis) -> Result<(), Refusal> {
    match life.state {
        State::Issued => {}
        State::Pending => return Err(Refusal::NotIssued),
        State::Verified | State::Completed | State::Declined => {
            return Err(Refusal::AlreadyAnswered)
        }
        State::Expired => return Err(Refusal::Expired),
        State::Cancelled => return Err(Refusal::Cancelled),
        State::Failed => return Err(Refusal::Failed),
    }
    match verdict {
        Verdict::Accepted { actor, allowed } => {
            life.answered_by = Some(actor);
            life.answered_at = Some(now);
            let next = if allowed {
                State::Verified
            } else {
                State::Declined
            };
            move_to(life, next, now);
            Ok(())
        }
        Verdict::Wrong => {
            life.attempts = life.attempts.saturating_add(1);
            life.updated_at = now;
            if life.attempts >= life.max_attempts {
                move_to(life, State::Failed, now);
            }
            Err(Refusal::WrongAnswer {
                attempts_left: life.attempts_left(),
            })
        }
        Verdict::Unrecognized => Err(Refusal::Unrecognized),
    }
}

fn move_to(life: &mut Lifecycle, state: State, now: Millis) {
    life.state = state;
    life.updated_at = now;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T0: Millis = 1_000_000;

    fn fresh() -> Lifecycle {
        Lifecycle::issued(T0, T0 + 60_000, 3)
    }
    fn accept(actor: u16) -> Event {
        Event::Answer(Verdict::Accepted {
            actor,
            allowed: true,
        })
    }

    #[test]
    fn a_correct_answer_verifies_and_records_the_actor() {
        let t = apply(fresh(), accept(1), T0 + 5);
        assert_eq!(t.result, Ok(()));
        assert_eq!(t.life.state, State::Verified);
        assert_eq!(t.life.answered_by, Some(1));
        assert_eq!(t.life.answered_at, Some(T0 + 5));
        assert_eq!(
            t.effects,
            Effects {
                changed: true,
                ended: false
            }
        );
    }

    #[test]
    fn allowed_false_declines() {
        let t = apply(
            fresh(),
            Event::Answer(Verdict::Accepted {
                actor: 0,
                allowed: false,
            }),
            T0 + 5,
        );
        assert_eq!(t.life.state, State::Declined);
        assert_eq!(t.life.answered_by, Some(0));
        assert!(t.effects.ended);
    }

    #[test]
    fn a_second_answer_is_refused_and_changes_nothing() {
        let first = apply(fresh(), accept(0), T0 + 1).life;
        let second = apply(first, accept(1), T0 + 2);
        assert_eq!(second.result, Err(Refusal::AlreadyAnswered));
        assert_eq!(second.life, first);
        assert!(!second.effects.changed);
    }

    #[test]
    fn an_answer_after_expiry_expires_the_challenge_and_is_refused() {
        let t = apply(fresh(), accept(0), T0 + 60_000);
        assert_eq!(t.result, Err(Refusal::Expired));
        assert_eq!(t.life.state, State::Expired);
        assert_eq!(t.life.answered_by, None);
        assert_eq!(
            t.effects,
            Effects {
                changed: true,
                ended: true
            }
        );
    }

    #[test]
    fn a_retime_moves_the_expiry_of_a_live_challenge_only() {
        let later = apply(fresh(), Event::Retime(T0 + 120_000), T0 + 5);
        assert_eq!(later.result, Ok(()));
        assert_eq!(later.life.expires_at, T0 + 120_000);
        assert_eq!(later.life.state, State::Issued);
        assert!(later.effects.changed && !later.effects.ended);
        // Now due: it expires in the same step.
        let past = apply(fresh(), Event::Retime(T0 + 1), T0 + 5);
        assert_eq!(past.result, Ok(()));
        assert_eq!(past.life.state, State::Expired);
        assert!(past.effects.ended);
        let verified = apply(fresh(), accept(0), T0 + 1).life;
        let refused = apply(verified, Event::Retime(T0 + 120_000), T0 + 2);
        assert_eq!(refused.result, Err(Refusal::NotRetimable(State::Verified)));
        assert!(!refused.effects.changed);
    }

    #[test]
    fn the_expiry_timer_expires_only_when_due() {
        let early = apply(fresh(), Event::Expire, T0 + 59_999);
        assert_eq!(early.life.state, State::Issued);
        assert!(!early.effects.changed);
        let due = apply(fresh(), Event::Expire, T0 + 60_000);
        assert_eq!(due.life.state, State::Expired);
        assert!(due.effects.ended);
    }

    #[test]
    fn an_answer_racing_a_cancel_loses_whichever_comes_second() {
        let cancelled = apply(fresh(), Event::Cancel, T0 + 1).life;
        assert_eq!(cancelled.state, State::Cancelled);
        assert_eq!(
            apply(cancelled, accept(0), T0 + 2).result,
            Err(Refusal::Cancelled)
        );

        let verified = apply(fresh(), accept(0), T0 + 1).life;
        let t = apply(verified, Event::Cancel, T0 + 2);
        assert_eq!(t.result, Ok(()));
        assert_eq!(t.life.state, State::Cancelled);
        assert_eq!(t.life.answered_by, Some(0));
    }

    #[test]
    fn complete_twice_is_refused_the_second_time() {
        let verified = apply(fresh(), accept(0), T0 + 1).life;
        let once = apply(verified, Event::Complete, T0 + 2);
        assert_eq!(once.result, Ok(()));
        assert_eq!(once.life.state, State::Completed);
        assert!(once.effects.ended);
        let twice = apply(once.life, Event::Complete, T0 + 3);
        assert_eq!(twice.result, Err(Refusal::NotCompletable(State::Completed)));
        assert!(!twice.effects.changed);
    }

    #[test]
    fn complete_before_an_answer_is_refused() {
        let t = apply(fresh(), Event::Complete, T0 + 1);
        assert_eq!(t.result, Err(Refusal::NotCompletable(State::Issued)));
    }

    #[test]
    fn wrong_answers_up_to_max_attempts_fail_the_challenge() {
        let mut life = fresh();
        for left in [2, 1] {
            let t = apply(life, Event::Answer(Verdict::Wrong), T0 + 1);
            assert_eq!(
                t.result,
                Err(Refusal::WrongAnswer {
                    attempts_left: left
                })
            );
            assert_eq!(t.life.state, State::Issued);
            assert!(t.effects.changed && !t.effects.ended);
            life = t.life;
        }
        let t = apply(life, Event::Answer(Verdict::Wrong), T0 + 1);
        assert_eq!(t.result, Err(Refusal::WrongAnswer { attempts_left: 0 }));
        assert_eq!(t.life.state, State::Failed);
        assert!(t.effects.ended);
        assert_eq!(
            apply(t.life, accept(0), T0 + 2).result,
            Err(Refusal::Failed)
        );
    }

    #[test]
    fn an_unrecognized_answer_costs_nothing() {
        let t = apply(fresh(), Event::Answer(Verdict::Unrecognized), T0 + 1);
        assert_eq!(t.result, Err(Refusal::Unrecognized));
        assert_eq!(t.life, fresh());
        assert!(!t.effects.changed);
    }

    #[test]
    fn a_terminal_challenge_cannot_be_cancelled() {
        let expired = apply(fresh(), Event::Expire, T0 + 60_000).life;
        let t = apply(expired, Event::Cancel, T0 + 60_001);
        assert_eq!(t.result, Err(Refusal::NotCancellable(State::Expired)));
    }

    #[test]
    fn a_pending_challenge_takes_no_answer_until_issued() {
        let pending = Lifecycle::pending(T0, T0 + 60_000, 3);
        let t = apply(pending, accept(0), T0 + 1);
        assert_eq!(t.result, Err(Refusal::NotIssued));
        assert_eq!(t.life, pending);
        assert!(!t.effects.changed);
        let wrong = apply(pending, Event::Answer(Verdict::Wrong), T0 + 1);
        assert_eq!(wrong.life.attempts, 0, "nothing to cost while pending");
        let issued = apply(pending, Event::Issue, T0 + 2);
        assert_eq!(issued.result, Ok(()));
        assert_eq!(issued.life.state, State::Issued);
        assert!(issued.effects.changed && !issued.effects.ended);
        assert_eq!(
            apply(issued.life, Event::Issue, T0 + 3).result,
            Err(Refusal::NotPending(State::Issued))
        );
        assert_eq!(
            apply(issued.life, accept(0), T0 + 3).life.state,
            State::Verified
        );
    }

    #[test]
    fn a_pending_challenge_expires_and_cancels_like_an_issued_one() {
        let pending = Lifecycle::pending(T0, T0 + 60_000, 3);
        let t = apply(pending, Event::Issue, T0 + 60_000);
        assert_eq!(t.life.state, State::Expired);
        assert_eq!(t.result, Err(Refusal::NotPending(State::Expired)));
        assert!(t.effects.ended);
        let t = apply(pending, Event::Cancel, T0 + 1);
        assert_eq!(t.life.state, State::Cancelled);
        assert!(t.effects.ended);
    }

    fn any_event() -> impl Strategy<Value = Event> {
        prop_oneof![
            (0u16..3, any::<bool>())
                .prop_map(|(actor, allowed)| Event::Answer(Verdict::Accepted { actor, allowed })),
            Just(Event::Answer(Verdict::Wrong)),
            Just(Event::Answer(Verdict::Unrecognized)),
            Just(Event::Expire),
            Just(Event::Cancel),
            Just(Event::Complete),
            Just(Event::Issue),
            (T0..T0 + 400_000).prop_map(Event::Retime),
        ]
    }

    proptest! {
        /// Whatever happens: a terminal state never changes, at most one answer is ever
        /// accepted, attempts never exceed the maximum, and `ended` fires exactly once.
        #[test]
        fn terminal_states_are_final_and_one_answer_wins(
            pending in any::<bool>(),
            steps in proptest::collection::vec((any_event(), 0i64..20_000), 1..40)
        ) {
            let mut life = if pending { Lifecycle::pending(T0, T0 + 60_000, 3) } else { fresh() };
            let mut now = T0;
            let mut accepted = 0;
            let mut ended = 0;
            for (event, dt) in steps {
                now += dt;
                let t = apply(life, event, now);
                if life.state.is_terminal() {
                    prop_assert_eq!(t.life, life);
                    prop_assert!(!t.effects.changed);
                }
                if matches!(event, Event::Answer(Verdict::Accepted { .. })) && t.result.is_ok() {
                    accepted += 1;
                }
                if t.effects.ended { ended += 1; }
                prop_assert!(t.life.attempts <= t.life.max_attempts);
                prop_assert!(t.life.updated_at <= now);
                life = t.life;
            }
            prop_assert!(accepted <= 1);
            prop_assert_eq!(ended, usize::from(life.state.is_terminal()));
        }
    }
}
