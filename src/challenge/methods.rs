//! The state machine of a challenge that offers several methods (`model::method`), as
//! pure functions beside `state::apply`: no I/O, no clock, no randomness.
//!
//! ```text
//! method open ──correct──> verified (declined with allowed=false)   challenge: issued ──> verified
//! method open ──wrong × max_attempts──> failed                      every method failed: challenge ──> failed
//! challenge leaves issued (won, cancelled, expired, failed)         every open method shows as closed
//! ```
//! A method's answer moves the challenge's lifecycle and the method's tally in one
//! step, so the actor writes both in one snapshot: the winner and the closing of the
//! others are one durable change, and the first answer that reaches the actor wins.
//! A cancel, a complete or the expiry timer move the lifecycle alone (`state::apply`).

use super::state::{self, Effects, Event, Refusal, Transition, Verdict};
use crate::clock::Millis;
use crate::model::{Challenge, KindData, Lifecycle, Method, MethodState, State};

/// What the state machine reads and moves of one method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodLife {
    pub state: MethodState,
    pub attempts: u32,
    pub max_attempts: u32,
    pub started: bool,
}

impl From<&Method> for MethodLife {
    fn from(m: &Method) -> Self {
        MethodLife {
            state: m.state,
            attempts: m.attempts,
            max_attempts: m.max_attempts,
            started: m.started(),
        }
    }
}

/// Why a method refused an answer, with the challenge still `issued` and nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodRefusal {
    /// A delivered method whose code was never sent: nobody can know its secret.
    NotStarted,
    /// The method used up its attempts.
    Failed,
}

/// The outcome of an answer to a method: the challenge's transition and every method's
/// tally after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub transition: Transition,
    pub methods: Vec<MethodLife>,
}

/// Applies the verdict on an answer to method `index` at `now`. A due expiry applies
/// first; a challenge that is no longer `issued` refuses as `state::apply` does.
pub fn answer(
    life: Lifecycle,
    methods: &[MethodLife],
    index: usize,
    verdict: Verdict,
    now: Millis,
) -> Result<Step, MethodRefusal> {
    let unchanged = methods.to_vec();
    let due = state::apply(life, Event::Expire, now);
    if due.life.state != State::Issued {
        // The state refuses before it looks at the verdict.
        return Ok(Step {
            transition: state::apply(life, Event::Answer(Verdict::Unrecognized), now),
            methods: unchanged,
        });
    }
    let method = methods[index];
    match method.state {
        MethodState::Open if !method.started => return Err(MethodRefusal::NotStarted),
        MethodState::Open => {}
        // Only an issued challenge gets here, and a won method ends it: failed it is.
        _ => return Err(MethodRefusal::Failed),
    }
    let mut after = unchanged;
    match verdict {
        Verdict::Accepted { allowed, .. } => {
            let transition = state::apply(life, Event::Answer(verdict), now);
            after[index].state = if allowed {
                MethodState::Verified
            } else {
                MethodState::Declined
            };
            Ok(Step {
                transition,
                methods: after,
            })
        }
        Verdict::Wrong => {
            let m = &mut after[index];
            m.attempts = m.attempts.saturating_add(1).min(m.max_attempts);
            if m.attempts >= m.max_attempts {
                m.state = MethodState::Failed;
            }
            let attempts_left = m.max_attempts - m.attempts;
            let mut next = life;
            next.updated_at = now;
            next.attempts = after
                .iter()
                .map(|m| m.attempts.min(life.max_attempts))
                .min()
                .unwrap_or(life.max_attempts);
            let all_failed = after.iter().all(|m| m.state == MethodState::Failed);
            if all_failed {
                next.state = State::Failed;
                next.attempts = next.max_attempts;
            }
            Ok(Step {
                transition: Transition {
                    life: next,
                    effects: Effects {
                        changed: true,
                        ended: all_failed,
                    },
                    result: Err(Refusal::WrongAnswer { attempts_left }),
                },
                methods: after,
            })
        }
        Verdict::Unrecognized => Ok(Step {
            transition: state::apply(life, Event::Answer(verdict), now),
            methods: after,
        }),
    }
}

/// Method `index` of `c` as a challenge of its own kind: its kind, its secrets in the
/// actors' place and its kind's data, so that the kind's rules (`kinds::of`) judge an
/// answer to it and render its messages exactly as they do for a challenge of one kind.
pub fn face(c: &Challenge, index: usize) -> Challenge {
    let method = &c.methods()[index];
    let mut face = c.clone();
    face.kind = method.kind;
    for (actor, hash) in face.actors.iter_mut().zip(&method.hashes) {
        actor.token_hash = *hash;
    }
    if let Some(extras) = face.extras.as_deref_mut() {
        extras.kind = method.data.clone();
        extras.methods = Vec::new();
    }
    face
}

/// Writes what `face` (a method's face, changed) holds of the method back into it.
pub fn absorb(c: &mut Challenge, index: usize, face: &Challenge) {
    let data = face.extras().kind.clone();
    if let Some(method) = c.methods_mut().and_then(|m| m.get_mut(index)) {
        method.hashes = face.actors.iter().map(|a| a.token_hash).collect();
        method.data = data;
    }
}

/// Writes the tallies of a [`Step`] into the challenge's methods.
pub fn record(c: &mut Challenge, tallies: &[MethodLife]) {
    if let Some(methods) = c.methods_mut() {
        for (method, tally) in methods.iter_mut().zip(tallies) {
            method.state = tally.state;
            method.attempts = tally.attempts;
        }
    }
}

/// The index of the method with this id.
pub fn find(c: &Challenge, id: crate::model::MethodId) -> Option<usize> {
    c.methods().iter().position(|m| m.id == id)
}

/// The method whose secret is this answer token (a `token` method's, or the one an
/// `email_link` method's link carries), if any: every method's hashes are compared, in
/// constant time each, so the time taken does not say which matched.
pub fn by_token(
    key: &super::HashKey,
    c: &Challenge,
    token: &crate::model::AnswerToken,
) -> Option<usize> {
    let presented = key.hash(token.expose());
    let mut matched = None;
    for (index, method) in c.methods().iter().enumerate() {
        for hash in &method.hashes {
            if super::HashKey::matches(&presented, hash) && matched.is_none() {
                matched = Some(index);
            }
        }
    }
    matched
}

/// The push method of `c` answered by `factor`, if it has one.
pub fn push_method(c: &Challenge, factor: crate::model::FactorId) -> Option<&Method> {
    c.methods()
        .iter()
        .find(|m| m.kind == crate::model::ChallengeType::Push && m.data == KindData::Factor(factor))
}

/// `c` as the device of `factor` sees it: the face of its push method, if that method
/// is started; `None` when `c` offers no such method.
pub fn for_factor(c: &Challenge, factor: crate::model::FactorId) -> Option<Challenge> {
    let method = push_method(c, factor).filter(|m| m.started())?;
    let index = c.methods().iter().position(|m| m.id == method.id)?;
    Some(face(c, index))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T0: Millis = 1_000_000;

    fn fresh() -> Lifecycle {
        Lifecycle::issued(T0, T0 + 60_000, 3)
    }
    fn open(started: bool) -> MethodLife {
        MethodLife {
            state: MethodState::Open,
            attempts: 0,
            max_attempts: 3,
            started,
        }
    }
    fn accept() -> Verdict {
        Verdict::Accepted {
            actor: 0,
            allowed: true,
        }
    }

    #[test]
    fn the_first_correct_method_wins_and_the_other_is_refused() {
        let methods = [open(true), open(true)];
        let won = answer(fresh(), &methods, 1, accept(), T0 + 1).unwrap();
        assert_eq!(won.transition.result, Ok(()));
        assert_eq!(won.transition.life.state, State::Verified);
        assert_eq!(won.methods[1].state, MethodState::Verified);
        assert_eq!(won.methods[0].state, MethodState::Open);
        let late = answer(won.transition.life, &won.methods, 0, accept(), T0 + 2).unwrap();
        assert_eq!(late.transition.result, Err(Refusal::AlreadyAnswered));
        assert!(!late.transition.effects.changed);
        assert_eq!(late.methods, won.methods);
    }

    #[test]
    fn a_wrong_answer_costs_only_its_methods_attempt() {
        let methods = [open(true), open(true)];
        let step = answer(fresh(), &methods, 0, Verdict::Wrong, T0 + 1).unwrap();
        assert_eq!(
            step.transition.result,
            Err(Refusal::WrongAnswer { attempts_left: 2 })
        );
        assert_eq!(step.methods[0].attempts, 1);
        assert_eq!(step.methods[1].attempts, 0);
        // The challenge counts the fewest wrong answers of any method.
        assert_eq!(step.transition.life.attempts, 0);
        assert_eq!(step.transition.life.state, State::Issued);
        assert!(step.transition.effects.changed && !step.transition.effects.ended);
    }

    #[test]
    fn a_method_at_its_limit_fails_alone_and_the_challenge_fails_with_the_last() {
        let mut methods = vec![open(true), open(true)];
        let mut life = fresh();
        for _ in 0..3 {
            let step = answer(life, &methods, 0, Verdict::Wrong, T0 + 1).unwrap();
            (life, methods) = (step.transition.life, step.methods);
        }
        assert_eq!(methods[0].state, MethodState::Failed);
        assert_eq!(life.state, State::Issued);
        assert_eq!(
            answer(life, &methods, 0, accept(), T0 + 2),
            Err(MethodRefusal::Failed)
        );
        let mut ended = 0;
        for _ in 0..3 {
            let step = answer(life, &methods, 1, Verdict::Wrong, T0 + 3).unwrap();
            ended += usize::from(step.transition.effects.ended);
            (life, methods) = (step.transition.life, step.methods);
        }
        assert_eq!(life.state, State::Failed);
        assert_eq!(life.attempts_left(), 0);
        assert_eq!(ended, 1);
        let after = answer(life, &methods, 1, accept(), T0 + 4).unwrap();
        assert_eq!(after.transition.result, Err(Refusal::Failed));
    }

    #[test]
    fn a_method_not_started_takes_no_answer_and_costs_nothing() {
        let methods = [open(false), open(true)];
        assert_eq!(
            answer(fresh(), &methods, 0, Verdict::Wrong, T0 + 1),
            Err(MethodRefusal::NotStarted)
        );
    }

    #[test]
    fn an_answer_after_expiry_expires_the_challenge_whichever_method_it_names() {
        let methods = [open(false), open(true)];
        for index in [0, 1] {
            let step = answer(fresh(), &methods, index, accept(), T0 + 60_000).unwrap();
            assert_eq!(step.transition.result, Err(Refusal::Expired));
            assert_eq!(step.transition.life.state, State::Expired);
            assert!(step.transition.effects.ended);
            assert_eq!(step.methods, methods);
        }
    }

    #[test]
    fn a_methods_face_is_a_challenge_of_its_kind_and_takes_its_changes_back() {
        use crate::model::*;
        let mut c = Challenge {
            id: ChallengeId::random(),
            tenant: TenantId::parse("acme").unwrap(),
            kind: ChallengeType::Token,
            user_id: "u".into(),
            actors: vec![ActorRecord {
                id: ActorId::random(),
                user_id: "u".into(),
                token_hash: TokenHash([1; 32]),
            }],
            created_at: T0,
            life: fresh(),
            retention_ms: 0,
            extras: None,
        };
        let factor = FactorId::random();
        c.extras = Extras {
            methods: vec![
                Method {
                    id: MethodId::random(),
                    kind: ChallengeType::Token,
                    state: MethodState::Open,
                    attempts: 0,
                    max_attempts: 3,
                    started_at: Some(T0),
                    hashes: vec![TokenHash([2; 32])],
                    data: KindData::None,
                },
                Method {
                    id: MethodId::random(),
                    kind: ChallengeType::Push,
                    state: MethodState::Open,
                    attempts: 0,
                    max_attempts: 3,
                    started_at: None,
                    hashes: vec![TokenHash([3; 32])],
                    data: KindData::Factor(factor),
                },
            ],
            ..Extras::default()
        }
        .boxed();
        let mut push = face(&c, 1);
        assert_eq!(push.kind, ChallengeType::Push);
        assert_eq!(push.factor(), Some(factor));
        assert_eq!(push.actors[0].token_hash, TokenHash([3; 32]));
        assert_eq!(push.actors[0].id, c.actors[0].id);
        assert!(push.methods().is_empty());
        // Its device sees it only once it is started.
        assert!(for_factor(&c, factor).is_none());
        assert!(!c.answered_by_factor(factor));
        c.methods_mut().unwrap()[1].started_at = Some(T0 + 1);
        assert_eq!(
            for_factor(&c, factor).map(|f| f.kind),
            Some(ChallengeType::Push)
        );
        assert!(c.answered_by_factor(factor) && c.offers(ChallengeType::Push));
        assert_eq!(c.factors().collect::<Vec<_>>(), [factor]);

        push.actors[0].token_hash = TokenHash([4; 32]);
        absorb(&mut c, 1, &push);
        assert_eq!(c.methods()[1].hashes, [TokenHash([4; 32])]);
        assert_eq!(c.methods()[0].hashes, [TokenHash([2; 32])]);
        assert_eq!(
            c.actors[0].token_hash,
            TokenHash([1; 32]),
            "the challenge's own stay"
        );
    }

    #[test]
    fn an_unrecognized_answer_changes_nothing() {
        let methods = [open(true)];
        let step = answer(fresh(), &methods, 0, Verdict::Unrecognized, T0 + 1).unwrap();
        assert_eq!(step.transition.result, Err(Refusal::Unrecognized));
        assert!(!step.transition.effects.changed);
        assert_eq!(step.methods, methods);
    }

    #[derive(Debug, Clone, Copy)]
    enum Input {
        Answer(usize, Verdict),
        Other(Event),
    }

    fn any_input() -> impl Strategy<Value = Input> {
        prop_oneof![
            (0usize..3, any::<bool>())
                .prop_map(|(i, allowed)| Input::Answer(i, Verdict::Accepted { actor: 0, allowed })),
            (0usize..3).prop_map(|i| Input::Answer(i, Verdict::Wrong)),
            (0usize..3).prop_map(|i| Input::Answer(i, Verdict::Unrecognized)),
            Just(Input::Other(Event::Expire)),
            Just(Input::Other(Event::Cancel)),
            Just(Input::Other(Event::Complete)),
        ]
    }

    proptest! {
        /// Whatever happens to three methods: at most one answer is ever accepted and at
        /// most one method wins, a terminal challenge never changes, no method exceeds
        /// its attempts, the challenge fails by wrong answers only when every method has
        /// failed, and `ended` fires exactly once.
        #[test]
        fn one_method_wins_at_most_once(
            steps in proptest::collection::vec((any_input(), 0i64..20_000), 1..60),
            started in proptest::collection::vec(any::<bool>(), 3),
        ) {
            let mut life = fresh();
            let mut methods: Vec<MethodLife> = started.iter().map(|s| open(*s)).collect();
            let mut now = T0;
            let (mut accepted, mut ended) = (0, 0);
            for (input, dt) in steps {
                now += dt;
                let before = life;
                let (t, after) = match input {
                    Input::Answer(i, verdict) => match answer(life, &methods, i, verdict, now) {
                        Ok(step) => (step.transition, step.methods),
                        Err(_) => {
                            prop_assert_eq!(life.state, State::Issued);
                            continue;
                        }
                    },
                    Input::Other(event) => (state::apply(life, event, now), methods.clone()),
                };
                if before.state.is_terminal() {
                    prop_assert_eq!(t.life, before);
                    prop_assert!(!t.effects.changed);
                }
                if matches!(input, Input::Answer(_, Verdict::Accepted { .. })) && t.result.is_ok() {
                    accepted += 1;
                }
                if t.effects.ended { ended += 1; }
                for m in &after {
                    prop_assert!(m.attempts <= m.max_attempts);
                    prop_assert_eq!(m.state == MethodState::Failed, m.attempts == m.max_attempts);
                }
                prop_assert!(t.life.attempts <= t.life.max_attempts);
                let winners = after
                    .iter()
                    .filter(|m| matches!(m.state, MethodState::Verified | MethodState::Declined))
                    .count();
                prop_assert!(winners <= 1);
                if t.life.state == State::Failed && before.state != State::Failed {
                    prop_assert!(after.iter().all(|m| m.state == MethodState::Failed));
                }
                life = t.life;
                methods = after;
            }
            prop_assert!(accepted <= 1);
            prop_assert_eq!(ended, usize::from(life.state.is_terminal()));
        }
    }
}
