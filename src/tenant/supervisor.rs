//! `TenantSupervisor`: one per tenant. Creates are serialized here so the quota, the
//! idempotency keys and "one active challenge per user" are checked and applied
//! atomically; it writes the registry's index when a challenge actor starts, stops, or
//! must be brought back. actix restarts actors that *stop*, not ones that die — so a
//! handler that finds a dead address asks the supervisor to [`Revive`] the challenge from
//! its last snapshot.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;

use super::registry::Registry;
use super::Tenant;
use crate::challenge::messages::{Cancel, View};
use crate::challenge::ChallengeActor;
use crate::metrics as m;
use crate::model::{Challenge, ChallengeId, PolicyAlias};

/// A policy and a user: the scope of `one_active_per_user`.
type PolicyUser = (PolicyAlias, Box<str>);

pub struct TenantSupervisor {
    registry: Arc<Registry>,
    tenant: Option<Arc<Tenant>>,
    /// Idempotency key → the challenge created under it and its request hash. Kept as
    /// long as that challenge exists.
    idempotency: HashMap<Box<str>, (ChallengeId, [u8; 32])>,
    /// Challenges created from a policy for a user that may still be live; pruned at
    /// each create for the same pair and when a challenge is retired.
    from_policy: HashMap<PolicyUser, Vec<ChallengeId>>,
}

impl TenantSupervisor {
    pub fn new(registry: Arc<Registry>) -> Self {
        TenantSupervisor {
            registry,
            tenant: None,
            idempotency: HashMap::new(),
            from_policy: HashMap::new(),
        }
    }

    fn tenant(&self) -> &Arc<Tenant> {
        self.tenant
            .as_ref()
            .expect("tenant is set right after start")
    }

    /// Records that `challenge` was created from its policy; with `one_active`, hands
    /// back the user's other live challenges from that policy, to be cancelled.
    fn track(&mut self, challenge: &Challenge, one_active: bool) -> Vec<ChallengeId> {
        let Some(policy) = &challenge.policy() else {
            return Vec::new();
        };
        let registry = &self.registry;
        let ids = self
            .from_policy
            .entry((policy.alias.clone(), challenge.user_id.clone()))
            .or_default();
        ids.retain(|id| {
            registry
                .view(None, id)
                .is_ok_and(|v| !v.state().is_terminal())
        });
        let older = if one_active {
            std::mem::take(ids)
        } else {
            Vec::new()
        };
        ids.push(challenge.id);
        older
    }
}

impl Actor for TenantSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(1024);
    }
}

/// Sent once, right after start, with the tenant this supervisor serves.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Serve(pub Arc<Tenant>);

impl Handler<Serve> for TenantSupervisor {
    type Result = ();
    fn handle(&mut self, Serve(tenant): Serve, _: &mut Context<Self>) {
        self.tenant = Some(tenant);
    }
}

/// Create: check the idempotency key and the quota, snapshot, start the actor; the reply
/// resolves once the snapshot is durable (and, with `one_active_per_user`, once the
/// user's older live challenges from the same policy are cancelled).
#[derive(Message)]
#[rtype(result = "Result<Spawned, SpawnError>")]
pub struct Spawn {
    pub challenge: Challenge,
    pub one_active_per_user: bool,
    /// Delivery kinds: each actor's plain code or link token and first message.
    pub prepared: Option<crate::challenge::kinds::delivered::Prepared>,
}

pub enum Spawned {
    /// A new challenge; the view still knows nothing of plain secrets (the caller has them).
    New(View),
    /// The idempotency key named an existing challenge created by the same request.
    Existing(ChallengeId),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpawnError {
    #[error("the tenant has reached its live-challenge quota of {0}")]
    QuotaExceeded(u64),
    #[error("the idempotency key was used with a different request")]
    IdempotencyConflict,
    #[error("{0}")]
    Store(String),
}

impl Handler<Spawn> for TenantSupervisor {
    type Result = ResponseFuture<Result<Spawned, SpawnError>>;

    fn handle(
        &mut self,
        Spawn {
            challenge,
            one_active_per_user,
            prepared,
        }: Spawn,
        _: &mut Context<Self>,
    ) -> Self::Result {
        let store = self.registry.services().store.clone();
        if let Some(idem) = challenge.idempotency() {
            if let Some((id, hash)) = self.idempotency.get(&idem.key) {
                let reply = if *hash == idem.request_hash {
                    Ok(Spawned::Existing(*id))
                } else {
                    Err(SpawnError::IdempotencyConflict)
                };
                // The first request may not be durable yet; never acknowledge before it is.
                return Box::pin(async move {
                    store
                        .durable()
                        .await
                        .map_err(|e| SpawnError::Store(e.to_string()))?;
                    reply
                });
            }
        }
        let tenant = self.tenant().clone();
        let quota = tenant.config().properties.max_live_challenges;
        if tenant.live() >= quota {
            return Box::pin(async move { Err(SpawnError::QuotaExceeded(quota)) });
        }
        if let Err(e) = store.put(&challenge) {
            return Box::pin(async move { Err(SpawnError::Store(e.to_string())) });
        }
        if let Some(idem) = challenge.idempotency() {
            self.idempotency
                .insert(idem.key.clone(), (challenge.id, idem.request_hash));
        }
        let older = self.track(&challenge, one_active_per_user);
        tenant.take_slot();
        metrics::gauge!(m::LIVE).increment(1.0);
        metrics::counter!(m::CREATED, "type" => challenge.kind.as_str()).increment(1);
        let view: View = Arc::new(challenge);
        let tenant_id = tenant.id.clone();
        self.registry
            .start_actor_with(view.clone(), tenant, prepared);
        let registry = self.registry.clone();
        Box::pin(async move {
            store
                .durable()
                .await
                .map_err(|e| SpawnError::Store(e.to_string()))?;
            for id in older {
                // One that ended meanwhile refuses the cancel; either way it is not live.
                let _ = registry.send(Some(&tenant_id), &id, Cancel).await;
            }
            Ok(Spawned::New(view))
        })
    }
}

/// A retained challenge reached the end of its retention and was deleted.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Retired {
    pub id: ChallengeId,
    pub idempotency_key: Option<Box<str>>,
}

impl Handler<Retired> for TenantSupervisor {
    type Result = ();
    fn handle(&mut self, msg: Retired, _: &mut Context<Self>) {
        if let Some(policy) = self
            .registry
            .view(None, &msg.id)
            .ok()
            .and_then(|v| Some((v.policy()?.alias.clone(), v.user_id.clone())))
        {
            if let Some(ids) = self.from_policy.get_mut(&policy) {
                ids.retain(|id| *id != msg.id);
                if ids.is_empty() {
                    self.from_policy.remove(&policy);
                }
            }
        }
        self.registry.forget(&msg.id);
        if let Some(key) = msg.idempotency_key {
            self.idempotency.remove(&key);
        }
    }
}

/// Remember an idempotency key of a restored challenge.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Remember {
    pub key: Box<str>,
    pub id: ChallengeId,
    pub request_hash: [u8; 32],
}

impl Handler<Remember> for TenantSupervisor {
    type Result = ();
    fn handle(&mut self, msg: Remember, _: &mut Context<Self>) {
        self.idempotency.insert(msg.key, (msg.id, msg.request_hash));
    }
}

/// Remember a restored live challenge that was created from a policy.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct RememberPolicyUse(pub View);

impl Handler<RememberPolicyUse> for TenantSupervisor {
    type Result = ();
    fn handle(&mut self, RememberPolicyUse(view): RememberPolicyUse, _: &mut Context<Self>) {
        self.track(&view, false);
    }
}

/// Bring a challenge whose actor died back from its last snapshot.
#[derive(Message)]
#[rtype(result = "Option<Addr<ChallengeActor>>")]
pub struct Revive {
    pub id: ChallengeId,
}

impl Handler<Revive> for TenantSupervisor {
    type Result = Option<Addr<ChallengeActor>>;

    fn handle(&mut self, Revive { id }: Revive, _: &mut Context<Self>) -> Self::Result {
        let tenant = self.tenant().clone();
        if let Some(addr) = self.registry.address(&id) {
            if addr.connected() {
                return Some(addr); // revived already by an earlier request
            }
        }
        let snapshot = match self.registry.services().store.load(&tenant.id, &id) {
            Ok(Some(snapshot)) => snapshot,
            Ok(None) => {
                self.registry.forget(&id);
                return None;
            }
            Err(e) => {
                tracing::error!(error = %e, challenge = %id, "cannot read the snapshot of a dead challenge actor");
                return None;
            }
        };
        tracing::warn!(challenge = %id, tenant = %tenant.id, "challenge actor died; restored from its snapshot");
        Some(self.registry.start_actor(Arc::new(snapshot), tenant))
    }
}
