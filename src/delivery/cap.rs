//! The per-recipient daily cap: however many challenges and tenants ask, one email
//! address or phone number gets at most `delivery.per_recipient_daily_cap` messages per
//! UTC day — so the service cannot be used to flood someone's inbox or phone. Counted in
//! memory (keyed by a hash of the normalized recipient, so no address is kept); a restart
//! starts the day's counts over.

use dashmap::DashMap;
use sha2::{Digest, Sha256};

use crate::clock::Millis;

pub struct RecipientCap {
    per_day: u32,
    counts: DashMap<[u8; 32], (i64, u32)>,
}

impl RecipientCap {
    pub fn new(per_day: u32) -> Self {
        RecipientCap {
            per_day,
            counts: DashMap::new(),
        }
    }

    /// Takes one send for `recipient` today; false (and nothing taken) at the cap.
    pub fn take(&self, recipient: &str, now: Millis) -> bool {
        if self.per_day == 0 {
            return true;
        }
        let day = now.div_euclid(86_400_000);
        if self.counts.len() > 1_000_000 {
            self.counts.retain(|_, (d, _)| *d == day);
        }
        let key: [u8; 32] = Sha256::digest(recipient.trim().to_lowercase().as_bytes()).into();
        let mut entry = self.counts.entry(key).or_insert((day, 0));
        if entry.0 != day {
            *entry = (day, 0);
        }
        if entry.1 >= self.per_day {
            return false;
        }
        entry.1 += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recipient_gets_at_most_the_cap_per_day() {
        let cap = RecipientCap::new(2);
        let day = 20_000 * 86_400_000;
        assert!(cap.take("A@example.com", day));
        assert!(cap.take("a@example.com ", day + 1));
        assert!(!cap.take("a@example.com", day + 2));
        assert!(cap.take("b@example.com", day + 2));
        assert!(
            cap.take("a@example.com", day + 86_400_000),
            "a new day starts over"
        );
        assert!(RecipientCap::new(0).take("x", day));
    }
}
