//! The engine: the one façade every face (native JSON, the HTML answer pages, later the
//! compatibility faces) calls. Each operation takes domain values and the caller — a
//! [`Principal`], or for an anonymous answer the answer token it presents — checks the
//! scope the operation needs, and returns domain values or an [`Error`]; nothing here
//! knows HTTP. The engine owns the registry and, through it, the store: faces never
//! touch either, and every store call runs off the async workers (the blocking pool,
//! or a challenge's actor).
//!
//! - `create.rs`: planning a create; the kind's part is asked of `challenge::kinds`.
//! - `policies.rs`, `configuration.rs`: the management plane; `factors.rs`: enrollment;
//!   `devices.rs`: what a push device does with its own token.
//! - `records.rs`: what the vendor faces keep of their vendor's model.
//! - `methods.rs`: a challenge that offers several methods, and starting one.
//! - `input.rs`: the bounds every request string is held to; `error.rs`: the errors.

pub mod configuration;
pub mod create;
pub mod devices;
pub mod error;
pub mod factors;
pub mod input;
pub mod methods;
pub mod policies;
pub mod records;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::auth::{Principal, Scope};
use crate::challenge::kinds::token::{self, Attempt};
use crate::challenge::messages::{
    Answer, Cancel, ChallengeError, Complete, Issue, Resend, Retime, Watch, Watching,
};
use crate::challenge::state::Verdict;
use crate::challenge::ChallengeActor;
use crate::clock::Millis;
use crate::config::{ActionSettings, Limits, Settings};
use crate::metrics as m;
use crate::model::{AnswerToken, Challenge, ChallengeId, State, TenantId};
use crate::store::ListFilter;
use crate::tenant::{Registry, Tenant};

pub use crate::challenge::messages::View;
pub use create::{
    ActionRequest, ActionsRequest, ActorRequest, CreateRequest, Created, IdempotencyRequest,
    Recipient,
};
pub use error::Error;

pub struct Engine {
    registry: Arc<Registry>,
    limits: Limits,
    actions: ActionSettings,
    /// Tenants the registry has been asked for once: the first ask reads the tenant's
    /// stored configuration, so it runs on the blocking pool; later asks are a lookup.
    known: dashmap::DashSet<TenantId>,
}

/// The principal holds `scope`, or the operation is forbidden.
fn authorize(principal: &Principal, scope: Scope) -> Result<(), Error> {
    if principal.has(scope) {
        Ok(())
    } else {
        Err(Error::Forbidden(scope))
    }
}

impl Engine {
    pub fn new(registry: Arc<Registry>, settings: &Settings) -> Self {
        Engine {
            registry,
            limits: settings.limits.clone(),
            actions: settings.actions.clone(),
            known: dashmap::DashSet::new(),
        }
    }

    /// The tenant's shared record. Its first use reads the store (its configuration),
    /// which happens off the async workers.
    async fn tenant(&self, id: &TenantId) -> Result<Arc<Tenant>, Error> {
        if self.known.contains(id) {
            return Ok(self.registry.tenant(id));
        }
        let registry = self.registry.clone();
        let owned = id.clone();
        let tenant = tokio::task::spawn_blocking(move || registry.tenant(&owned))
            .await
            .map_err(|e| error::storage(format!("a store task failed: {e}")))?;
        self.known.insert(id.clone());
        Ok(tenant)
    }

    /// The engine's clock (faces use it for their own rate windows).
    pub fn now_ms(&self) -> Millis {
        self.registry.services().clock.now_ms()
    }

    /// Origin of the links the server hands out (no trailing `/`).
    pub fn base_url(&self) -> &str {
        &self.registry.services().base_url
    }

    /// Origin of a challenge's answer page: the relying party's for a `webauthn`
    /// challenge (the browser accepts its id there only), else [`Engine::base_url`].
    pub fn page_origin(&self, c: &Challenge) -> String {
        let services = self.registry.services();
        c.webauthn()
            .and_then(|plan| services.webauthn.find(&c.tenant, Some(&plan.relying_party)))
            .map(|rp| rp.origin.as_str().trim_end_matches('/').to_string())
            .unwrap_or_else(|| services.base_url.clone())
    }

    /// Checks a URL a face was given to call back (a webhook): http(s), with a host the
    /// outbound policy allows.
    pub fn check_callback_url(&self, field: &str, url: &str) -> Result<(), Error> {
        input::check_url(field, url)?;
        input::check_outbound(field, url, self.registry.services().actions.policy())
    }

    /// Runs a store call on the blocking pool, never on an async worker.
    pub(super) async fn blocking<T, E>(
        &self,
        call: impl FnOnce(&crate::store::SnapshotStore) -> Result<T, E> + Send + 'static,
    ) -> Result<T, Error>
    where
        T: Send + 'static,
        E: Send + 'static,
        Error: From<E>,
    {
        let store = self.registry.services().store.clone();
        tokio::task::spawn_blocking(move || call(&store))
            .await
            .map_err(|e| error::storage(format!("a store task failed: {e}")))?
            .map_err(Error::from)
    }

    /// Waits until every write so far is durable.
    async fn durable(&self) -> Result<(), Error> {
        Ok(self.registry.services().store.durable().await?)
    }

    /// A challenge of the principal's tenant (`challenge:get`).
    pub async fn get(&self, principal: &Principal, id: &ChallengeId) -> Result<View, Error> {
        authorize(principal, Scope::Get)?;
        Ok(self.registry.view(Some(&principal.tenant), id).await?)
    }

    /// Long-poll (`challenge:get`): the challenge as soon as its state differs from
    /// `known` (default: its state now), or after `wait` as it is then. `wait` is held
    /// to the tenant's `long_poll_max_seconds`.
    pub async fn watch(
        &self,
        principal: &Principal,
        id: &ChallengeId,
        known: Option<State>,
        wait: Duration,
    ) -> Result<View, Error> {
        authorize(principal, Scope::Get)?;
        let tenant = Some(&principal.tenant);
        if wait.is_zero() {
            return Ok(self.registry.view(tenant, id).await?);
        }
        let max = self
            .tenant(&principal.tenant)
            .await?
            .config()
            .properties
            .long_poll_max_seconds;
        if wait > Duration::from_secs(max) {
            return Err(Error::invalid(
                "invalid_query",
                format!("wait must be at most {max} seconds"),
            ));
        }
        match self
            .registry
            .send(tenant, id, Watch { unless: known })
            .await?
        {
            Watching::Now(view) => Ok(view),
            Watching::Later(changed) => {
                metrics::gauge!(m::LONG_POLLS).increment(1.0);
                let woken = tokio::time::timeout(wait, changed).await;
                metrics::gauge!(m::LONG_POLLS).decrement(1.0);
                match woken {
                    Ok(Ok(view)) => Ok(view),
                    _ => Ok(self.registry.view(tenant, id).await?),
                }
            }
        }
    }

    /// A page of the tenant's challenges in id order, after `after`, and the id to
    /// continue after if there are more (`challenge:get`).
    pub async fn list(
        &self,
        principal: &Principal,
        filter: ListFilter,
        after: Option<ChallengeId>,
        limit: usize,
    ) -> Result<(Vec<Challenge>, Option<ChallengeId>), Error> {
        authorize(principal, Scope::Get)?;
        Ok(self
            .registry
            .list(principal.tenant.clone(), after, filter, limit)
            .await?)
    }

    /// Answers a challenge: as a bearer caller with `challenge:answer` on a user's
    /// behalf (`Some(principal)`, told precisely why an answer failed), or anonymously
    /// (`None`: the attempt's answer token is the capability, and a refusal says only
    /// [`Error::AnswerRejected`]). Acknowledged once the outcome is durable.
    pub async fn answer(
        &self,
        principal: Option<&Principal>,
        id: &ChallengeId,
        mut attempt: Attempt,
    ) -> Result<View, Error> {
        let started = Instant::now();
        if let Some(p) = principal {
            authorize(p, Scope::Answer)?;
        }
        attempt.on_behalf = principal.is_some();
        let result = self.try_answer(principal, id, attempt).await;
        let outcome = match &result {
            Ok(view) if view.life.state == State::Declined => "declined",
            Ok(_) => "verified",
            Err(Error::WrongAnswer { .. }) => "wrong_answer",
            Err(_) => "rejected",
        };
        // A refused answer may name no challenge at all: its type is not reported.
        let kind = result.as_ref().map_or("unknown", |view| view.kind.as_str());
        metrics::counter!(m::ANSWERED, "type" => kind, "outcome" => outcome).increment(1);
        metrics::histogram!(m::ANSWER_SECONDS, "outcome" => outcome)
            .record(started.elapsed().as_secs_f64());
        match principal {
            Some(_) => result,
            None => result.map_err(Error::for_anonymous),
        }
    }

    async fn try_answer(
        &self,
        principal: Option<&Principal>,
        id: &ChallengeId,
        attempt: Attempt,
    ) -> Result<View, Error> {
        if let Some(code) = &attempt.code {
            input::check_text("code", code, input::MAX_CODE)?;
        }
        if let Some(raw) = &attempt.credential {
            if crate::factors::webauthn::parse_assertion(raw).is_none() {
                return Err(Error::invalid(
                    "invalid_credential",
                    "credential must be the JSON of a PublicKeyCredential from navigator.credentials.get",
                ));
            }
        }
        if principal.is_none() && attempt.token.is_none() {
            return Err(Error::invalid(
                "invalid_field",
                "answer_token is required without a bearer token",
            ));
        }
        Ok(self
            .registry
            .send(principal.map(|p| &p.tenant), id, Answer(attempt))
            .await??)
    }

    /// The challenge, to the holder of one of its actors' answer tokens (no bearer
    /// token needed: the token is the capability); `ChallengeNotFound` to anybody else.
    pub async fn open(&self, id: &ChallengeId, token: &AnswerToken) -> Result<View, Error> {
        let view = self.registry.view(None, id).await?;
        let attempt = Attempt {
            token: Some(token.clone()),
            code: None,
            actor_id: None,
            allowed: true,
            on_behalf: false,
            device: None,
            credential: None,
            method: None,
        };
        let key = &self.registry.services().key;
        // A challenge that offers several methods opens as the method the token is of.
        if !view.methods().is_empty() {
            return crate::challenge::methods::by_token(key, &view, token)
                .map(|index| std::sync::Arc::new(crate::challenge::methods::face(&view, index)))
                .ok_or(Error::ChallengeNotFound);
        }
        match token::verify(key, &view.actors, &attempt) {
            Ok(Verdict::Accepted { .. }) => Ok(view),
            _ => Err(Error::ChallengeNotFound),
        }
    }

    /// A challenge found by its id alone, whatever its tenant: for a face whose vendor
    /// makes the unguessable id (128 random bits) the capability to read it (Agilicus'
    /// anonymous `get_challenge`). The face acts within the tenant found, never another.
    pub async fn locate(&self, id: &ChallengeId) -> Result<View, Error> {
        Ok(self.registry.view(None, id).await?)
    }

    /// Cancels an `issued` or `verified` challenge (`challenge:delete`).
    pub async fn cancel(&self, principal: &Principal, id: &ChallengeId) -> Result<View, Error> {
        self.command(principal, Scope::Delete, id, Cancel).await
    }

    /// Issues a `pending` challenge (`challenge:post`): `issued`, and a delivered kind's
    /// messages sent, a push challenge announced to the push gateway (`[push]
    /// gateway_url`) with the same flush; `not_pending` for any other state.
    pub async fn issue(&self, principal: &Principal, id: &ChallengeId) -> Result<View, Error> {
        authorize(principal, Scope::Post)?;
        let view = self.registry.view(Some(&principal.tenant), id).await?;
        let announce = match view.factor() {
            Some(factor) if view.life.state == crate::model::State::Pending => {
                match self
                    .find_factor(principal, view.user_id.to_string(), factor)
                    .await
                {
                    Ok(factor) => self.announcement(&view, &factor),
                    Err(Error::FactorNotFound) => None,
                    Err(e) => return Err(e),
                }
            }
            _ => None,
        };
        self.command(principal, Scope::Post, id, Issue { announce })
            .await
    }

    /// Gives a `pending` or `issued` challenge a new lifetime (`challenge:post`): it
    /// expires `ttl_seconds` after its creation (at once if that is past). The TTL is
    /// held to the bounds a create gets — the tenant's, narrowed by the challenge's
    /// policy as it stands now — else `ttl_out_of_range`; `not_retimable` in any other
    /// state.
    pub async fn retime(
        &self,
        principal: &Principal,
        id: &ChallengeId,
        ttl_seconds: u64,
    ) -> Result<View, Error> {
        authorize(principal, Scope::Post)?;
        let tenant = &principal.tenant;
        let view = self.registry.view(Some(tenant), id).await?;
        let policy = match view.policy() {
            Some(named) => match self.find_policy(tenant, named.alias.clone()).await {
                Ok(policy) => Some(policy),
                Err(Error::PolicyNotFound) => None,
                Err(e) => return Err(e),
            },
            None => None,
        };
        let config = self.tenant(tenant).await?.config();
        policies::Bounds::new(&config.properties, policy.as_ref().map(|p| &p.spec))
            .check_ttl(ttl_seconds)?;
        self.command(principal, Scope::Post, id, Retime { ttl_seconds })
            .await
    }

    /// Completes a `verified` challenge (`challenge:complete`).
    pub async fn complete(&self, principal: &Principal, id: &ChallengeId) -> Result<View, Error> {
        self.command(principal, Scope::Complete, id, Complete).await
    }

    /// Delivers a challenge again (`challenge:resend`); `not_deliverable` for kinds the
    /// server does not deliver.
    pub async fn resend(&self, principal: &Principal, id: &ChallengeId) -> Result<View, Error> {
        self.command(principal, Scope::Resend, id, Resend).await
    }

    /// The secret the tenant's webhooks are signed with (`challenge:configuration:get`).
    /// Whether the principal may read the service's metrics (`challenge:metrics:get`).
    pub fn authorize_metrics(&self, principal: &Principal) -> Result<(), Error> {
        authorize(principal, Scope::MetricsGet)
    }

    pub fn webhook_secret(&self, principal: &Principal) -> Result<String, Error> {
        authorize(principal, Scope::WebhookGet)?;
        Ok(crate::challenge::actor::webhook_secret(
            &self.registry.services().key,
            &principal.tenant,
        ))
    }

    /// A command to one of the principal's challenges: authorize, send, map the refusal.
    async fn command<M>(
        &self,
        principal: &Principal,
        scope: Scope,
        id: &ChallengeId,
        msg: M,
    ) -> Result<View, Error>
    where
        M: actix::Message<Result = Result<View, ChallengeError>>
            + crate::challenge::messages::Settled
            + Clone
            + Send
            + 'static,
        ChallengeActor: actix::Handler<M>,
    {
        authorize(principal, scope)?;
        Ok(self
            .registry
            .send(Some(&principal.tenant), id, msg)
            .await??)
    }
}
