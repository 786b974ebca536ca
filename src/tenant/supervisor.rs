//! `TenantSupervisor`: one per tenant. Creates are serialized here so the quota and the
//! idempotency keys are checked and taken atomically; it writes the registry's index
//! when a challenge actor starts, stops, or must be brought back. actix restarts actors
//! that *stop*, not ones that die — so a handler that finds a dead address asks the
//! supervisor to [`Revive`] the challenge from its last snapshot.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;

use super::registry::Registry;
use super::Tenant;
use crate::challenge::messages::View;
use crate::challenge::ChallengeActor;
use crate::metrics as m;
use crate::model::{Challenge, ChallengeId};

pub struct TenantSupervisor {
    registry: Arc<Registry>,
    tenant: Option<Arc<Tenant>>,
    /// Idempotency key → the challenge created under it and its request hash. Kept as
    /// long as that challenge exists.
    idempotency: HashMap<Box<str>, (ChallengeId, [u8; 32])>,
}

impl TenantSupervisor {
    pub fn new(registry: Arc<Registry>) -> Self {
        TenantSupervisor {
            registry,
            tenant: None,
            idempotency: HashMap::new(),
        }
    }

    fn tenant(&self) -> &Arc<Tenant> {
        self.tenant
            .as_ref()
            .expect("tenant is set right after start")
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
/// resolves once the snapshot is durable.
#[derive(Message)]
#[rtype(result = "Result<Spawned, SpawnError>")]
pub struct Spawn {
    pub challenge: Challenge,
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

    fn handle(&mut self, Spawn { challenge }: Spawn, _: &mut Context<Self>) -> Self::Result {
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
        let quota = self.registry.services().limits.max_live_challenges;
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
        tenant.take_slot();
        metrics::gauge!(m::LIVE).increment(1.0);
        metrics::counter!(m::CREATED, "type" => challenge.kind.as_str()).increment(1);
        let view: View = Arc::new(challenge);
        self.registry.start_actor(view.clone(), tenant);
        Box::pin(async move {
            store
                .durable()
                .await
                .map_err(|e| SpawnError::Store(e.to_string()))?;
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
