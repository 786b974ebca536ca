//! `Registry`: tenants → supervisors, and the read-mostly index (challenge id → tenant
//! and actor address) that lets a handler reach a challenge's actor in one hop. Only
//! supervisors (and the restore at start, before any request) write the index.
//!
//! Challenge ids are unique across tenants, so an anonymous answer (which knows no
//! tenant) can find its challenge; every tenant-scoped lookup checks the owner and says
//! "not found" for anybody else's challenge.

use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use actix::dev::ToEnvelope;
use actix::prelude::*;
use arc_swap::ArcSwap;
use dashmap::DashMap;

use super::supervisor::{
    Remember, RememberPolicyUse, RetainRestored, Revive, Serve, Spawn, SpawnError, Spawned,
};
use super::{Tenant, TenantSupervisor};
use crate::challenge::messages::{as_of, Settled, View};
use crate::challenge::state::{self, Event};
use crate::challenge::{ChallengeActor, SharedServices};
use crate::metrics as m;
use crate::model::{Challenge, ChallengeId, ChallengeType, FactorId, TenantConfig, TenantId};
use crate::store::{ListFilter, StoreError};

/// A challenge with an actor.
struct Live {
    addr: Addr<ChallengeActor>,
    /// The challenge's last durable state, published by its actor: reads need no
    /// message.
    view: Arc<ArcSwap<Challenge>>,
}

/// Why a challenge could not be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// No such challenge for this caller (absent, deleted, or another tenant's).
    NotFound,
    /// The actor could not take the message.
    Unavailable,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RestoreReport {
    /// Challenges restored in `issued` or `verified`.
    pub live: u64,
    /// Terminal challenges restored for the rest of their retention.
    pub retained: u64,
    /// Challenges whose TTL ran out while the server was down, now `expired`.
    pub expired_while_down: u64,
    /// Terminal challenges whose retention ran out while down, deleted.
    pub deleted: u64,
}

pub struct Registry {
    services: SharedServices,
    /// Challenges with an actor.
    live: DashMap<ChallengeId, Live>,
    /// Ended challenges with nothing left to run, readable until their supervisor
    /// retires them. Only the tenant is held in memory, in a map of its own so that the
    /// many kept ones cost as little as can be: the final view is the last snapshot,
    /// durable by then, and read from the store when asked for.
    settled: DashMap<ChallengeId, TenantId>,
    /// Push challenges (live and settled) by the factor that answers them, in id order:
    /// what a device lists, without walking its tenant.
    by_factor: DashMap<FactorId, BTreeSet<ChallengeId>>,
    tenants: DashMap<TenantId, Arc<Tenant>>,
    /// Threads that run challenge actors and supervisors: dedicated ones, or the HTTP
    /// workers' own (adopted as they start), so that a request and the actor it talks to
    /// often share a thread.
    arbiters: RwLock<Vec<ArbiterHandle>>,
    dedicated: bool,
    next_arbiter: AtomicUsize,
    ready: AtomicBool,
}

impl Registry {
    /// A registry whose actors run on `dedicated` new threads, or, with 0, on the
    /// threads later given to [`Registry::adopt_current_arbiter`]. Call inside an actix
    /// `System`.
    pub fn new(services: SharedServices, dedicated: usize) -> Arc<Self> {
        let arbiters = (0..dedicated).map(|_| Arbiter::new().handle()).collect();
        Arc::new(Registry {
            services,
            live: DashMap::new(),
            settled: DashMap::new(),
            by_factor: DashMap::new(),
            tenants: DashMap::new(),
            arbiters: RwLock::new(arbiters),
            dedicated: dedicated > 0,
            next_arbiter: AtomicUsize::new(0),
            ready: AtomicBool::new(false),
        })
    }

    /// Adds the calling thread's arbiter (an HTTP worker's) to those running actors;
    /// ignored when the registry has dedicated threads.
    pub fn adopt_current_arbiter(&self) {
        if !self.dedicated {
            self.arbiters
                .write()
                .expect("arbiters lock")
                .push(Arbiter::current());
        }
    }

    /// Blocks until `count` threads can run actors (restore waits for the HTTP workers).
    pub fn wait_for_arbiters(&self, count: usize) {
        while self.arbiters.read().expect("arbiters lock").len() < count.max(1) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    pub fn services(&self) -> &SharedServices {
        &self.services
    }

    /// True once the restore at start has finished.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    fn arbiter(&self) -> ArbiterHandle {
        let n = self.next_arbiter.fetch_add(1, Ordering::Relaxed);
        let arbiters = self.arbiters.read().expect("arbiters lock");
        arbiters[n % arbiters.len()].clone()
    }

    /// The tenant's shared record, starting its supervisor and reading its configuration
    /// on first use.
    pub fn tenant(self: &Arc<Self>, id: &TenantId) -> Arc<Tenant> {
        if let Some(t) = self.tenants.get(id) {
            return t.clone();
        }
        let config = self.stored_config(id);
        self.tenants
            .entry(id.clone())
            .or_insert_with(|| {
                let registry = self.clone();
                let supervisor = TenantSupervisor::start_in_arbiter(&self.arbiter(), move |_| {
                    TenantSupervisor::new(registry)
                });
                let tenant = Arc::new(Tenant {
                    id: id.clone(),
                    live: Default::default(),
                    stored: Default::default(),
                    supervisor: supervisor.clone(),
                    config: ArcSwap::from_pointee(config),
                });
                supervisor.do_send(Serve(tenant.clone()));
                tenant
            })
            .clone()
    }

    /// The tenant's stored configuration held to the file's caps, or the file's values if
    /// it never wrote one.
    fn stored_config(&self, id: &TenantId) -> TenantConfig {
        let limits = &self.services.limits;
        match self.services.store.configuration().get(id) {
            Ok(Some(stored)) => {
                let properties = stored.properties.clone().capped(limits);
                if properties != stored.properties {
                    tracing::warn!(tenant = %id, "stored configuration exceeds the file's caps; held to them");
                }
                TenantConfig {
                    properties,
                    ..stored
                }
            }
            Ok(None) => TenantConfig::initial(limits),
            Err(e) => {
                tracing::error!(tenant = %id, error = %e, "cannot read the tenant's configuration; using the file's values");
                TenantConfig::initial(limits)
            }
        }
    }

    /// Live challenges of a tenant (0 for a tenant never seen).
    pub fn live(&self, id: &TenantId) -> u64 {
        self.tenants.get(id).map_or(0, |t| t.live())
    }

    /// Challenges a tenant keeps, live or settled (0 for a tenant never seen).
    pub fn stored(&self, id: &TenantId) -> u64 {
        self.tenants.get(id).map_or(0, |t| t.stored())
    }

    /// Starts the actor of `challenge` and indexes it. Supervisors and restore only.
    pub(super) fn start_actor(&self, challenge: View, tenant: Arc<Tenant>) -> Addr<ChallengeActor> {
        self.start_actor_with(challenge, tenant, None)
    }

    /// Starts an actor, handing it the plain secrets and first messages of a just-created
    /// delivery challenge.
    pub(super) fn start_actor_with(
        &self,
        challenge: View,
        tenant: Arc<Tenant>,
        prepared: Option<crate::challenge::kinds::delivered::Prepared>,
    ) -> Addr<ChallengeActor> {
        let id = challenge.id;
        self.index_factor(&challenge);
        let view = Arc::new(ArcSwap::new(challenge));
        let published = view.clone();
        let services = self.services.clone();
        let addr = ChallengeActor::start_in_arbiter(&self.arbiter(), move |_| {
            ChallengeActor::new(published, services, tenant).with_prepared(prepared)
        });
        self.live.insert(
            id,
            Live {
                addr: addr.clone(),
                view,
            },
        );
        addr
    }

    /// The challenge's last durable state, as of now (a due expiry shows): a live one's
    /// as its actor published it, read without disturbing the actor; a settled one's
    /// from the store, off the async threads.
    pub async fn view(&self, tenant: Option<&TenantId>, id: &ChallengeId) -> Result<View, Lookup> {
        let view = match self.published(tenant, id)? {
            Ok(view) => view,
            Err(owner) => self.load_settled(owner, *id).await?,
        };
        Ok(as_of(view, self.services.clock.now_ms()))
    }

    /// A live challenge's published view, or a settled one's tenant; another tenant's
    /// challenge is not found.
    fn published(
        &self,
        tenant: Option<&TenantId>,
        id: &ChallengeId,
    ) -> Result<Result<View, TenantId>, Lookup> {
        let found = match self.live.get(id) {
            Some(live) => Ok(live.view.load_full()),
            None => Err(self.settled(id).ok_or(Lookup::NotFound)?),
        };
        let owner = match &found {
            Ok(view) => &view.tenant,
            Err(owner) => owner,
        };
        if tenant.is_some_and(|t| t != owner) {
            return Err(Lookup::NotFound);
        }
        Ok(found)
    }

    /// A settled challenge's final view, from the store on a blocking thread.
    async fn load_settled(&self, tenant: TenantId, id: ChallengeId) -> Result<View, Lookup> {
        let store = self.services.store.clone();
        let loaded = tokio::task::spawn_blocking(move || store.load(&tenant, &id))
            .await
            .map_err(|_| Lookup::Unavailable)?;
        match loaded {
            Ok(Some(challenge)) => Ok(Arc::new(challenge)),
            // Retired meanwhile.
            Ok(None) => Err(Lookup::NotFound),
            Err(e) => {
                tracing::error!(error = %e, challenge = %id, "cannot read a settled challenge");
                Err(Lookup::Unavailable)
            }
        }
    }

    /// Whether a challenge has an actor and has not ended.
    pub(super) fn is_live(&self, id: &ChallengeId) -> bool {
        self.live
            .get(id)
            .is_some_and(|live| !live.view.load().life.state.is_terminal())
    }

    /// The actor and last durable state of a challenge that has an actor.
    pub(super) fn live_entry(&self, id: &ChallengeId) -> Option<(Addr<ChallengeActor>, View)> {
        self.live
            .get(id)
            .map(|live| (live.addr.clone(), live.view.load_full()))
    }

    /// The tenant of a settled challenge.
    pub(super) fn settled(&self, id: &ChallengeId) -> Option<TenantId> {
        self.settled.get(id).map(|tenant| tenant.clone())
    }

    /// Forgets a challenge's actor: it has ended, its final snapshot is durable, and the
    /// actor is stopping.
    /// Settled before it leaves the live map, so that a lookup that misses one map
    /// finds it in the other.
    pub(super) fn settle(&self, view: &Challenge) {
        self.index_factor(view);
        if self.settled.insert(view.id, view.tenant.clone()).is_none() {
            metrics::gauge!(m::SETTLED).increment(1.0);
        }
        self.live.remove(&view.id);
    }

    /// Indexes a push challenge (or one with a push method) under its factors (again is
    /// harmless).
    fn index_factor(&self, challenge: &Challenge) {
        if !challenge.offers(ChallengeType::Push) {
            return;
        }
        for factor in challenge.factors() {
            self.by_factor
                .entry(factor)
                .or_default()
                .insert(challenge.id);
        }
    }

    /// Takes a retired push challenge out of its factor's index.
    pub(super) fn unindex_factor(&self, challenge: &Challenge) {
        for factor in challenge.factors() {
            if let dashmap::mapref::entry::Entry::Occupied(mut ids) = self.by_factor.entry(factor) {
                ids.get_mut().remove(&challenge.id);
                if ids.get().is_empty() {
                    ids.remove();
                }
            }
        }
    }

    pub(super) fn forget(&self, id: &ChallengeId) {
        if self.settled.remove(id).is_some() {
            metrics::gauge!(m::SETTLED).decrement(1.0);
        }
    }

    /// Creates a challenge through its tenant's supervisor; with `one_active_per_user`,
    /// the user's older live challenges from the same policy are cancelled.
    pub async fn create(
        self: &Arc<Self>,
        challenge: Challenge,
        one_active_per_user: bool,
        prepared: Option<crate::challenge::kinds::delivered::Prepared>,
        announce: Option<crate::store::WebhookEvent>,
    ) -> Result<Spawned, SpawnError> {
        let tenant = self.tenant(&challenge.tenant);
        tenant
            .supervisor
            .send(Spawn {
                challenge,
                one_active_per_user,
                prepared,
                announce,
            })
            .await
            .map_err(|e| SpawnError::Store(e.to_string()))?
    }

    /// Sends `msg` to the challenge's actor. `tenant: None` is an anonymous caller, who
    /// may reach any challenge; otherwise the challenge must be that tenant's. A settled
    /// challenge answers from its final view; a dead actor is revived from its last
    /// durable state and the message sent again, once.
    pub async fn send<M>(
        self: &Arc<Self>,
        tenant: Option<&TenantId>,
        id: &ChallengeId,
        msg: M,
    ) -> Result<M::Result, Lookup>
    where
        M: Message + Settled + Clone + Send + 'static,
        M::Result: Send,
        ChallengeActor: Handler<M>,
        <ChallengeActor as Actor>::Context: ToEnvelope<ChallengeActor, M>,
    {
        let (owner, target) = match self.live.get(id) {
            Some(live) => (live.view.load().tenant.clone(), Some(live.addr.clone())),
            None => (self.settled(id).ok_or(Lookup::NotFound)?, None),
        };
        if tenant.is_some_and(|t| *t != owner) {
            return Err(Lookup::NotFound);
        }
        let Some(addr) = target else {
            let view = self.load_settled(owner, *id).await?;
            return Ok(msg.settled(&view));
        };
        match addr.send(msg.clone()).await {
            Ok(reply) => Ok(reply),
            Err(MailboxError::Closed) => {
                // Settled meanwhile (the view is handed over before the actor stops), or
                // died.
                let supervisor = self.tenant(&owner).supervisor.clone();
                let revived = supervisor
                    .send(Revive { id: *id })
                    .await
                    .map_err(|_| Lookup::Unavailable)?;
                match revived {
                    Some(addr) => addr.send(msg).await.map_err(|_| Lookup::Unavailable),
                    None => {
                        let owner = self.settled(id).ok_or(Lookup::NotFound)?;
                        let view = self.load_settled(owner, *id).await?;
                        Ok(msg.settled(&view))
                    }
                }
            }
            Err(MailboxError::Timeout) => Err(Lookup::Unavailable),
        }
    }

    /// One page of a tenant's challenges in id order. The ids come from the store (off
    /// the async threads); each challenge is shown as its last durable state, so a write
    /// that is not yet acknowledged never shows, and one being created not at all. At
    /// most `limits.list_scan_budget` challenges are examined: when the budget runs out
    /// the page may be short (or empty), and the token resumes after the last examined.
    pub async fn list(
        self: &Arc<Self>,
        tenant: TenantId,
        after: Option<ChallengeId>,
        filter: ListFilter,
        limit: usize,
    ) -> Result<(Vec<Challenge>, Option<ChallengeId>), StoreError> {
        let registry = self.clone();
        tokio::task::spawn_blocking(move || {
            let ids = registry.services.store.ids(&tenant, after.as_ref());
            let budget = registry.services.limits.list_scan_budget;
            registry.page(&tenant, ids, budget, &filter, limit)
        })
        .await
        .map_err(|e| StoreError::Io(std::io::Error::other(e)))?
    }

    /// One page of the push challenges a factor answers, in id order after `after`: read
    /// from the factor's index, so a device's list costs what it holds, not what its
    /// tenant holds. Shown as [`Registry::list`] shows them.
    pub async fn list_for_factor(
        self: &Arc<Self>,
        tenant: TenantId,
        factor: FactorId,
        after: Option<ChallengeId>,
        filter: ListFilter,
        limit: usize,
    ) -> Result<(Vec<Challenge>, Option<ChallengeId>), StoreError> {
        let ids: Vec<ChallengeId> = self.by_factor.get(&factor).map_or_else(Vec::new, |ids| {
            let from = after.map_or(Bound::Unbounded, Bound::Excluded);
            ids.range((from, Bound::Unbounded)).copied().collect()
        });
        let registry = self.clone();
        tokio::task::spawn_blocking(move || {
            let ids = ids.into_iter().map(Ok);
            registry.page(&tenant, ids, usize::MAX, &filter, limit)
        })
        .await
        .map_err(|e| StoreError::Io(std::io::Error::other(e)))?
    }

    /// Up to `limit` of `ids` (in id order) that `filter` takes, examining at most
    /// `budget`; the token to resume after, if there may be more. Blocking.
    fn page(
        &self,
        tenant: &TenantId,
        ids: impl Iterator<Item = Result<ChallengeId, StoreError>>,
        budget: usize,
        filter: &ListFilter,
        limit: usize,
    ) -> Result<(Vec<Challenge>, Option<ChallengeId>), StoreError> {
        let mut page = Vec::with_capacity(limit.min(1024));
        let now = self.services.clock.now_ms();
        let mut examined = None;
        for (n, id) in ids.enumerate() {
            let id = id?;
            if n == budget {
                return Ok((page, examined));
            }
            examined = Some(id);
            let Some(view) = self.listed(tenant, &id, now)? else {
                continue;
            };
            if !filter.matches(&view) {
                continue;
            }
            if page.len() == limit {
                let last = page.last().map(|c: &Challenge| c.id);
                return Ok((page, last));
            }
            page.push((*view).clone());
        }
        Ok((page, None))
    }

    /// A challenge as a list shows it: a live one's published view as of `now`, a settled
    /// one's final snapshot; `None` for one being created or retired meanwhile. Blocking.
    fn listed(
        &self,
        tenant: &TenantId,
        id: &ChallengeId,
        now: crate::clock::Millis,
    ) -> Result<Option<View>, StoreError> {
        Ok(match self.published(Some(tenant), id) {
            Ok(Ok(view)) => Some(as_of(view, now)),
            // Settled: its snapshot is its final, durable view.
            Ok(Err(_)) => self.services.store.load(tenant, id)?.map(Arc::new),
            Err(_) => None,
        })
    }

    /// Restores every challenge from its snapshot: live ones with their remaining TTL
    /// (those whose TTL ran out while down become `expired`), ended ones as settled views
    /// for the rest of their retention (an actor only where an action is still to run);
    /// then flushes and reports ready.
    pub fn restore(self: &Arc<Self>) -> Result<RestoreReport, StoreError> {
        let started = Instant::now();
        let store = &self.services.store;
        let now = self.services.clock.now_ms();
        let mut report = RestoreReport::default();
        let mut retained: std::collections::HashMap<TenantId, Vec<(i64, ChallengeId)>> =
            Default::default();
        for snapshot in store.scan() {
            let mut challenge = snapshot?;
            let pending_action = challenge
                .actions()
                .and_then(crate::challenge::kinds::action::next_pending)
                .is_some();
            match challenge.delete_at() {
                Some(at) if at <= now && !pending_action => {
                    store.delete(&challenge.tenant, &challenge.id)?;
                    report.deleted += 1;
                    continue;
                }
                Some(_) => report.retained += 1,
                None => {
                    let t = state::apply(challenge.life, Event::Expire, now);
                    if t.effects.changed {
                        challenge.life = t.life;
                        store.put(&challenge)?;
                        report.expired_while_down += 1;
                        report.retained += 1;
                        metrics::counter!(m::EXPIRED, "type" => challenge.kind.as_str())
                            .increment(1);
                    } else {
                        report.live += 1;
                    }
                }
            }
            let tenant = self.tenant(&challenge.tenant);
            let terminal = challenge.life.state.is_terminal();
            if terminal {
                tenant.keep();
            } else {
                tenant.take_slot();
            }
            if let Some(idem) = challenge.idempotency() {
                tenant.supervisor.do_send(Remember {
                    key: idem.key.clone(),
                    id: challenge.id,
                    request_hash: idem.request_hash,
                });
            }
            let live_from_policy = challenge.policy().is_some() && !terminal;
            let supervisor = tenant.supervisor.clone();
            let view = Arc::new(challenge);
            if terminal && !pending_action {
                retained
                    .entry(view.tenant.clone())
                    .or_default()
                    .push((view.delete_at().unwrap_or(now), view.id));
                self.settle(&view);
                continue;
            }
            self.start_actor(view.clone(), tenant);
            if live_from_policy {
                supervisor.do_send(RememberPolicyUse(view));
            }
        }
        for (tenant, due) in retained {
            self.tenant(&tenant).supervisor.do_send(RetainRestored(due));
        }
        store.flush_blocking()?;
        metrics::gauge!(m::LIVE).set(report.live as f64);
        metrics::gauge!(m::RESTORE_SECONDS).set(started.elapsed().as_secs_f64());
        self.ready.store(true, Ordering::Release);
        Ok(report)
    }

    /// Stops the actor threads (shutdown).
    pub fn stop(&self) {
        if self.dedicated {
            for arbiter in self.arbiters.read().expect("arbiters lock").iter() {
                arbiter.stop();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::challenge::kinds::token::{self, Attempt};
    use crate::challenge::messages::{Answer, Cancel, ChallengeError, Complete, Crash, Get};
    use crate::challenge::state::Refusal;
    use crate::challenge::{HashKey, Services};
    use crate::clock::SystemClock;
    use crate::config::Settings;
    use crate::model::{Lifecycle, State};
    use crate::store::SnapshotStore;

    fn services(dir: &std::path::Path) -> Arc<Services> {
        let mut settings = Settings::development();
        settings.storage.data_dir = dir.to_path_buf();
        let store = SnapshotStore::open(dir, 1 << 20).unwrap();
        let key = HashKey::new([1; 32]);
        Arc::new(Services::build(&settings, store, Arc::new(SystemClock), key).unwrap())
    }

    fn attempt(token: crate::model::AnswerToken) -> Attempt {
        Attempt {
            token: Some(token),
            code: None,
            actor_id: None,
            allowed: true,
            on_behalf: false,
            device: None,
            credential: None,
            method: None,
        }
    }

    /// Polls `check` until it holds, for at most five seconds.
    async fn eventually(mut check: impl FnMut() -> bool) {
        let started = Instant::now();
        while !check() {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(5),
                "condition not reached"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    fn challenge(services: &Services, tenant: &TenantId) -> (Challenge, crate::model::AnswerToken) {
        let (actors, mut tokens) = token::issue(&services.key, &["u-1".into()]);
        let now = services.clock.now_ms();
        let c = Challenge {
            id: ChallengeId::random(),
            tenant: tenant.clone(),
            kind: crate::model::ChallengeType::Token,
            user_id: "u-1".into(),
            actors,
            created_at: now,
            life: Lifecycle::issued(now, now + 60_000, 3),
            retention_ms: 60_000,
            extras: None,
        };
        (c, tokens.remove(0))
    }

    #[actix_rt::test]
    async fn a_dead_challenge_actor_is_restored_from_its_last_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let services = services(dir.path());
        let registry = Registry::new(services.clone(), 1);
        registry.restore().unwrap();
        let tenant = TenantId::parse("acme").unwrap();
        let (c, answer_token) = challenge(&services, &tenant);
        let id = c.id;
        assert!(matches!(
            registry.create(c, false, None, None).await,
            Ok(Spawned::New(_))
        ));
        let attempt = Attempt {
            token: Some(answer_token),
            code: None,
            actor_id: None,
            allowed: true,
            on_behalf: false,
            device: None,
            credential: None,
            method: None,
        };
        let answered = registry
            .send(Some(&tenant), &id, Answer(attempt.clone()))
            .await
            .unwrap();
        assert_eq!(answered.unwrap().life.state, State::Verified);

        let dead = registry.live_entry(&id).unwrap().0;
        registry.send(Some(&tenant), &id, Crash).await.unwrap();
        while dead.connected() {
            tokio::task::yield_now().await;
        }

        let view = registry.send(Some(&tenant), &id, Get).await.unwrap();
        assert_eq!(
            view.life.state,
            State::Verified,
            "restored from the snapshot"
        );
        let revived = registry.live_entry(&id).unwrap().0;
        assert!(revived.connected());
        let again = registry
            .send(Some(&tenant), &id, Answer(attempt))
            .await
            .unwrap();
        assert_eq!(
            again.unwrap_err(),
            ChallengeError::Refused(Refusal::AlreadyAnswered)
        );
        assert_eq!(
            registry.live(&tenant),
            1,
            "a revival takes no second quota slot"
        );
    }

    #[actix_rt::test]
    async fn restore_brings_back_live_challenges_and_expires_overdue_ones() {
        let dir = tempfile::tempdir().unwrap();
        let tenant = TenantId::parse("acme").unwrap();
        let services = services(dir.path());
        let (live, _) = challenge(&services, &tenant);
        let (mut overdue, _) = challenge(&services, &tenant);
        overdue.life.expires_at = services.clock.now_ms() - 1;
        let (mut gone, _) = challenge(&services, &tenant);
        gone.life.state = State::Cancelled;
        gone.life.updated_at -= 120_000;
        for c in [&live, &overdue, &gone] {
            services.store.put(c).unwrap();
        }
        let registry = Registry::new(services.clone(), 2);
        assert!(!registry.is_ready());
        let restored_terminal = overdue.id;
        let report = registry.restore().unwrap();
        assert_eq!(
            report,
            RestoreReport {
                live: 1,
                retained: 1,
                expired_while_down: 1,
                deleted: 1
            }
        );
        assert!(registry.is_ready());
        assert_eq!(registry.live(&tenant), 1);
        let view = registry
            .send(Some(&tenant), &overdue.id, Get)
            .await
            .unwrap();
        assert_eq!(view.life.state, State::Expired);
        assert!(
            registry.live_entry(&restored_terminal).is_none(),
            "an ended challenge is restored without an actor"
        );
        assert_eq!(
            registry
                .send(Some(&tenant), &gone.id, Get)
                .await
                .unwrap_err(),
            Lookup::NotFound
        );
        assert!(services.store.load(&tenant, &gone.id).unwrap().is_none());
        let other = TenantId::parse("globex").unwrap();
        assert_eq!(
            registry
                .send(Some(&other), &live.id, Get)
                .await
                .unwrap_err(),
            Lookup::NotFound
        );
    }

    #[actix_rt::test]
    async fn a_failed_flush_changes_nothing_and_keeps_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let services = services(dir.path());
        let registry = Registry::new(services.clone(), 1);
        registry.restore().unwrap();
        let tenant = TenantId::parse("acme").unwrap();
        let (mut c, answer_token) = challenge(&services, &tenant);
        c.extras = crate::model::Extras {
            callback_url: Some("https://hooks.example/challenges".into()),
            ..Default::default()
        }
        .boxed();
        let (mut soon, _) = challenge(&services, &tenant);
        soon.life.expires_at = services.clock.now_ms() + 300;
        let (id, soon_id) = (c.id, soon.id);
        for c in [c, soon] {
            assert!(matches!(
                registry.create(c, false, None, None).await,
                Ok(Spawned::New(_))
            ));
        }

        services.store.inject_failure();
        let refused = registry
            .send(Some(&tenant), &id, Answer(attempt(answer_token.clone())))
            .await
            .unwrap();
        assert!(
            matches!(refused, Err(ChallengeError::Store(_))),
            "{refused:?}"
        );
        assert!(services.store.failure().is_some(), "the failure is kept");
        let view = registry.view(Some(&tenant), &id).await.unwrap();
        assert_eq!(view.life.state, State::Issued, "memory is as before");
        let stored = services.store.load(&tenant, &id).unwrap().unwrap();
        assert_eq!(stored.life.state, State::Issued, "the store is as before");
        assert_eq!(
            services.store.outbox().pending().unwrap(),
            vec![],
            "no webhook for a change that was refused"
        );
        let again = registry
            .send(Some(&tenant), &id, Answer(attempt(answer_token)))
            .await
            .unwrap();
        assert!(
            matches!(again, Err(ChallengeError::Store(_))),
            "still refused, not verified"
        );

        let (c, _) = challenge(&services, &tenant);
        let new_id = c.id;
        let announce = services.outbox.event(
            &tenant,
            new_id,
            "https://push.example/notify",
            serde_json::json!({"id": new_id.to_string()}),
        );
        assert_eq!(
            registry.create(c, false, None, Some(announce)).await.err(),
            Some(SpawnError::Store("storage: injected flush failure".into()))
        );
        assert_eq!(
            services.store.outbox().pending().unwrap(),
            vec![],
            "no push notification for a create that was refused"
        );
        assert_eq!(
            registry.view(Some(&tenant), &new_id).await.unwrap_err(),
            Lookup::NotFound
        );
        assert!(services.store.load(&tenant, &new_id).unwrap().is_none());
        assert_eq!(registry.live(&tenant), 2, "the refused create took no slot");
        assert_eq!(registry.stored(&tenant), 2);

        // An expiry that cannot be made durable still shows to every reader.
        let due = services.clock.now_ms() + 350;
        eventually(|| services.clock.now_ms() > due).await;
        let view = registry.view(Some(&tenant), &soon_id).await.unwrap();
        assert_eq!(view.life.state, State::Expired);
        assert_eq!(view.life.updated_at, view.life.expires_at);
        let got = registry.send(Some(&tenant), &soon_id, Get).await.unwrap();
        assert_eq!(got.life.state, State::Expired);
    }

    #[actix_rt::test]
    async fn an_ended_challenge_leaves_its_actor_and_is_deleted_after_retention() {
        let dir = tempfile::tempdir().unwrap();
        let services = services(dir.path());
        let registry = Registry::new(services.clone(), 1);
        registry.restore().unwrap();
        let tenant = TenantId::parse("acme").unwrap();
        let (mut c, answer_token) = challenge(&services, &tenant);
        c.retention_ms = 400;
        let id = c.id;
        assert!(matches!(
            registry.create(c, false, None, None).await,
            Ok(Spawned::New(_))
        ));
        let cancelled = registry
            .send(Some(&tenant), &id, Cancel)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(cancelled.life.state, State::Cancelled);

        eventually(|| registry.live_entry(&id).is_none()).await;
        assert_eq!(registry.live(&tenant), 0);
        assert_eq!(
            registry.stored(&tenant),
            1,
            "kept, and counted, until retention ends"
        );
        let view = registry.view(Some(&tenant), &id).await.unwrap();
        assert_eq!(view.life.state, State::Cancelled);
        let answered = registry
            .send(Some(&tenant), &id, Answer(attempt(answer_token)))
            .await
            .unwrap();
        assert_eq!(
            answered.unwrap_err(),
            ChallengeError::Refused(Refusal::Cancelled)
        );
        let completed = registry.send(Some(&tenant), &id, Complete).await.unwrap();
        assert_eq!(
            completed.unwrap_err(),
            ChallengeError::Refused(Refusal::NotCompletable(State::Cancelled))
        );
        let other = TenantId::parse("globex").unwrap();
        assert_eq!(
            registry.view(Some(&other), &id).await.unwrap_err(),
            Lookup::NotFound
        );

        loop {
            if registry.view(None, &id).await.is_err() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert!(services.store.load(&tenant, &id).unwrap().is_none());
        assert_eq!(registry.stored(&tenant), 0);
        assert_eq!(
            registry.send(Some(&tenant), &id, Get).await.unwrap_err(),
            Lookup::NotFound
        );
    }
}
