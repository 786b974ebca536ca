//! `POST /v1/challenges/one_time_use_actions`: a native `one_time_use_action` challenge
//! with one answer token per actor. Each actor's `approve_uri` / `decline_uri` is this
//! face's answers route (on `[server] public_base_url`) with the actor's token in it: a
//! plain GET approves or declines and fires that list of actions exactly once (the
//! engine's actions run them); every other URI then fails with 400, as any answer to an
//! ended challenge does.

use actix_web::{web, HttpRequest, HttpResponse};

use super::dto::*;
use super::errors::AgilicusError;
use super::{authenticate, body, require, save_record};
use crate::api::State;
use crate::auth::Scope;
use crate::engine::input::{check_text, MAX_USER_ID};
use crate::engine::{ActionRequest, ActionsRequest, ActorRequest, CreateRequest};
use crate::model::ChallengeType;

const ACTION_TYPE: &str = "http_action";

/// An `HTTPChallengeAction` as the engine's action request; the method is upper-cased
/// (Agilicus allows any `[a-zA-Z0-9]+`; the engine takes the usual five).
fn action(field: &str, a: &HttpActionIo) -> Result<ActionRequest, AgilicusError> {
    if a.challenge_action_type != ACTION_TYPE && a.challenge_action_type != "HTTPChallengeAction" {
        return Err(AgilicusError::invalid(
            "invalid_field",
            format!("{field}.challenge_action_type must be {ACTION_TYPE}"),
        ));
    }
    Ok(ActionRequest {
        method: a.method.to_ascii_uppercase(),
        uri: a.uri.clone(),
        content_type: a.content_type.clone(),
        body: a.body.clone(),
        scopes: a.scopes.clone().filter(|s| !s.is_empty()),
    })
}

/// The URI a GET of which answers for `actor` with `token`, approving or declining.
fn answer_uri(base: &str, id: &str, token: &str, actor: &str, allowed: bool) -> String {
    let query = serde_urlencoded::to_string([
        ("challenge_answer", token),
        ("challenge_uid", actor),
        ("challenge_type", "one_time_use_action"),
        ("allowed", if allowed { "true" } else { "false" }),
    ])
    .expect("a query encodes");
    format!("{base}/v1/challenges/{id}/answers?{query}")
}

/// `create_one_time_use_action`: 201 `OneTimeUseActionChallengeResponse`.
pub async fn create(
    req: HttpRequest,
    payload: web::Payload,
    state: State,
) -> Result<HttpResponse, AgilicusError> {
    let principal = authenticate(&req, &state)?;
    require(&principal, Scope::Post)?;
    let input: OneTimeUseIn = body(&req, payload, &state).await?;
    let spec = input.spec;
    if !(1..=MAX_TIMEOUT_SECONDS).contains(&spec.timeout_seconds) {
        return Err(AgilicusError::invalid(
            "out_of_range",
            format!("timeout_seconds must be between 1 and {MAX_TIMEOUT_SECONDS}"),
        ));
    }
    if spec.actors.is_empty() {
        return Err(AgilicusError::invalid(
            "invalid_field",
            "actors must name at least one actor",
        ));
    }
    for (i, a) in spec.actors.iter().enumerate() {
        check_text(&format!("actors[{i}].user_id"), &a.user_id, MAX_USER_ID)?;
        check_text(&format!("actors[{i}].org_id"), &a.org_id, MAX_USER_ID)?;
        if spec.actors[..i].iter().any(|b| b.user_id == a.user_id) {
            return Err(AgilicusError::invalid(
                "invalid_field",
                format!("actors[{i}].user_id names an actor twice"),
            ));
        }
    }
    if let Some(org) = &spec.org_id {
        check_text("org_id", org, MAX_USER_ID)?;
    }
    let approved = spec
        .approved_actions
        .iter()
        .enumerate()
        .map(|(i, a)| action(&format!("approved_actions[{i}]"), a))
        .collect::<Result<Vec<_>, _>>()?;
    let declined = spec
        .declined_actions
        .iter()
        .enumerate()
        .map(|(i, a)| action(&format!("declined_actions[{i}]"), a))
        .collect::<Result<Vec<_>, _>>()?;
    let user_id = spec
        .user_id
        .clone()
        .unwrap_or_else(|| spec.actors[0].user_id.clone());
    let request = CreateRequest {
        kind: Some(ChallengeType::OneTimeUseAction),
        user_id,
        actors: Some(
            spec.actors
                .iter()
                .map(|a| ActorRequest {
                    user_id: a.user_id.clone(),
                    recipient: None,
                })
                .collect(),
        ),
        ttl_seconds: Some(spec.timeout_seconds),
        actions: Some(ActionsRequest {
            approved,
            declined,
            actor_orgs: spec.actors.iter().map(|a| a.org_id.clone()).collect(),
        }),
        ..CreateRequest::default()
    };
    let created = state.engine.create(&principal, request).await?;
    let view = &created.view;
    let record = ChallengeRecord {
        challenge_type: Some("one_time_use_action".into()),
        challenge_types: vec!["one_time_use_action".into()],
        send_now: true,
        timeout_seconds: spec.timeout_seconds,
        actors: spec.actors.clone(),
        ..ChallengeRecord::default()
    };
    save_record(&state, view, &record).await?;
    let challenge = ChallengeOut::new(view, Some(&record)).ok_or_else(AgilicusError::not_found)?;
    let base = state.settings.server.public_base_url.trim_end_matches('/');
    let id = view.id.to_string();
    let answer_details = spec
        .actors
        .iter()
        .zip(&created.answer_tokens)
        .map(|(actor, token)| AnswerDetail {
            actor: actor.clone(),
            approve_uri: answer_uri(base, &id, token.expose(), &actor.user_id, true),
            decline_uri: answer_uri(base, &id, token.expose(), &actor.user_id, false),
        })
        .collect();
    Ok(HttpResponse::Created().json(OneTimeUseOut {
        challenge,
        one_time_use_challenge: OneTimeUseEcho { spec },
        answer_details,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_uris_carry_the_actor_and_the_choice() {
        let uri = answer_uri("https://cs.example", "ch_x", "t-_0", "al ice", false);
        assert_eq!(
            uri,
            "https://cs.example/v1/challenges/ch_x/answers?challenge_answer=t-_0&challenge_uid=al+ice&challenge_type=one_time_use_action&allowed=false"
        );
    }

    #[test]
    fn only_http_actions_are_taken() {
        let mut a = HttpActionIo {
            challenge_action_type: "http_action".into(),
            method: "post".into(),
            uri: "https://x.example/".into(),
            body: None,
            content_type: None,
            scopes: Some(Vec::new()),
        };
        let parsed = action("approved_actions[0]", &a).unwrap();
        assert_eq!(parsed.method, "POST");
        assert!(parsed.scopes.is_none(), "empty scopes: no token");
        a.challenge_action_type = "lambda".into();
        let e = action("approved_actions[0]", &a).unwrap_err();
        assert_eq!((e.status, e.code), (400, "invalid_field"));
    }
}
