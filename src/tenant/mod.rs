//! Tenants: a `TenantSupervisor` per tenant spawns, restores and retires that tenant's
//! challenge actors and enforces its rules (live-challenge quota, idempotency keys); the
//! `Registry` finds a challenge's actor in one hop.

pub mod registry;
pub mod supervisor;

use std::sync::atomic::{AtomicU64, Ordering};

use actix::Addr;

use crate::model::TenantId;
pub use registry::{Lookup, Registry, RestoreReport};
pub use supervisor::TenantSupervisor;

/// What a tenant's challenge actors share: its name, its live count, its supervisor.
pub struct Tenant {
    pub id: TenantId,
    live: AtomicU64,
    pub supervisor: Addr<TenantSupervisor>,
}

impl Tenant {
    /// Challenges of this tenant in `issued` or `verified`.
    pub fn live(&self) -> u64 {
        self.live.load(Ordering::Relaxed)
    }
    fn take_slot(&self) {
        self.live.fetch_add(1, Ordering::Relaxed);
    }
    /// Called by a challenge actor when its challenge ends.
    pub fn release_slot(&self) {
        self.live.fetch_sub(1, Ordering::Relaxed);
    }
}
