//! The per-recipient daily caps: however many challenges ask, one email address or phone
//! number gets at most `delivery.per_recipient_daily_cap_per_tenant` messages per UTC day
//! from one tenant, and at most `delivery.per_recipient_daily_cap` from all tenants
//! together — so the service cannot be used to flood someone's inbox or phone, and one
//! tenant cannot use up a recipient's day for the others.
//!
//! Addresses are counted normalized ([`normalize`]: case, surrounding space, and an
//! email's `+tag`), so `Victim+1@Example.com` and `victim@example.com` share one count.
//! Counted in memory, keyed by a hash (no address is kept); a restart starts the day's
//! counts over.
//!
//! A create takes its sends as a [`Reservation`] before the challenge is spawned and
//! gives it back ([`RecipientCap::refund`]) if the create does not happen — a quota
//! refusal, an idempotent replay, a store failure — so only created challenges count.

use dashmap::DashMap;
use sha2::{Digest, Sha256};

use crate::clock::Millis;
use crate::model::TenantId;

pub struct RecipientCap {
    global_per_day: u32,
    tenant_per_day: u32,
    counts: DashMap<[u8; 32], (i64, u32)>,
}

/// Sends taken for one day; hand it back with [`RecipientCap::refund`] if they do not
/// happen.
#[must_use = "refund the reservation if the sends do not happen"]
pub struct Reservation {
    day: i64,
    keys: Vec<[u8; 32]>,
}

/// The form of a recipient the caps count: trimmed and lower-cased; for an email
/// address, without a `+tag` in its local part (`a+x@b` → `a@b`).
pub fn normalize(recipient: &str) -> String {
    let lower = recipient.trim().to_lowercase();
    match lower.rsplit_once('@') {
        Some((local, domain)) => {
            let local = local.split_once('+').map_or(local, |(base, _)| base);
            format!("{local}@{domain}")
        }
        None => lower,
    }
}

impl RecipientCap {
    /// `0` turns a cap off.
    pub fn new(global_per_day: u32, tenant_per_day: u32) -> Self {
        RecipientCap {
            global_per_day,
            tenant_per_day,
            counts: DashMap::new(),
        }
    }

    /// Takes one send today for each of `recipients` (of `tenant`), under both caps; all
    /// or nothing: `None` (and nothing taken) if any would pass a cap.
    pub fn take<'a>(
        &self,
        tenant: &TenantId,
        recipients: impl IntoIterator<Item = &'a str>,
        now: Millis,
    ) -> Option<Reservation> {
        let day = now.div_euclid(86_400_000);
        if self.counts.len() > 1_000_000 {
            self.counts.retain(|_, (d, _)| *d == day);
        }
        let mut taken = Reservation {
            day,
            keys: Vec::new(),
        };
        for recipient in recipients {
            let normalized = normalize(recipient);
            let global = Sha256::digest(normalized.as_bytes()).into();
            let mut per_tenant = Sha256::new();
            per_tenant.update(tenant.as_str().as_bytes());
            per_tenant.update([0]);
            per_tenant.update(normalized.as_bytes());
            for (key, cap) in [
                (global, self.global_per_day),
                (per_tenant.finalize().into(), self.tenant_per_day),
            ] {
                if cap == 0 {
                    continue;
                }
                let mut entry = self.counts.entry(key).or_insert((day, 0));
                if entry.0 != day {
                    *entry = (day, 0);
                }
                if entry.1 >= cap {
                    drop(entry);
                    self.refund(taken);
                    return None;
                }
                entry.1 += 1;
                taken.keys.push(key);
            }
        }
        Some(taken)
    }

    /// Gives back the sends of `reservation` (that day's, if it is still that day).
    pub fn refund(&self, reservation: Reservation) {
        for key in reservation.keys {
            if let Some(mut entry) = self.counts.get_mut(&key) {
                if entry.0 == reservation.day {
                    entry.1 = entry.1.saturating_sub(1);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(name: &str) -> TenantId {
        TenantId::parse(name).unwrap()
    }

    #[test]
    fn a_recipient_gets_at_most_the_cap_per_day() {
        let cap = RecipientCap::new(2, 0);
        let acme = tenant("acme");
        let day = 20_000 * 86_400_000;
        assert!(cap.take(&acme, ["A@example.com"], day).is_some());
        assert!(cap.take(&acme, ["a+promo@example.com "], day + 1).is_some());
        assert!(cap.take(&acme, ["a@example.com"], day + 2).is_none());
        assert!(cap.take(&acme, ["b@example.com"], day + 2).is_some());
        assert!(
            cap.take(&acme, ["a@example.com"], day + 86_400_000)
                .is_some(),
            "a new day starts over"
        );
        assert!(RecipientCap::new(0, 0).take(&acme, ["x"], day).is_some());
    }

    #[test]
    fn each_tenant_has_its_own_count_under_the_global_one() {
        let cap = RecipientCap::new(3, 2);
        let (acme, globex) = (tenant("acme"), tenant("globex"));
        let day = 20_000 * 86_400_000;
        for _ in 0..2 {
            assert!(cap.take(&acme, ["v@example.com"], day).is_some());
        }
        assert!(
            cap.take(&acme, ["v@example.com"], day).is_none(),
            "acme's cap"
        );
        assert!(cap.take(&globex, ["v@example.com"], day).is_some());
        assert!(
            cap.take(&globex, ["v@example.com"], day).is_none(),
            "the global cap"
        );
    }

    #[test]
    fn a_refused_or_refunded_take_leaves_nothing_taken() {
        let cap = RecipientCap::new(1, 0);
        let acme = tenant("acme");
        let day = 20_000 * 86_400_000;
        let first = cap.take(&acme, ["a@example.com"], day).unwrap();
        // All or nothing: b is not taken because a is at its cap.
        assert!(cap
            .take(&acme, ["b@example.com", "a@example.com"], day)
            .is_none());
        assert!(cap.take(&acme, ["b@example.com"], day).is_some());
        cap.refund(first);
        assert!(cap.take(&acme, ["A@Example.com"], day).is_some());
    }

    #[test]
    fn addresses_are_normalized() {
        assert_eq!(normalize(" Victim+1@Example.COM "), "victim@example.com");
        assert_eq!(normalize("a+b+c@x.org"), "a@x.org");
        assert_eq!(normalize("+15551234567"), "+15551234567");
    }
}
