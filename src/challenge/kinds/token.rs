//! The `token` kind: each actor gets its own 256-bit answer token, returned once at
//! create and stored only as a keyed hash. An anonymous answer proves itself with the
//! token; a bearer caller holding `challenge:answer` may answer for a named actor.

use super::{HashKey, Kind};
use crate::challenge::state::Verdict;
use crate::model::{ActorId, ActorRecord, AnswerToken, Challenge};

/// The `token` kind: nothing beyond the common fields; answered with a token.
pub struct Token;

impl Kind for Token {
    fn judge(
        &self,
        key: &HashKey,
        challenge: &Challenge,
        attempt: &Attempt,
    ) -> Result<Verdict, AttemptError> {
        judge(key, challenge, attempt)
    }
}

/// The judging rule of every kind answered with an actor's answer token (or, for a
/// relaying service, by naming the actor): a code proves nothing here.
pub fn judge(
    key: &HashKey,
    challenge: &Challenge,
    attempt: &Attempt,
) -> Result<Verdict, AttemptError> {
    if attempt.code.is_some() {
        return Err(AttemptError::CodeNotAccepted);
    }
    if attempt.credential.is_some() {
        return Err(AttemptError::CredentialNotAccepted);
    }
    verify(key, &challenge.actors, attempt)
}

/// A presented answer, as the API parsed it.
#[derive(Clone)]
pub struct Attempt {
    pub token: Option<AnswerToken>,
    /// A one-time code (OTP kinds).
    pub code: Option<String>,
    pub actor_id: Option<ActorId>,
    pub allowed: bool,
    /// A bearer caller with `challenge:answer` (true) or an anonymous holder of a token.
    pub on_behalf: bool,
    /// A device's signed decision (`push`); the device was authenticated by its own
    /// token, and the engine checked the challenge is its own.
    pub device: Option<DeviceProof>,
    /// A WebAuthn assertion (`webauthn`): the JSON `navigator.credentials.get`
    /// returned, as the client sent it.
    pub credential: Option<serde_json::Value>,
    /// The method answered, for a challenge that offers several (`model::method`).
    pub method: Option<crate::model::MethodId>,
}

/// What a device presents to answer a push challenge.
#[derive(Clone)]
pub struct DeviceProof {
    pub factor_id: crate::model::FactorId,
    pub signature: Signed,
}

/// A device's signature and what it signs: the face that took it decides the signing
/// string, the push kind checks it against the factor's key, once, the same way.
#[derive(Clone)]
pub enum Signed {
    /// The native face: base64url of a DER ECDSA-P256-SHA256 signature of
    /// `signing_payload.decision` (`kinds::push::signing_payload`).
    Native(String),
    /// A vendor face: a DER signature of one of `messages`, the face's own signing
    /// strings for this challenge as its device was shown it (several when the device's
    /// encoding of the same content may vary).
    Exact { messages: Vec<String>, der: Vec<u8> },
}

/// Input a verdict cannot be reached from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptError {
    /// The named actor is not one of this challenge's.
    UnknownActor,
    /// Several actors and neither a token nor an actor id says which answers.
    ActorRequired,
    /// An OTP challenge answered without a code.
    CodeRequired,
    /// A code presented to a challenge that is not answered with codes.
    CodeNotAccepted,
    /// A push challenge answered other than by its device's signed decision.
    DeviceRequired,
    /// A device's signature that is not its key's signature of the decision.
    BadSignature,
    /// A `webauthn` challenge answered without an assertion.
    CredentialRequired,
    /// An assertion presented to a challenge that is not answered with one.
    CredentialNotAccepted,
}

/// Issues one actor record and one token per actor user id.
pub fn issue(key: &HashKey, actor_user_ids: &[String]) -> (Vec<ActorRecord>, Vec<AnswerToken>) {
    issue_with(key, actor_user_ids, AnswerToken::random)
}

/// [`issue`], with tokens made by `make` (a face's vendor may fix their form).
pub fn issue_with(
    key: &HashKey,
    actor_user_ids: &[String],
    make: fn() -> AnswerToken,
) -> (Vec<ActorRecord>, Vec<AnswerToken>) {
    actor_user_ids
        .iter()
        .map(|user_id| {
            let token = make();
            let record = ActorRecord {
                id: ActorId::random(),
                user_id: user_id.as_str().into(),
                token_hash: key.hash(token.expose()),
            };
            (record, token)
        })
        .unzip()
}

pub fn verify(
    key: &HashKey,
    actors: &[ActorRecord],
    attempt: &Attempt,
) -> Result<Verdict, AttemptError> {
    let named = match attempt.actor_id {
        Some(id) => Some(
            actors
                .iter()
                .position(|a| a.id == id)
                .ok_or(AttemptError::UnknownActor)?,
        ),
        None => None,
    };
    let accept = |index: usize| Verdict::Accepted {
        actor: index as u16,
        allowed: attempt.allowed,
    };
    match &attempt.token {
        Some(token) => {
            let presented = key.hash(token.expose());
            // Compare against every actor so the time taken does not say which matched.
            let mut matched = None;
            for (index, actor) in actors.iter().enumerate() {
                if HashKey::matches(&presented, &actor.token_hash) {
                    matched = Some(index);
                }
            }
            match (matched, named) {
                (Some(m), Some(n)) if m != n => Ok(miss(attempt)),
                (Some(m), _) => Ok(accept(m)),
                (None, _) => Ok(miss(attempt)),
            }
        }
        None if attempt.on_behalf => match named {
            Some(n) => Ok(accept(n)),
            None if actors.len() == 1 => Ok(accept(0)),
            None => Err(AttemptError::ActorRequired),
        },
        None => Ok(Verdict::Unrecognized),
    }
}

fn miss(attempt: &Attempt) -> Verdict {
    if attempt.on_behalf {
        Verdict::Wrong
    } else {
        Verdict::Unrecognized
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (HashKey, Vec<ActorRecord>, Vec<AnswerToken>) {
        let key = HashKey::new([9; 32]);
        let (actors, tokens) = issue(&key, &["alice".into(), "bob".into()]);
        (key, actors, tokens)
    }

    fn attempt(token: Option<&AnswerToken>, actor: Option<ActorId>, on_behalf: bool) -> Attempt {
        Attempt {
            token: token.map(|t| AnswerToken::parse(t.expose()).unwrap()),
            code: None,
            actor_id: actor,
            allowed: true,
            on_behalf,
            device: None,
            credential: None,
            method: None,
        }
    }

    #[test]
    fn each_actor_is_recognized_by_its_own_token() {
        let (key, actors, tokens) = setup();
        assert_ne!(actors[0].token_hash, actors[1].token_hash);
        for (i, t) in tokens.iter().enumerate() {
            let v = verify(&key, &actors, &attempt(Some(t), None, false)).unwrap();
            assert_eq!(
                v,
                Verdict::Accepted {
                    actor: i as u16,
                    allowed: true
                }
            );
        }
    }

    #[test]
    fn a_stored_hash_is_not_the_token() {
        let (_, actors, tokens) = setup();
        assert!(!actors[0]
            .token_hash
            .0
            .windows(8)
            .any(|w| tokens[0].expose().as_bytes().starts_with(w)));
    }

    #[test]
    fn an_unknown_token_costs_an_anonymous_caller_nothing_but_a_relayer_an_attempt() {
        let (key, actors, _) = setup();
        let other = AnswerToken::random();
        assert_eq!(
            verify(&key, &actors, &attempt(Some(&other), None, false)),
            Ok(Verdict::Unrecognized)
        );
        assert_eq!(
            verify(&key, &actors, &attempt(Some(&other), None, true)),
            Ok(Verdict::Wrong)
        );
    }

    #[test]
    fn a_token_presented_for_another_actor_is_not_accepted() {
        let (key, actors, tokens) = setup();
        let v = verify(
            &key,
            &actors,
            &attempt(Some(&tokens[0]), Some(actors[1].id), false),
        );
        assert_eq!(v, Ok(Verdict::Unrecognized));
    }

    #[test]
    fn a_relayer_names_the_actor_when_there_are_several() {
        let (key, actors, _) = setup();
        assert_eq!(
            verify(&key, &actors, &attempt(None, None, true)),
            Err(AttemptError::ActorRequired)
        );
        assert_eq!(
            verify(&key, &actors, &attempt(None, Some(actors[1].id), true)),
            Ok(Verdict::Accepted {
                actor: 1,
                allowed: true
            })
        );
        assert_eq!(
            verify(&key, &actors, &attempt(None, Some(ActorId::random()), true)),
            Err(AttemptError::UnknownActor)
        );
    }
}
