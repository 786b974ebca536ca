//! Tenants: a `TenantSupervisor` per tenant spawns, restores and retires that tenant's
//! challenge actors and enforces its rules (live-challenge quota, idempotency keys, one
//! active challenge per user and policy); the `Registry` finds a challenge's actor in one
//! hop. Each tenant's runtime configuration is held here, so a change applies to the
//! next request without a restart.

pub mod registry;
pub mod supervisor;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix::Addr;
use arc_swap::ArcSwap;

use crate::model::{TenantConfig, TenantId};
pub use registry::{Lookup, Registry, RestoreReport};
pub use supervisor::TenantSupervisor;

/// What a tenant's challenge actors share: its name, its live count, its supervisor,
/// its configuration in effect.
pub struct Tenant {
    pub id: TenantId,
    live: AtomicU64,
    /// Challenges of this tenant kept at all: live ones and settled ones not yet retired.
    stored: AtomicU64,
    pub supervisor: Addr<TenantSupervisor>,
    config: ArcSwap<TenantConfig>,
}

impl Tenant {
    /// Challenges of this tenant in `issued` or `verified`.
    pub fn live(&self) -> u64 {
        self.live.load(Ordering::Relaxed)
    }
    /// Challenges of this tenant kept, live or settled.
    pub fn stored(&self) -> u64 {
        self.stored.load(Ordering::Relaxed)
    }
    /// A new (or restored) challenge: one more live and one more kept.
    fn take_slot(&self) {
        self.live.fetch_add(1, Ordering::Relaxed);
        self.stored.fetch_add(1, Ordering::Relaxed);
    }
    /// A restored challenge that has ended already: kept, not live.
    fn keep(&self) {
        self.stored.fetch_add(1, Ordering::Relaxed);
    }
    /// A kept challenge was deleted (retired, or its create rolled back).
    fn forget(&self) {
        self.stored.fetch_sub(1, Ordering::Relaxed);
    }
    /// Called by a challenge actor when its challenge ends.
    pub fn release_slot(&self) {
        self.live.fetch_sub(1, Ordering::Relaxed);
    }
    /// The configuration in effect.
    pub fn config(&self) -> Arc<TenantConfig> {
        self.config.load_full()
    }
    /// Puts a configuration that was made durable into effect, unless a newer one is in
    /// effect already (two writers may finish in either order).
    pub fn set_config(&self, config: TenantConfig) {
        let config = Arc::new(config);
        self.config.rcu(|current| {
            if current.version < config.version {
                config.clone()
            } else {
                current.clone()
            }
        });
    }
}
