//! The OTP kinds (`email_otp`, `sms_otp`): each actor gets its own one-time code, drawn
//! from a CSPRNG in the policy's length and alphabet and stored only as a keyed hash
//! bound to the challenge id. A wrong code costs one attempt, whoever relays it; the
//! first actor whose code matches wins.

use rand::Rng;

use super::token::{Attempt, AttemptError};
use super::{delivered, HashKey, Kind, KindPlan, PlanContext, Secrets};
use super::{Delivery, SecretForm};
use crate::challenge::state::Verdict;
use crate::engine::{CreateRequest, Error};
use crate::model::{
    ActorRecord, AnswerToken, Challenge, ChallengeId, DeliveryChannel, PolicySpec, TokenHash,
};

/// An OTP kind: its code goes out over `channel`.
pub struct Code {
    channel: DeliveryChannel,
}

pub const EMAIL_OTP: Code = Code {
    channel: DeliveryChannel::Email,
};
pub const SMS_OTP: Code = Code {
    channel: DeliveryChannel::Sms,
};

impl Kind for Code {
    fn delivery(&self) -> Option<Delivery> {
        Some(Delivery {
            channel: self.channel,
            secret: SecretForm::Code,
        })
    }

    fn plan(
        &self,
        request: &CreateRequest,
        policy: Option<&PolicySpec>,
        ctx: &PlanContext<'_>,
    ) -> Result<KindPlan, Error> {
        delivered::plan(self.channel, request, policy, ctx)
    }

    fn issue(
        &self,
        challenge: &mut Challenge,
        _tokens: Vec<AnswerToken>,
        ctx: &PlanContext<'_>,
    ) -> Result<Secrets, Error> {
        delivered::issue(challenge, ctx).map(Secrets::Delivered)
    }

    /// A code is relayed by the calling service, never taken anonymously; a token
    /// proves nothing here. With `actor_id`, only that actor's code counts.
    fn judge(
        &self,
        key: &HashKey,
        c: &Challenge,
        attempt: &Attempt,
    ) -> Result<Verdict, AttemptError> {
        if attempt.token.is_some() && attempt.code.is_none() {
            return Ok(if attempt.on_behalf {
                Verdict::Wrong
            } else {
                Verdict::Unrecognized
            });
        }
        let Some(presented) = attempt.code.as_deref() else {
            return Err(AttemptError::CodeRequired);
        };
        if !attempt.on_behalf {
            return Ok(Verdict::Unrecognized);
        }
        let (actors, offset) = match attempt.actor_id {
            Some(id) => {
                let index = c
                    .actors
                    .iter()
                    .position(|a| a.id == id)
                    .ok_or(AttemptError::UnknownActor)?;
                (&c.actors[index..=index], index)
            }
            None => (&c.actors[..], 0),
        };
        Ok(
            match verify(key, &c.id, actors, presented, attempt.allowed) {
                Verdict::Accepted { actor, allowed } => Verdict::Accepted {
                    actor: actor + offset as u16,
                    allowed,
                },
                other => other,
            },
        )
    }
}

pub use crate::model::Alphabet;

fn chars(alphabet: Alphabet) -> &'static [u8] {
    match alphabet {
        Alphabet::Digits => b"0123456789",
        Alphabet::Alphanumeric => b"23456789ABCDEFGHJKMNPQRSTUVWXYZ",
    }
}

pub const MIN_LENGTH: u8 = 4;
pub const MAX_LENGTH: u8 = 10;

/// A fresh code (uniform over the alphabet, from the thread-local CSPRNG).
pub fn generate(length: u8, alphabet: Alphabet) -> String {
    let chars = chars(alphabet);
    let mut rng = rand::thread_rng();
    (0..length)
        .map(|_| chars[rng.gen_range(0..chars.len())] as char)
        .collect()
}

/// The stored form of an actor's code: bound to the challenge, so equal codes of two
/// challenges hash differently.
pub fn hash(key: &HashKey, challenge: &ChallengeId, code: &str) -> TokenHash {
    key.hash(&format!("{challenge}:{code}"))
}

/// Normalizes what a person typed: spaces and dashes dropped, letters upper-cased.
pub fn normalize(presented: &str) -> String {
    presented
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// A presented code against every actor's (all compared, in constant time each).
pub fn verify(
    key: &HashKey,
    challenge: &ChallengeId,
    actors: &[ActorRecord],
    presented: &str,
    allowed: bool,
) -> Verdict {
    let presented = hash(key, challenge, &normalize(presented));
    let mut matched = None;
    for (index, actor) in actors.iter().enumerate() {
        if HashKey::matches(&presented, &actor.token_hash) && matched.is_none() {
            matched = Some(index);
        }
    }
    match matched {
        Some(index) => Verdict::Accepted {
            actor: index as u16,
            allowed,
        },
        None => Verdict::Wrong,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ActorId;

    #[test]
    fn codes_have_the_asked_length_and_alphabet() {
        for _ in 0..200 {
            let d = generate(6, Alphabet::Digits);
            assert_eq!(d.len(), 6);
            assert!(d.bytes().all(|b| b.is_ascii_digit()));
            let a = generate(8, Alphabet::Alphanumeric);
            assert_eq!(a.len(), 8);
            assert!(a
                .bytes()
                .all(|b| chars(Alphabet::Alphanumeric).contains(&b)));
            assert!(!a.contains(['0', 'O', '1', 'I', 'L']));
        }
    }

    #[test]
    fn a_code_matches_only_its_actor_and_its_challenge() {
        let key = HashKey::new([3; 32]);
        let id = ChallengeId::random();
        let actors: Vec<ActorRecord> = ["111111", "222222"]
            .iter()
            .map(|code| ActorRecord {
                id: ActorId::random(),
                user_id: "u".into(),
                token_hash: hash(&key, &id, code),
            })
            .collect();
        assert_eq!(
            verify(&key, &id, &actors, "222 222", true),
            Verdict::Accepted {
                actor: 1,
                allowed: true
            }
        );
        assert_eq!(verify(&key, &id, &actors, "333333", true), Verdict::Wrong);
        assert_eq!(
            verify(&key, &ChallengeId::random(), &actors, "111111", true),
            Verdict::Wrong
        );
        assert_ne!(
            hash(&key, &id, "111111").0,
            hash(&HashKey::new([4; 32]), &id, "111111").0
        );
    }

    #[test]
    fn typed_codes_are_normalized() {
        assert_eq!(normalize(" ab-c 12 "), "ABC12");
    }
}
