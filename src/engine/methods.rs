//! A challenge that offers several methods (`model::method`): planning its create from
//! `methods` (one per type, each with its own fields), starting a method, and the
//! bounds of both. The common fields (user, TTL, attempts, details, callback,
//! idempotency) are checked exactly as for a challenge of one kind; each method is
//! planned by its own kind's rules (`challenge::kinds`), as if it were a challenge of
//! its own, and issues its own secrets — a delivered method only once it is started.

use super::create::{CreateRequest, Created, Recipient};
use super::{Engine, Error, View};
use crate::auth::{Principal, Scope};
use crate::challenge::kinds::{self, delivered, token, Field, PlanContext, Secrets};
use crate::challenge::messages::Start;
use crate::factors::Factor;
use crate::model::{
    AnswerToken, ChallengeId, ChallengeType, FactorId, Method, MethodId, MethodState,
};
use crate::tenant::supervisor::Spawned;

/// The types a method may have: those answered with a code the calling service relays,
/// with an answer token (given, or carried by an emailed link), or by the user's
/// device.
pub const METHOD_TYPES: [ChallengeType; 6] = [
    ChallengeType::SmsOtp,
    ChallengeType::EmailOtp,
    ChallengeType::EmailLink,
    ChallengeType::Totp,
    ChallengeType::Push,
    ChallengeType::Token,
];

/// At most one method per type.
pub const MAX_METHODS: usize = METHOD_TYPES.len();

/// One method of a create request, with the fields its type takes.
#[derive(Debug, Clone, Default)]
pub struct MethodRequest {
    pub kind: Option<ChallengeType>,
    /// Delivered types: where its code goes.
    pub recipient: Option<Recipient>,
    /// `totp`: the user's verified factor whose codes answer it.
    pub factor_id: Option<String>,
    /// Delivered types: the message's locale.
    pub locale: Option<String>,
}

/// The answer tokens of the created challenge's `token` methods, shown once.
pub type MethodTokens = Vec<(MethodId, Vec<AnswerToken>)>;

impl Engine {
    /// Creates a challenge that offers `request.methods` (`challenge:post`).
    pub(super) async fn create_with_methods(
        &self,
        principal: &Principal,
        mut request: CreateRequest,
    ) -> Result<Created, Error> {
        let methods = request.methods.take().unwrap_or_default();
        refuse_single_kind_fields(&request)?;
        if methods.is_empty() {
            return Err(Error::invalid("invalid_field", "methods must not be empty"));
        }
        if methods.len() > MAX_METHODS {
            return Err(Error::invalid(
                "too_many_items",
                format!("methods holds more than {MAX_METHODS} entries (one per type)"),
            ));
        }
        let mut kinds = Vec::with_capacity(methods.len());
        for (i, m) in methods.iter().enumerate() {
            let kind = m.kind.ok_or_else(|| {
                Error::invalid("invalid_field", format!("methods[{i}].type is required"))
            })?;
            let rules = kinds::of(kind).ok_or(Error::TypeNotEnabled(kind))?;
            if !METHOD_TYPES.contains(&kind) {
                return Err(Error::invalid(
                    "method_type_not_supported",
                    format!(
                        "methods[{i}]: a {} challenge cannot be one of several methods",
                        kind.as_str()
                    ),
                ));
            }
            if kinds.contains(&kind) {
                return Err(Error::invalid(
                    "duplicate_method",
                    format!(
                        "methods[{i}]: a challenge offers each type once; {} is there already",
                        kind.as_str()
                    ),
                ));
            }
            for (field, given) in [
                (Field::Recipient, m.recipient.is_some()),
                (Field::Factor, m.factor_id.is_some()),
                (Field::Locale, m.locale.is_some()),
            ] {
                if given && !rules.accepts(field) {
                    return Err(Error::invalid(
                        "invalid_field",
                        format!(
                            "methods[{i}].{} is not used by {} methods",
                            field.name(),
                            kind.as_str()
                        ),
                    ));
                }
            }
            kinds.push(kind);
        }
        let tenant = &principal.tenant;
        let config = self.tenant(tenant).await?.config();
        // The common fields, checked as a `token` challenge's: it plans nothing of its own.
        let mut base_request = request.clone();
        base_request.kind = Some(ChallengeType::Token);
        let (mut challenge, _) =
            self.plan(base_request, tenant, None, &config.properties, None, &[])?;
        let mut factors: Vec<Option<Factor>> = Vec::with_capacity(methods.len());
        for m in &methods {
            factors.push(match m.factor_id.as_deref().map(FactorId::parse) {
                Some(Some(id)) => self
                    .find_factor(principal, request.user_id.clone(), id)
                    .await
                    .map(Some)
                    .or_else(|e| match e {
                        Error::FactorNotFound => Ok(None),
                        other => Err(other),
                    })?,
                _ => None,
            });
        }
        let services = self.registry.services();
        let now = challenge.created_at;
        let mut planned = Vec::with_capacity(methods.len());
        let mut tokens: MethodTokens = Vec::new();
        for ((m, kind), factor) in methods.into_iter().zip(kinds).zip(&factors) {
            let rules = kinds::of(kind).ok_or(Error::TypeNotEnabled(kind))?;
            let ctx = PlanContext {
                services,
                actions: &self.actions,
                config: &config.properties,
                now,
                factor: factor.as_ref(),
                user_factors: &[],
                tenant,
            };
            let delivery = rules.delivery();
            let sub = CreateRequest {
                kind: Some(kind),
                user_id: request.user_id.clone(),
                recipient: m.recipient,
                factor_id: m.factor_id,
                locale: m.locale,
                // Nothing goes out until the method is started.
                send: delivery.map(|_| false),
                // A kind with bounds of its own on them (push) checks them.
                details: request.details.clone(),
                hidden_details: request.hidden_details.clone(),
                ..CreateRequest::default()
            };
            let data = rules.plan(&sub, None, &ctx)?;
            let id = MethodId::random();
            let user_ids: Vec<String> = challenge
                .actors
                .iter()
                .map(|a| a.user_id.to_string())
                .collect();
            let make = if request.alphanumeric_tokens {
                AnswerToken::random_alphanumeric
            } else {
                AnswerToken::random
            };
            let (actors, fresh) = token::issue_with(&services.key, &user_ids, make);
            let mut face = challenge.clone();
            face.kind = kind;
            face.actors = actors;
            if let Some(extras) = face.extras.as_deref_mut() {
                extras.kind = data.clone();
            } else {
                face.extras = crate::model::Extras {
                    kind: data.clone(),
                    ..Default::default()
                }
                .boxed();
            }
            // A delivered method's secret is issued when it is started; until then the
            // hashes of tokens nobody was given stand in its place.
            if let Some(d) = delivery {
                delivered::transport_ready(services, d.channel, kind)?;
            } else if let Secrets::AnswerTokens(shown) = rules.issue(&mut face, fresh, &ctx)? {
                if !shown.is_empty() {
                    tokens.push((id, shown));
                }
            }
            let started_at = (!rules.starts_on_demand()).then_some(now);
            planned.push(Method {
                id,
                kind,
                state: MethodState::Open,
                attempts: 0,
                max_attempts: challenge.life.max_attempts,
                started_at,
                hashes: face.actors.iter().map(|a| a.token_hash).collect(),
                data: face.extras().kind.clone(),
            });
        }
        challenge.kind = planned[0].kind;
        match challenge.extras.as_deref_mut() {
            Some(extras) => extras.methods = planned,
            None => {
                challenge.extras = Some(Box::new(crate::model::Extras {
                    methods: planned,
                    ..Default::default()
                }))
            }
        }
        match self.registry.create(challenge, false, None, None).await? {
            Spawned::New(view) => Ok(Created {
                view,
                answer_tokens: Vec::new(),
                method_tokens: tokens,
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

    /// The type and status of the user's factor `id`, to a caller who may create
    /// challenges (`challenge:post`): what a face needs to offer a method for a factor
    /// its caller names. `FactorNotFound` for another user's or tenant's.
    pub async fn factor_for_create(
        &self,
        principal: &Principal,
        user_id: String,
        id: FactorId,
    ) -> Result<(crate::factors::FactorType, crate::factors::FactorStatus), Error> {
        super::authorize(principal, Scope::Post)?;
        let factor = self.find_factor(principal, user_id, id).await?;
        Ok((factor.kind(), factor.status))
    }

    /// Starts a method of one of the principal's challenges (`challenge:resend`): its
    /// code is issued and sent; a method started already is sent again, as a resend. A
    /// push method is shown to its device from then on, and announced to the push
    /// gateway (`[push] gateway_url`) with the same flush.
    pub async fn start_method(
        &self,
        principal: &Principal,
        id: &ChallengeId,
        method: MethodId,
    ) -> Result<View, Error> {
        super::authorize(principal, Scope::Resend)?;
        let view = self.registry.view(Some(&principal.tenant), id).await?;
        let announce = match crate::challenge::methods::find(&view, method) {
            Some(index) if !view.methods()[index].started() => {
                self.method_announcement(principal, &view, index).await?
            }
            _ => None,
        };
        self.command(principal, Scope::Resend, id, Start { method, announce })
            .await
    }

    /// What a push method's start announces to the push gateway, as an outbox event.
    async fn method_announcement(
        &self,
        principal: &Principal,
        view: &View,
        index: usize,
    ) -> Result<Option<crate::store::WebhookEvent>, Error> {
        let services = self.registry.services();
        let (Some(url), crate::model::KindData::Factor(factor)) = (
            services.push_gateway.as_deref(),
            &view.methods()[index].data,
        ) else {
            return Ok(None);
        };
        let Some(rules) = kinds::of(view.methods()[index].kind) else {
            return Ok(None);
        };
        let factor = match self
            .find_factor(principal, view.user_id.to_string(), *factor)
            .await
        {
            Ok(factor) => factor,
            Err(Error::FactorNotFound) => return Ok(None),
            Err(e) => return Err(e),
        };
        let face = crate::challenge::methods::face(view, index);
        Ok(rules
            .announce(&face, &factor)
            .map(|body| services.outbox.event(&view.tenant, view.id, url, body)))
    }
}

/// The fields a create with `methods` takes per method, or not at all.
fn refuse_single_kind_fields(request: &CreateRequest) -> Result<(), Error> {
    let given = [
        ("type", request.kind.is_some()),
        ("policy", request.policy.is_some()),
        ("actors", request.actors.is_some()),
        ("recipient", request.recipient.is_some()),
        ("factor_id", request.factor_id.is_some()),
        ("send", request.send.is_some()),
        ("locale", request.locale.is_some()),
        ("actions", request.actions.is_some()),
    ];
    match given.iter().find(|(_, given)| *given) {
        Some((field, _)) => Err(Error::invalid(
            "invalid_field",
            format!("{field} is not used with methods: each method names its own type and fields"),
        )),
        None => Ok(()),
    }
}
