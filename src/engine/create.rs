//! Planning a create: a face hands over a [`CreateRequest`] (domain values, no wire
//! format); the engine checks the common fields against the tenant's configuration
//! narrowed by the policy, the kind plans its own part and issues its secrets, and the
//! tenant's supervisor makes the challenge durable and starts its actor.

use sha2::{Digest, Sha256};

use super::input::{
    check_details, check_outbound, check_text, check_url, MAX_HIDDEN_DETAILS, MAX_IDEMPOTENCY_KEY,
    MAX_USER_ID,
};
use super::policies::Bounds;
use super::{Engine, Error, View};
use crate::auth::{Principal, Scope};
use crate::challenge::kinds::delivered::Prepared;
use crate::challenge::kinds::{self, token, Field, Kind, PlanContext, Secrets};
use crate::delivery::cap::Reservation;
use crate::factors::Factor;
use crate::model::{
    AnswerToken, Challenge, ChallengeId, ChallengeType, Details, Extras, FactorId, Idempotency,
    Lifecycle, Policy, PolicyRef, Properties, TenantId,
};
use crate::store::WebhookEvent;
use crate::tenant::supervisor::Spawned;

/// A request to create a challenge, as every face hands it to the engine.
#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    /// Required unless `policy` names one (then taken from it; both must agree).
    pub kind: Option<ChallengeType>,
    /// A policy alias, as given.
    pub policy: Option<String>,
    pub user_id: String,
    /// Who may answer; `None`: one actor for `user_id`.
    pub actors: Option<Vec<ActorRequest>>,
    pub recipient: Option<Recipient>,
    pub ttl_seconds: Option<u64>,
    pub max_attempts: Option<u32>,
    pub details: Option<Details>,
    pub hidden_details: Option<serde_json::Map<String, serde_json::Value>>,
    pub callback_url: Option<String>,
    pub actions: Option<ActionsRequest>,
    pub send: Option<bool>,
    /// `Some(false)`: created `pending`, nothing delivered until [`Engine::issue`].
    pub issue: Option<bool>,
    pub locale: Option<String>,
    pub idempotency: Option<IdempotencyRequest>,
    /// Kinds answered with an enrolled factor (`totp`): which of the user's factors.
    pub factor_id: Option<String>,
    /// Answer tokens of letters and digits only ([`AnswerToken::random_alphanumeric`]),
    /// for a face whose vendor fixes their form.
    pub alphanumeric_tokens: bool,
    /// The methods of a challenge that offers several (`engine::methods`); the fields
    /// of one kind (`type`, `recipient`, `factor_id`, …) are then given per method.
    pub methods: Option<Vec<super::methods::MethodRequest>>,
    /// The kinds the calling face creates (`None`: every kind). Another kind, named by
    /// the request or by its policy, is refused with `type_not_supported`.
    pub only_kinds: Option<&'static [ChallengeType]>,
}

#[derive(Debug, Clone, Default)]
pub struct ActorRequest {
    pub user_id: String,
    pub recipient: Option<Recipient>,
}

/// Where a delivered kind sends an actor's code or link.
#[derive(Debug, Clone, Default)]
pub struct Recipient {
    pub email: Option<String>,
    pub phone: Option<String>,
}

/// The two lists of a one-time-use action challenge.
#[derive(Debug, Clone, Default)]
pub struct ActionsRequest {
    pub approved: Vec<ActionRequest>,
    pub declined: Vec<ActionRequest>,
    /// The organisation each actor acts for, in actor order (empty: none named); an
    /// action's token names the answering actor's as its `org` claim.
    pub actor_orgs: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ActionRequest {
    pub method: String,
    pub uri: String,
    pub content_type: Option<String>,
    pub body: Option<String>,
    pub scopes: Option<Vec<String>>,
}

/// An idempotency key and the fingerprint of the request it came with: the face
/// hashes its own wire form of the request (without the key), so "the same request"
/// means what that face's callers sent.
#[derive(Debug, Clone)]
pub struct IdempotencyRequest {
    pub key: String,
    pub fingerprint: [u8; 32],
}

impl IdempotencyRequest {
    /// A fingerprint of any bytes that stand for the request.
    pub fn new(key: String, request: &[u8]) -> Self {
        IdempotencyRequest {
            key,
            fingerprint: Sha256::digest(request).into(),
        }
    }
}

/// A created (or replayed) challenge.
pub struct Created {
    pub view: View,
    /// The answer tokens to show once, in actor order; empty for a replay and for kinds
    /// that deliver their own secrets.
    pub answer_tokens: Vec<AnswerToken>,
    /// The answer tokens of the challenge's `token` method, if it offers several.
    pub method_tokens: super::methods::MethodTokens,
    /// The idempotency key named an earlier challenge created by the same request.
    pub replayed: bool,
}

impl Engine {
    /// Creates a challenge for the principal's tenant (`challenge:post`). Acknowledged
    /// once the challenge is durable.
    pub async fn create(
        &self,
        principal: &Principal,
        request: CreateRequest,
    ) -> Result<Created, Error> {
        super::authorize(principal, Scope::Post)?;
        if request.methods.is_some() {
            return self.create_with_methods(principal, request).await;
        }
        let tenant = &principal.tenant;
        let policy = match request.policy.as_deref() {
            None => None,
            Some(raw) => {
                let alias = super::policies::parse_alias("policy", raw)?;
                Some(self.find_policy(tenant, alias).await?)
            }
        };
        let config = self.tenant(tenant).await?.config();
        // The factor a request names is read here, off the async workers; whether it
        // may back this challenge is the kind's to say.
        let factor = match request.factor_id.as_deref().map(FactorId::parse) {
            Some(Some(id)) if check_text("user_id", &request.user_id, MAX_USER_ID).is_ok() => self
                .find_factor(principal, request.user_id.clone(), id)
                .await
                .map(Some)
                .or_else(|e| match e {
                    Error::FactorNotFound => Ok(None),
                    other => Err(other),
                })?,
            _ => None,
        };
        // A kind answered by any of the user's factors of a type reads them when the
        // request names none.
        let wanted = request
            .kind
            .or(policy.as_ref().map(|p| p.spec.kind))
            .and_then(kinds::of)
            .and_then(|rules| rules.user_factors());
        let user_factors = match wanted {
            Some(kind)
                if request.factor_id.is_none()
                    && check_text("user_id", &request.user_id, MAX_USER_ID).is_ok() =>
            {
                let tenant = tenant.clone();
                let user = request.user_id.clone();
                self.blocking(move |store| {
                    store
                        .factors()
                        .list(&tenant, &user, None, 1000)
                        .map(|(page, _)| page)
                })
                .await?
                .into_iter()
                .filter(|f| f.kind() == kind)
                .collect()
            }
            _ => Vec::new(),
        };
        let (challenge, secrets) = self.plan(
            request,
            tenant,
            policy.as_ref(),
            &config.properties,
            factor.as_ref(),
            &user_factors,
        )?;
        let (answer_tokens, prepared): (Vec<AnswerToken>, Option<Prepared>) = match secrets {
            Secrets::AnswerTokens(tokens) => (tokens, None),
            Secrets::Delivered(prepared) => (Vec::new(), Some(prepared)),
        };
        let one_active = policy.is_some_and(|p| p.spec.one_active_per_user);
        let reservation = self.reserve_recipients(&challenge)?;
        // A pending challenge is not announced: nothing goes out until it is issued.
        let announce = factor
            .as_ref()
            .filter(|_| challenge.life.state != crate::model::State::Pending)
            .and_then(|factor| self.announcement(&challenge, factor));
        let spawned = self
            .registry
            .create(challenge, one_active, prepared, announce)
            .await;
        let recipients = &self.registry.services().recipients;
        let spawned = match (spawned, reservation) {
            (Ok(Spawned::New(view)), _) => Ok(Spawned::New(view)),
            (spawned, Some(reservation)) => {
                recipients.refund(reservation);
                spawned
            }
            (spawned, None) => spawned,
        };
        match spawned? {
            Spawned::New(view) => Ok(Created {
                view,
                answer_tokens,
                method_tokens: Vec::new(),
                replayed: false,
            }),
            Spawned::Existing(id) => Ok(Created {
                view: self.registry.view(Some(tenant), &id).await?,
                answer_tokens: Vec::new(),
                method_tokens: Vec::new(),
                replayed: true,
            }),
        }
    }

    /// Takes today's sends of a challenge sent at create from its recipients' daily caps;
    /// `recipient_limit` at a cap.
    fn reserve_recipients(&self, challenge: &Challenge) -> Result<Option<Reservation>, Error> {
        let Some(plan) = challenge.delivery().filter(|p| p.last_sent_at.is_some()) else {
            return Ok(None);
        };
        let services = self.registry.services();
        let recipients = plan.actors.iter().map(|a| &*a.recipient);
        match services
            .recipients
            .take(&challenge.tenant, recipients, services.clock.now_ms())
        {
            Some(reservation) => Ok(Some(reservation)),
            None => Err(Error::Throttled {
                code: "recipient_limit",
                message: "the recipient has been sent the most messages allowed today".into(),
                retry_after_seconds: 3600,
            }),
        }
    }

    /// What the kind announces of a new challenge to the push gateway (`[push]
    /// gateway_url`), as an outbox event: stored with the create, before the same flush,
    /// and sent (signed and retried like a status webhook) once both are durable.
    pub(super) fn announcement(
        &self,
        challenge: &Challenge,
        factor: &Factor,
    ) -> Option<WebhookEvent> {
        let services = self.registry.services();
        let url = services.push_gateway.as_deref()?;
        let body = kinds::of(challenge.kind)?.announce(challenge, factor)?;
        Some(
            services
                .outbox
                .event(&challenge.tenant, challenge.id, url, body),
        )
    }

    /// The challenge record and its secrets, with defaults and bounds from the tenant's
    /// configuration narrowed by the policy, if any.
    pub(super) fn plan(
        &self,
        mut request: CreateRequest,
        tenant: &TenantId,
        policy: Option<&Policy>,
        config: &Properties,
        factor: Option<&Factor>,
        user_factors: &[Factor],
    ) -> Result<(Challenge, Secrets), Error> {
        let limits = &self.limits;
        if let Some(idempotency) = &request.idempotency {
            check_text("idempotency_key", &idempotency.key, MAX_IDEMPOTENCY_KEY)?;
        }
        let kind = match (request.kind, policy) {
            (Some(kind), Some(p)) if kind != p.spec.kind => {
                return Err(Error::invalid(
                    "policy_type_mismatch",
                    format!(
                        "type is {} but policy {} is for {} challenges",
                        kind.as_str(),
                        p.alias,
                        p.spec.kind.as_str()
                    ),
                ))
            }
            (Some(kind), _) => kind,
            (None, Some(p)) => p.spec.kind,
            (None, None) => {
                return Err(Error::invalid(
                    "invalid_field",
                    "type is required unless policy names a policy",
                ))
            }
        };
        if request.only_kinds.is_some_and(|only| !only.contains(&kind)) {
            return Err(Error::invalid(
                "type_not_supported",
                format!(
                    "{} challenges are not created through this API; use /api/v1/challenges",
                    kind.as_str()
                ),
            ));
        }
        let rules: &dyn Kind = kinds::of(kind).ok_or(Error::TypeNotEnabled(kind))?;
        refuse_unaccepted(rules, kind, &request)?;
        let pending = request.issue == Some(false);
        if pending && rules.accepts(Field::Send) {
            if request.send == Some(true) {
                return Err(Error::invalid(
                    "invalid_field",
                    "send cannot be true for a challenge created with issue false",
                ));
            }
            request.send = Some(false);
        }
        let services = self.registry.services();
        let now = services.clock.now_ms();
        let ctx = PlanContext {
            services,
            actions: &self.actions,
            config,
            now,
            factor,
            user_factors,
            tenant,
        };
        let spec = policy.map(|p| &p.spec);
        let planned = rules.plan(&request, spec, &ctx)?;
        check_text("user_id", &request.user_id, MAX_USER_ID)?;
        let actor_ids: Vec<String> = match &request.actors {
            None => vec![request.user_id.clone()],
            Some(actors) => {
                if actors.is_empty() {
                    return Err(Error::invalid("invalid_field", "actors must not be empty"));
                }
                if actors.len() > limits.max_actors {
                    return Err(Error::invalid(
                        "too_many_items",
                        format!("actors holds more than {} entries", limits.max_actors),
                    ));
                }
                for (i, a) in actors.iter().enumerate() {
                    check_text(&format!("actors[{i}].user_id"), &a.user_id, MAX_USER_ID)?;
                }
                actors.iter().map(|a| a.user_id.clone()).collect()
            }
        };
        let bounds = Bounds::new(config, spec);
        let ttl = request.ttl_seconds.unwrap_or(bounds.default_ttl_seconds);
        bounds.check_ttl(ttl)?;
        let max_attempts = request.max_attempts.unwrap_or(bounds.default_max_attempts);
        if max_attempts == 0 || max_attempts > bounds.max_attempts {
            return Err(Error::invalid(
                "max_attempts_out_of_range",
                format!("max_attempts must be between 1 and {}", bounds.max_attempts),
            ));
        }
        if let Some(details) = &request.details {
            check_details(details)?;
        }
        let hidden_details = request
            .hidden_details
            .as_ref()
            .map(|h| serde_json::to_string(h).expect("a JSON map encodes"));
        if hidden_details
            .as_ref()
            .is_some_and(|h| h.len() > MAX_HIDDEN_DETAILS)
        {
            return Err(Error::invalid(
                "field_too_long",
                format!("hidden_details is larger than {MAX_HIDDEN_DETAILS} bytes"),
            ));
        }
        if request.callback_url.is_none() {
            request.callback_url = spec.and_then(|p| p.callback_url.clone());
        }
        if let Some(url) = &request.callback_url {
            check_url("callback_url", url)?;
            check_outbound("callback_url", url, services.actions.policy())?;
        }
        let idempotency = request.idempotency.take().map(|i| Idempotency {
            key: i.key.into(),
            request_hash: i.fingerprint,
        });
        let make = if request.alphanumeric_tokens {
            AnswerToken::random_alphanumeric
        } else {
            AnswerToken::random
        };
        let (actors, tokens) = token::issue_with(&services.key, &actor_ids, make);
        let mut challenge = Challenge {
            id: ChallengeId::random(),
            tenant: tenant.clone(),
            kind,
            user_id: request.user_id.into(),
            actors,
            created_at: now,
            life: if pending {
                Lifecycle::pending(now, now + (ttl as i64) * 1000, max_attempts)
            } else {
                Lifecycle::issued(now, now + (ttl as i64) * 1000, max_attempts)
            },
            retention_ms: (bounds.retention_seconds as i64) * 1000,
            extras: Extras {
                details: request
                    .details
                    .as_ref()
                    .map(|d| serde_json::to_string(d).expect("details encode").into()),
                hidden_details: hidden_details.map(Into::into),
                callback_url: request.callback_url.map(Into::into),
                idempotency,
                kind: planned,
                policy: policy.map(|p| PolicyRef {
                    alias: p.alias.clone(),
                    version: p.version,
                }),
                methods: Vec::new(),
            }
            .boxed(),
        };
        let secrets = rules.issue(&mut challenge, tokens, &ctx)?;
        Ok((challenge, secrets))
    }
}

/// Refuses the fields of a request that its kind does not take.
fn refuse_unaccepted(
    rules: &dyn Kind,
    kind: ChallengeType,
    request: &CreateRequest,
) -> Result<(), Error> {
    let per_actor_recipient = request
        .actors
        .iter()
        .flatten()
        .any(|a| a.recipient.is_some());
    let given = [
        (Field::Actors, request.actors.is_some()),
        (
            Field::Recipient,
            request.recipient.is_some() || per_actor_recipient,
        ),
        (Field::Send, request.send.is_some()),
        (Field::Locale, request.locale.is_some()),
        (Field::Actions, request.actions.is_some()),
        (Field::Factor, request.factor_id.is_some()),
    ];
    match given
        .iter()
        .find(|(field, given)| *given && !rules.accepts(*field))
    {
        Some((field, _)) => Err(Error::invalid(
            "invalid_field",
            format!(
                "{} is not used by {} challenges",
                field.name(),
                kind.as_str()
            ),
        )),
        None => Ok(()),
    }
}
