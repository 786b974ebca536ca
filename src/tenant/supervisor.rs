//! `TenantSupervisor`: one per tenant. Creates are serialized here so the quota, the
//! idempotency keys and "one active challenge per user" are checked and applied
//! atomically; it writes the registry's index when a challenge actor starts, settles, or
//! must be brought back, and it is the tenant's one retention sweeper: settled challenges
//! are deleted, from disk and memory, when their retention ends. actix restarts actors
//! that *stop*, not ones that die — so a handler that finds a dead address asks the
//! supervisor to [`Revive`] the challenge from its last durable state.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::oneshot;

use super::registry::Registry;
use super::Tenant;
use crate::challenge::messages::{Cancel, View};
use crate::challenge::ChallengeActor;
use crate::clock::Millis;
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
    /// Creates whose snapshot is not durable yet, with the idempotent replays waiting
    /// for them.
    creating: HashMap<ChallengeId, Vec<Creating>>,
    /// Settled challenges by the time their retention ends: one sweeper per tenant.
    retention: BinaryHeap<Reverse<(Millis, ChallengeId)>>,
    /// When the sweep timer fires, if armed.
    sweep_at: Option<(Millis, SpawnHandle)>,
}

impl TenantSupervisor {
    pub fn new(registry: Arc<Registry>) -> Self {
        TenantSupervisor {
            registry,
            tenant: None,
            idempotency: HashMap::new(),
            from_policy: HashMap::new(),
            creating: HashMap::new(),
            retention: BinaryHeap::new(),
            sweep_at: None,
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
        let creating = &self.creating;
        ids.retain(|id| creating.contains_key(id) || registry.is_live(id));
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

/// Create: check the idempotency key and the quota, snapshot, and — only once the
/// snapshot is durable — start the actor (which sends the first deliveries) and reply.
/// With `one_active_per_user`, the reply also waits for the user's older live challenges
/// from the same policy to be cancelled. If the flush fails, everything the create took
/// is given back: the quota slot, the idempotency key, the snapshot.
#[derive(Message)]
#[rtype(result = "Result<Spawned, SpawnError>")]
pub struct Spawn {
    pub challenge: Challenge,
    pub one_active_per_user: bool,
    /// Delivery kinds: each actor's plain code or link token and first message.
    pub prepared: Option<crate::challenge::kinds::delivered::Prepared>,
    /// What the push gateway is told of the new challenge: stored with it, before the
    /// same flush, and sent once both are durable.
    pub announce: Option<crate::store::WebhookEvent>,
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
    #[error("the tenant keeps {0} challenges, live or within retention, the most allowed")]
    StoredQuotaExceeded(u64),
    #[error("the idempotency key was used with a different request")]
    IdempotencyConflict,
    #[error("{0}")]
    Store(String),
}

type Creating = oneshot::Sender<Result<(), SpawnError>>;

impl Handler<Spawn> for TenantSupervisor {
    type Result = ResponseActFuture<Self, Result<Spawned, SpawnError>>;

    fn handle(
        &mut self,
        Spawn {
            challenge,
            one_active_per_user,
            prepared,
            announce,
        }: Spawn,
        _: &mut Context<Self>,
    ) -> Self::Result {
        let store = self.registry.services().store.clone();
        if let Some(idem) = challenge.idempotency() {
            if let Some((id, hash)) = self.idempotency.get(&idem.key) {
                let id = *id;
                if *hash != idem.request_hash {
                    return Box::pin(fut::ready(Err(SpawnError::IdempotencyConflict)));
                }
                // The first request may not be durable yet: never answer before it is.
                let Some(waiting) = self.creating.get_mut(&id) else {
                    return Box::pin(fut::ready(Ok(Spawned::Existing(id))));
                };
                let (tx, rx) = oneshot::channel();
                waiting.push(tx);
                return Box::pin(
                    async move {
                        rx.await
                            .unwrap_or_else(|_| Err(SpawnError::Store("create abandoned".into())))
                    }
                    .into_actor(self)
                    .map(move |created, _, _| created.map(|()| Spawned::Existing(id))),
                );
            }
        }
        let tenant = self.tenant().clone();
        let quota = tenant.config().properties.max_live_challenges;
        if tenant.live() >= quota {
            return Box::pin(fut::ready(Err(SpawnError::QuotaExceeded(quota))));
        }
        let kept = self
            .registry
            .services()
            .limits
            .max_stored_challenges
            .max(quota);
        if tenant.stored() >= kept {
            return Box::pin(fut::ready(Err(SpawnError::StoredQuotaExceeded(kept))));
        }
        let written = store.put(&challenge).and_then(|()| match &announce {
            Some(event) => store.outbox().put(event),
            None => Ok(()),
        });
        if let Err(e) = written {
            if let Err(e) = store.delete(&tenant.id, &challenge.id) {
                tracing::error!(error = %e, challenge = %challenge.id, "cannot remove a refused create's snapshot");
            }
            return Box::pin(fut::ready(Err(SpawnError::Store(e.to_string()))));
        }
        if let Some(idem) = challenge.idempotency() {
            self.idempotency
                .insert(idem.key.clone(), (challenge.id, idem.request_hash));
        }
        let older = self.track(&challenge, one_active_per_user);
        tenant.take_slot();
        self.creating.insert(challenge.id, Vec::new());
        let view: View = Arc::new(challenge);
        Box::pin(
            async move { store.durable().await }
                .into_actor(self)
                .then(move |durable, act, _| {
                    let waiting = act.creating.remove(&view.id).unwrap_or_default();
                    let outcome = match durable {
                        Ok(()) => {
                            metrics::gauge!(m::LIVE).increment(1.0);
                            metrics::counter!(m::CREATED, "type" => view.kind.as_str())
                                .increment(1);
                            act.registry
                                .start_actor_with(view.clone(), tenant.clone(), prepared);
                            if let Some(event) = announce {
                                act.registry.services().outbox.dispatch(event);
                            }
                            Ok(())
                        }
                        Err(e) => {
                            tracing::error!(error = %e, challenge = %view.id, "create not durable; refused");
                            if let Some(event) = &announce {
                                let outbox = act.registry.services().store.outbox();
                                if let Err(e) = outbox.remove(&event.id) {
                                    tracing::error!(error = %e, challenge = %view.id, "cannot take back a refused create's push notification");
                                }
                            }
                            act.roll_back(&view, &tenant);
                            Err(SpawnError::Store(e.to_string()))
                        }
                    };
                    for waiter in waiting {
                        let _ = waiter.send(outcome.clone());
                    }
                    let registry = act.registry.clone();
                    let tenant_id = tenant.id.clone();
                    async move {
                        outcome?;
                        for id in older {
                            // One that ended meanwhile refuses the cancel; either way it is
                            // not live.
                            let _ = registry.send(Some(&tenant_id), &id, Cancel).await;
                        }
                        Ok(Spawned::New(view))
                    }
                    .into_actor(act)
                }),
        )
    }
}

impl TenantSupervisor {
    /// Gives back what a create took when it could not be made durable.
    fn roll_back(&mut self, view: &View, tenant: &Tenant) {
        if let Err(e) = self.registry.services().store.delete(&tenant.id, &view.id) {
            tracing::error!(error = %e, challenge = %view.id, "cannot remove a refused create's snapshot");
        }
        if let Some(idem) = view.idempotency() {
            self.idempotency.remove(&idem.key);
        }
        self.untrack(view);
        tenant.release_slot();
        tenant.forget();
    }

    /// Forgets that `view` was created from its policy.
    fn untrack(&mut self, view: &Challenge) {
        let Some(policy) = view.policy() else {
            return;
        };
        let key = (policy.alias.clone(), view.user_id.clone());
        if let Some(ids) = self.from_policy.get_mut(&key) {
            ids.retain(|id| *id != view.id);
            if ids.is_empty() {
                self.from_policy.remove(&key);
            }
        }
    }

    /// Queues a settled challenge for deletion at `at`, re-arming the one sweep timer if
    /// this is now the earliest.
    fn retain(&mut self, at: Millis, id: ChallengeId, ctx: &mut Context<Self>) {
        self.retention.push(Reverse((at, id)));
        if self.sweep_at.is_some_and(|(armed, _)| armed <= at) {
            return;
        }
        if let Some((_, handle)) = self.sweep_at.take() {
            ctx.cancel_future(handle);
        }
        self.arm_sweep(at, ctx);
    }

    fn arm_sweep(&mut self, at: Millis, ctx: &mut Context<Self>) {
        let now = self.registry.services().clock.now_ms();
        let delay = std::time::Duration::from_millis(at.saturating_sub(now).max(0) as u64);
        let handle = ctx.run_later(delay, |act, ctx| act.sweep(ctx));
        self.sweep_at = Some((at, handle));
    }

    /// Deletes the settled challenges whose retention is over, a bounded batch at a time
    /// so the thread it shares with HTTP requests is never held for long.
    fn sweep(&mut self, ctx: &mut Context<Self>) {
        self.sweep_at = None;
        let now = self.registry.services().clock.now_ms();
        let mut done = 0;
        while let Some(&Reverse((at, id))) = self.retention.peek() {
            if at > now {
                break;
            }
            if done == SWEEP_BATCH {
                self.arm_sweep(now, ctx);
                return;
            }
            self.retention.pop();
            self.retire(id);
            done += 1;
        }
        if let Some(&Reverse((at, _))) = self.retention.peek() {
            self.arm_sweep(at, ctx);
        }
    }

    /// Deletes one settled challenge from disk and memory (settled challenges never come
    /// back to life, so one that is not settled any more was deleted already).
    fn retire(&mut self, id: ChallengeId) {
        if self.registry.settled(&id).is_none() {
            return;
        }
        let tenant = self.tenant().clone();
        let store = self.registry.services().store.clone();
        // What the supervisor remembers of it (its idempotency key, its policy and user)
        // is in its snapshot.
        match store.load(&tenant.id, &id) {
            Ok(Some(view)) => {
                self.untrack(&view);
                self.registry.unindex_factor(&view);
                if let Some(idem) = view.idempotency() {
                    self.idempotency.remove(&idem.key);
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, challenge = %id, "cannot read a settled challenge before deleting it")
            }
        }
        if let Err(e) = store.delete(&tenant.id, &id) {
            tracing::error!(error = %e, challenge = %id, "snapshot delete failed; retried at the next start");
        }
        self.registry.forget(&id);
        tenant.forget();
        metrics::counter!(m::RETIRED).increment(1);
    }
}

/// Settled challenges deleted per sweep before the supervisor lets other work run.
const SWEEP_BATCH: usize = 1024;

/// A challenge ended with nothing left to run: its actor is stopping; keep its final view
/// readable until its retention ends.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Settle {
    pub view: View,
}

impl Handler<Settle> for TenantSupervisor {
    type Result = ();
    fn handle(&mut self, Settle { view }: Settle, ctx: &mut Context<Self>) {
        let at = view.delete_at().unwrap_or_default();
        let id = view.id;
        self.registry.settle(&view);
        self.retain(at, id, ctx);
    }
}

/// Restore: settled challenges to delete when their retention ends.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct RetainRestored(pub Vec<(Millis, ChallengeId)>);

impl Handler<RetainRestored> for TenantSupervisor {
    type Result = ();
    fn handle(&mut self, RetainRestored(due): RetainRestored, ctx: &mut Context<Self>) {
        for (at, id) in due {
            self.retain(at, id, ctx);
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

/// Bring a challenge whose actor died back from its last durable state (the view it
/// published), never from the store, which may hold a write that was not acknowledged.
/// `None`: nothing to revive — the challenge is gone, or it has settled meanwhile.
#[derive(Message)]
#[rtype(result = "Option<Addr<ChallengeActor>>")]
pub struct Revive {
    pub id: ChallengeId,
}

impl Handler<Revive> for TenantSupervisor {
    type Result = Option<Addr<ChallengeActor>>;

    fn handle(&mut self, Revive { id }: Revive, _: &mut Context<Self>) -> Self::Result {
        let tenant = self.tenant().clone();
        let (addr, view) = self.registry.live_entry(&id)?;
        if addr.connected() {
            return Some(addr); // revived already by an earlier request
        }
        tracing::warn!(challenge = %id, tenant = %tenant.id, "challenge actor died; restored from its last durable state");
        Some(self.registry.start_actor(view, tenant))
    }
}
