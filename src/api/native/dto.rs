//! Request and response shapes of the native API and their translation into the
//! engine's domain values. The bounds on every string and list (README.md, "Limits")
//! are the engine's (`engine::input`), so every face holds the same ones.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};

use crate::engine;
use crate::model::{AnswerToken, Challenge, ChallengeType, Details, PolicyRef, State};

pub const MAX_PAGE_SIZE: usize = 1000;
pub const DEFAULT_PAGE_SIZE: usize = 50;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActorSpec {
    /// Who this actor is (1–256 characters).
    pub user_id: String,
    /// Delivery kinds with several actors: where this actor's code or link goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<Recipient>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Recipient {
    pub email: Option<String>,
    pub phone: Option<String>,
}

/// `POST /api/v1/challenges`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateChallenge {
    /// Required unless `policy` is given (then taken from the policy; if both are given
    /// they must agree).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ChallengeType>,
    /// A policy alias: defaults and bounds come from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Whom the challenge is about (1–256 characters).
    pub user_id: String,
    /// Who may answer; default: one actor for `user_id`. At most `limits.max_actors`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actors: Option<Vec<ActorSpec>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<Recipient>,
    /// 1..=limits.max_ttl_seconds; default limits.default_ttl_seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
    /// 1..=limits.max_attempts; default limits.default_max_attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Details>,
    /// Any JSON object, up to 4 KiB encoded; returned to the caller, never shown to users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub hidden_details: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    /// `one_time_use_action` only: the HTTP requests an approval or a decline makes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions: Option<ActionsSpec>,
    /// Delivery kinds: `false` creates the challenge without sending it (a resend sends
    /// it). Default `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send: Option<bool>,
    /// `false` creates the challenge `pending`: nothing is delivered and no answer is
    /// taken until `POST /api/v1/challenges/{id}/issue`. Default `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issue: Option<bool>,
    /// Delivery kinds: the message's locale (`nl`, `nl-BE`, …), falling back to the
    /// policy's default locale, then English.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// `totp`: the user's verified factor (`fac_…`) whose code answers the challenge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor_id: Option<String>,
    /// Same key and same request → the same challenge; also accepted as the
    /// `Idempotency-Key` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Several ways to answer one challenge, one per type (`sms_otp`, `email_otp`,
    /// `email_link`, `totp`, `push`, `token`), each with its own fields; `type`,
    /// `policy`, `actors`, `recipient`, `factor_id`, `send`, `locale` and `actions` are
    /// then not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<MethodSpec>>,
}

/// One method of a create with `methods`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MethodSpec {
    #[serde(rename = "type")]
    pub kind: ChallengeType,
    /// `sms_otp` (`phone`), `email_otp` and `email_link` (`email`): where its code or
    /// link goes once started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<Recipient>,
    /// `totp`, `push`: the user's verified factor that answers it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor_id: Option<String>,
    /// Delivered types: the message's locale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
}

impl CreateChallenge {
    /// The engine's request. `idempotency_key` is the key the caller gave (header or
    /// body); the request's fingerprint is its JSON without the key.
    pub fn into_request(mut self, idempotency_key: Option<String>) -> engine::CreateRequest {
        self.idempotency_key = None;
        let idempotency = idempotency_key.map(|key| {
            let body = serde_json::to_vec(&self).expect("a request encodes");
            engine::IdempotencyRequest::new(key, &body)
        });
        let recipient = |r: Recipient| engine::Recipient {
            email: r.email,
            phone: r.phone,
        };
        let action = |a: ActionSpec| engine::ActionRequest {
            method: a.method,
            uri: a.uri,
            content_type: a.content_type,
            body: a.body,
            scopes: a.scopes,
        };
        engine::CreateRequest {
            kind: self.kind,
            policy: self.policy,
            user_id: self.user_id,
            actors: self.actors.map(|actors| {
                actors
                    .into_iter()
                    .map(|a| engine::ActorRequest {
                        user_id: a.user_id,
                        recipient: a.recipient.map(recipient),
                    })
                    .collect()
            }),
            recipient: self.recipient.map(recipient),
            ttl_seconds: self.ttl_seconds,
            max_attempts: self.max_attempts,
            details: self.details,
            hidden_details: self.hidden_details,
            callback_url: self.callback_url,
            actions: self.actions.map(|a| engine::ActionsRequest {
                approved: a.approved.into_iter().map(action).collect(),
                declined: a.declined.into_iter().map(action).collect(),
                actor_orgs: Vec::new(),
            }),
            send: self.send,
            issue: self.issue,
            factor_id: self.factor_id,
            locale: self.locale,
            idempotency,
            alphanumeric_tokens: false,
            methods: self.methods.map(|methods| {
                methods
                    .into_iter()
                    .map(|m| engine::methods::MethodRequest {
                        kind: Some(m.kind),
                        recipient: m.recipient.map(recipient),
                        factor_id: m.factor_id,
                        locale: m.locale,
                    })
                    .collect()
            }),
            only_kinds: None,
        }
    }
}

/// The two lists of a one-time-use action challenge.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionsSpec {
    /// Run, in order, when an actor approves (`allowed: true`).
    #[serde(default)]
    pub approved: Vec<ActionSpec>,
    /// Run, in order, when an actor declines (`allowed: false`).
    #[serde(default)]
    pub declined: Vec<ActionSpec>,
}

/// One HTTP request made on the user's behalf.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionSpec {
    /// GET, POST, PUT, PATCH or DELETE.
    pub method: String,
    /// http(s) URL allowed by the `[actions]` outbound policy.
    pub uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Up to `actions.max_body_bytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Scopes of a short-lived token sent as `Authorization: Bearer`; none: no token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
}

/// An action as a challenge shows it (its body is not repeated).
#[derive(Debug, Serialize, ToSchema)]
pub struct ActionView {
    pub method: String,
    pub uri: String,
    pub content_type: Option<String>,
    pub scopes: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ActionResultView {
    /// Index in the chosen list.
    pub index: usize,
    pub status: crate::model::ActionStatus,
    pub attempts: u32,
    pub status_code: Option<u16>,
    pub last_error: Option<String>,
    pub finished_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ActionsView {
    pub approved: Vec<ActionView>,
    pub declined: Vec<ActionView>,
    /// The list the answer chose; null until answered.
    pub chosen: Option<crate::model::ActionSet>,
    /// One per action of the chosen list.
    pub results: Vec<ActionResultView>,
}

impl ActionsView {
    pub fn new(plan: &crate::model::ActionPlan) -> Self {
        let list = |actions: &[crate::model::HttpAction]| {
            actions
                .iter()
                .map(|a| ActionView {
                    method: a.method.to_string(),
                    uri: a.uri.to_string(),
                    content_type: a.content_type.as_deref().map(str::to_string),
                    scopes: a.scopes.iter().map(|s| s.to_string()).collect(),
                })
                .collect()
        };
        ActionsView {
            approved: list(&plan.approved),
            declined: list(&plan.declined),
            chosen: plan.chosen,
            results: plan
                .results
                .iter()
                .enumerate()
                .map(|(index, r)| ActionResultView {
                    index,
                    status: r.status,
                    attempts: r.attempts,
                    status_code: r.status_code,
                    last_error: r.last_error.as_deref().map(str::to_string),
                    finished_at: r.finished_at.map(rfc3339),
                })
                .collect(),
        }
    }
}

/// `GET /api/v1/webhooks/secret`: what a tenant's webhooks are signed with
/// (`<header>: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookSecret {
    pub secret: String,
    pub header: String,
}

/// Delivery to one actor, as a challenge shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    pub actor_id: String,
    pub channel: crate::model::DeliveryChannel,
    /// The recipient, masked (`a•••@example.com`, `+1•••••4567`).
    pub to: String,
    pub status: crate::model::DeliveryStatus,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub sent_at: Option<String>,
}

/// Masks most of a recipient, so a read does not spell out whom a code went to.
fn mask(recipient: &str) -> String {
    match recipient.split_once('@') {
        Some((local, domain)) => format!("{}•••@{domain}", local.chars().next().unwrap_or('•')),
        None => {
            let digits: Vec<char> = recipient.chars().collect();
            let keep = digits.len().saturating_sub(4);
            digits
                .iter()
                .enumerate()
                .map(|(i, c)| if i < 2 || i >= keep { *c } else { '•' })
                .collect()
        }
    }
}

/// `POST /api/v1/challenges/{id}/answer`
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerRequest {
    /// The per-actor answer token from the create response.
    pub answer_token: Option<String>,
    /// `false` declines. Default `true`.
    pub allowed: Option<bool>,
    /// A one-time code (OTP and TOTP kinds).
    pub code: Option<String>,
    /// Which actor answers (bearer callers with several actors).
    pub actor_id: Option<String>,
    /// Which method answers, for a challenge that offers several (`methods`).
    pub method_id: Option<String>,
    /// `webauthn`: the assertion, the `PublicKeyCredential` that
    /// `navigator.credentials.get` returned as JSON (`toJSON()`: binary fields
    /// base64url), as an object or serialised into a string.
    #[schema(value_type = Option<Object>)]
    pub credential: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct GetQuery {
    /// Long-poll: wait up to this many seconds (≤ limits.long_poll_max_seconds) for the
    /// state to differ from `state`.
    pub wait: Option<u64>,
    /// The state the caller knows; default: the state when the request arrives.
    #[param(value_type = Option<crate::model::State>)]
    pub state: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub user_id: Option<String>,
    #[param(value_type = Option<crate::model::State>)]
    pub state: Option<String>,
    #[serde(rename = "type")]
    #[param(rename = "type", value_type = Option<crate::model::ChallengeType>)]
    pub kind: Option<String>,
    /// 1..=1000, default 50.
    #[param(minimum = 1, maximum = 1000)]
    pub page_size: Option<usize>,
    /// `next_page_token` of the previous page.
    #[param(pattern = "^ch_[A-Za-z0-9_-]{21}[AQgw]$")]
    pub page_token: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ActorDto {
    pub id: String,
    pub user_id: String,
    /// Only in the create response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer_token: Option<String>,
    /// Only in the create response: a page where this actor approves or declines
    /// (`{server.public_base_url}/c/{id}?t={answer_token}`; for `webauthn`, on the
    /// relying party's origin, where the browser runs the ceremony).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer_url: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AnsweredBy {
    pub actor_id: String,
    pub user_id: String,
}

/// A challenge as the API shows it. Never carries a secret, except `answer_token` in the
/// create response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChallengeDto {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: ChallengeType,
    pub user_id: String,
    pub state: State,
    pub created_at: String,
    pub updated_at: String,
    pub expires_at: String,
    pub max_attempts: u32,
    pub attempts_left: u32,
    pub actors: Vec<ActorDto>,
    #[schema(value_type = Option<Details>)]
    pub details: Option<Box<RawValue>>,
    #[schema(value_type = Option<Object>)]
    pub hidden_details: Option<Box<RawValue>>,
    pub callback_url: Option<String>,
    pub answered_by: Option<AnsweredBy>,
    pub answered_at: Option<String>,
    /// `one_time_use_action` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actions: Option<ActionsView>,
    /// Delivery kinds only: one entry per actor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<Vec<DeliveryView>>,
    /// Delivery kinds only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resends_left: Option<u32>,
    /// The policy and version the challenge was created from.
    pub policy: Option<PolicyRef>,
    /// `webauthn` only: the ceremony to run in the user's browser.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webauthn: Option<WebauthnChallengeView>,
    /// A challenge created with `methods` only: its methods, in the order given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<MethodDto>>,
}

/// Where a method stands: `open` (answerable once started), `verified` or `declined`
/// (it won the challenge), `failed` (it used up its attempts), `closed` (the challenge
/// ended otherwise: another method won, or it was cancelled, expired or failed).
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MethodStateDto {
    Open,
    Closed,
    Verified,
    Declined,
    Failed,
}

/// One method of a challenge that offers several. Never carries a secret, except
/// `answer_token` in the create response.
#[derive(Debug, Serialize, ToSchema)]
pub struct MethodDto {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: ChallengeType,
    pub state: MethodStateDto,
    pub max_attempts: u32,
    pub attempts_left: u32,
    /// Its code was sent (`POST …/methods/{method_id}/start`); a method that is not
    /// delivered is started at create.
    pub started: bool,
    pub started_at: Option<String>,
    /// Delivered types: where its code goes, masked, and how the last send went.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliveryView>,
    /// Delivered types: how many more times it can be sent again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resends_left: Option<u32>,
    /// `totp`, `push`: the factor that answers it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub factor_id: Option<String>,
    /// `token`, in the create response only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer_token: Option<String>,
}

impl MethodDto {
    pub fn new(c: &Challenge, m: &crate::model::Method) -> Self {
        use crate::model::MethodState as S;
        let state = match m.state {
            S::Open if c.life.state != State::Issued => MethodStateDto::Closed,
            S::Open => MethodStateDto::Open,
            S::Verified => MethodStateDto::Verified,
            S::Declined => MethodStateDto::Declined,
            S::Failed => MethodStateDto::Failed,
        };
        let plan = m.delivery();
        MethodDto {
            id: m.id.to_string(),
            kind: m.kind,
            state,
            max_attempts: m.max_attempts,
            attempts_left: m.attempts_left(),
            started: m.started(),
            started_at: m.started_at.map(rfc3339),
            delivery: plan.and_then(|plan| {
                let (d, a) = plan.actors.first().zip(c.actors.first())?;
                Some(DeliveryView {
                    actor_id: a.id.to_string(),
                    channel: plan.channel,
                    to: mask(&d.recipient),
                    status: d.status,
                    attempts: d.attempts,
                    last_error: d.last_error.as_deref().map(str::to_string),
                    sent_at: d.sent_at.map(rfc3339),
                })
            }),
            resends_left: plan.map(|p| p.max_resends.saturating_sub(p.resends)),
            factor_id: match &m.data {
                crate::model::KindData::Factor(id) => Some(id.to_string()),
                _ => None,
            },
            answer_token: None,
        }
    }
}

/// A `webauthn` challenge's authentication ceremony.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebauthnChallengeView {
    pub relying_party_id: String,
    /// The factors whose credentials may answer it.
    pub factor_ids: Vec<String>,
    /// `{"publicKey": …}`: the PublicKeyCredentialRequestOptions (binary fields
    /// base64url) for `navigator.credentials.get`.
    #[schema(value_type = Object)]
    pub request_options: serde_json::Value,
}

/// What an anonymous answerer (the holder of an answer token) is told about the
/// challenge it answered: its id, its state, when it was answered and the id of the actor
/// who did — its own. Never the details meant for the calling service
/// (`hidden_details`, `callback_url`, actions and their scopes) nor other actors.
#[derive(Debug, Serialize, ToSchema)]
pub struct AnonymousAnswerDto {
    pub id: String,
    pub state: State,
    pub answered_at: Option<String>,
    pub answered_by: Option<AnsweringActor>,
}

/// The answer route's reply (for the OpenAPI document): the challenge for a bearer
/// caller, [`AnonymousAnswerDto`] for an anonymous one.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum AnswerResponse {
    Challenge(Box<ChallengeDto>),
    Anonymous(AnonymousAnswerDto),
}

/// The answering actor, as its own answerer sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AnsweringActor {
    pub actor_id: String,
}

impl AnonymousAnswerDto {
    pub fn new(c: &Challenge) -> Self {
        AnonymousAnswerDto {
            id: c.id.to_string(),
            state: c.life.state,
            answered_at: c.life.answered_at.map(rfc3339),
            answered_by: c
                .life
                .answered_by
                .and_then(|i| c.actors.get(usize::from(i)))
                .map(|a| AnsweringActor {
                    actor_id: a.id.to_string(),
                }),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChallengeList {
    pub challenges: Vec<ChallengeDto>,
    pub next_page_token: Option<String>,
}

pub use crate::clock::rfc3339;

fn raw(text: Option<&str>) -> Option<Box<RawValue>> {
    text.and_then(|t| RawValue::from_string(t.to_string()).ok())
}

impl ChallengeDto {
    /// The public view; `tokens`, in actor order, only for the create response.
    pub fn new(c: &Challenge, tokens: Option<&[AnswerToken]>) -> Self {
        ChallengeDto {
            id: c.id.to_string(),
            kind: c.kind,
            user_id: c.user_id.to_string(),
            state: c.life.state,
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.life.updated_at),
            expires_at: rfc3339(c.life.expires_at),
            max_attempts: c.life.max_attempts,
            attempts_left: c.life.attempts_left(),
            actors: c
                .actors
                .iter()
                .enumerate()
                .map(|(i, a)| ActorDto {
                    id: a.id.to_string(),
                    user_id: a.user_id.to_string(),
                    answer_token: tokens
                        .and_then(|t| t.get(i))
                        .map(|t| t.expose().to_string()),
                    answer_url: None,
                })
                .collect(),
            details: raw(c.details()),
            hidden_details: raw(c.hidden_details()),
            callback_url: c.callback_url().map(str::to_string),
            answered_by: c
                .life
                .answered_by
                .and_then(|i| c.actors.get(usize::from(i)))
                .map(|a| AnsweredBy {
                    actor_id: a.id.to_string(),
                    user_id: a.user_id.to_string(),
                }),
            answered_at: c.life.answered_at.map(rfc3339),
            actions: c.actions().map(ActionsView::new),
            delivery: c.delivery().map(|plan| {
                plan.actors
                    .iter()
                    .zip(&c.actors)
                    .map(|(d, a)| DeliveryView {
                        actor_id: a.id.to_string(),
                        channel: plan.channel,
                        to: mask(&d.recipient),
                        status: d.status,
                        attempts: d.attempts,
                        last_error: d.last_error.as_deref().map(str::to_string),
                        sent_at: d.sent_at.map(rfc3339),
                    })
                    .collect()
            }),
            resends_left: c
                .delivery()
                .map(|p| p.max_resends.saturating_sub(p.resends)),
            policy: c.policy().cloned(),
            webauthn: c.webauthn().map(|plan| WebauthnChallengeView {
                relying_party_id: plan.relying_party.to_string(),
                factor_ids: plan
                    .credentials
                    .iter()
                    .map(|(f, _)| f.to_string())
                    .collect(),
                request_options: serde_json::from_str(&plan.options).unwrap_or_default(),
            }),
            methods: (!c.methods().is_empty())
                .then(|| c.methods().iter().map(|m| MethodDto::new(c, m)).collect()),
        }
    }
}
