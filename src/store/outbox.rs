//! `OutboxStore`: webhook deliveries that are not done yet (the `outbox` tree, keyed by
//! event id) and those that gave up after their last attempt (the `dead_letters` tree,
//! keyed by the time they gave up, then the event id, so the oldest go first when the
//! kept number is reached). A value is one format byte, then the record as JSON.
//!
//! An event is written with the snapshot of the change it reports, before the same
//! flush, so a change that is durable always has its webhook on disk; attempts and
//! deletions are written without waiting for a flush (a crash may repeat a delivery,
//! never lose one: receivers dedupe on the event id).

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::clock::Millis;
use crate::model::{ChallengeId, EventId, TenantId};

const FORMAT_VERSION: u8 = 1;

/// One webhook delivery: what to POST where, and how far it got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookEvent {
    pub id: EventId,
    pub tenant: TenantId,
    pub challenge: ChallengeId,
    pub url: String,
    /// The JSON body, exactly as every attempt sends it.
    pub body: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due.
    pub next_attempt_at: Millis,
    /// How the body is sent and signed; records written before it existed are JSON.
    #[serde(default, skip_serializing_if = "EventFormat::is_json")]
    pub format: EventFormat,
}

/// How a webhook's body is sent and signed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventFormat {
    /// JSON, signed with the tenant's webhook secret (`X-Challenge-Signature`).
    #[default]
    Json,
    /// A form body signed as Twilio signs its webhooks (`X-Twilio-Signature`), with the
    /// auth token of the configured account (never stored here).
    TwilioForm { account_sid: String },
}

impl EventFormat {
    pub fn is_json(&self) -> bool {
        *self == EventFormat::Json
    }
}

/// A delivery that gave up, with why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub event: WebhookEvent,
    pub error: String,
    pub dead_at: Millis,
}

pub struct OutboxStore {
    pending: super::Tree,
    dead: super::Tree,
    /// Dead letters on disk (counted once at open).
    dead_count: AtomicU64,
    /// Dead letters kept at most; the oldest go first.
    dead_kept: u64,
}

impl OutboxStore {
    pub(super) fn new(pending: super::Tree, dead: super::Tree) -> Self {
        let dead_count = AtomicU64::new(dead.len() as u64);
        OutboxStore {
            pending,
            dead,
            dead_count,
            dead_kept: DEAD_LETTERS_KEPT,
        }
    }

    /// Writes an event (new, or with its attempts advanced).
    pub fn put(&self, event: &WebhookEvent) -> Result<(), StoreError> {
        self.pending.insert(event.id.as_bytes(), encode(event))?;
        Ok(())
    }

    /// Forgets an event: delivered, or its change was refused.
    pub fn remove(&self, id: &EventId) -> Result<(), StoreError> {
        self.pending.remove(id.as_bytes())?;
        Ok(())
    }

    /// Every pending event, for the resume at start.
    pub fn pending(&self) -> Result<Vec<WebhookEvent>, StoreError> {
        self.pending.iter().values().map(|v| decode(&v?)).collect()
    }

    /// Moves an event that gave up to the dead letters, dropping the oldest beyond the
    /// kept number.
    pub fn bury(&self, letter: &DeadLetter) -> Result<(), StoreError> {
        let mut key = Vec::with_capacity(24);
        key.extend_from_slice(&letter.dead_at.to_be_bytes());
        key.extend_from_slice(letter.event.id.as_bytes());
        if self.dead.insert(key, encode(letter))?.is_none() {
            self.dead_count.fetch_add(1, Ordering::Relaxed);
        }
        self.pending.remove(letter.event.id.as_bytes())?;
        while self.dead_count.load(Ordering::Relaxed) > self.dead_kept {
            match self.dead.pop_min()? {
                Some(_) => self.dead_count.fetch_sub(1, Ordering::Relaxed),
                None => break,
            };
        }
        Ok(())
    }

    /// Dead letters kept, oldest first.
    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        self.dead.iter().values().map(|v| decode(&v?)).collect()
    }

    /// Dead letters on disk.
    pub fn dead_count(&self) -> u64 {
        self.dead_count.load(Ordering::Relaxed)
    }
}

/// Dead letters kept at most.
const DEAD_LETTERS_KEPT: u64 = 10_000;

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![FORMAT_VERSION];
    serde_json::to_writer(&mut out, value).expect("an outbox record always encodes");
    out
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&FORMAT_VERSION, rest)) => {
            serde_json::from_slice(rest).map_err(|e| StoreError::Format(e.to_string()))
        }
        Some((version, _)) => Err(StoreError::Format(format!(
            "unknown outbox format {version}"
        ))),
        None => Err(StoreError::Format("empty outbox record".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u8) -> WebhookEvent {
        WebhookEvent {
            id: EventId::from_bytes([n; 16]),
            tenant: TenantId::parse("acme").unwrap(),
            challenge: ChallengeId::from_bytes([7; 16]),
            url: "https://hooks.example/c".into(),
            body: format!("{{\"n\":{n}}}"),
            attempts: 0,
            next_attempt_at: 1_000,
            format: EventFormat::Json,
        }
    }

    #[test]
    fn a_record_without_a_format_is_json_and_a_form_round_trips() {
        let mut e = event(1);
        let mut json = serde_json::to_value(&e).unwrap();
        assert!(json.get("format").is_none());
        json.as_object_mut().unwrap().remove("format");
        assert_eq!(serde_json::from_value::<WebhookEvent>(json).unwrap(), e);
        e.format = EventFormat::TwilioForm {
            account_sid: "AC1".into(),
        };
        let text = serde_json::to_string(&e).unwrap();
        assert_eq!(serde_json::from_str::<WebhookEvent>(&text).unwrap(), e);
    }

    fn store(dir: &std::path::Path) -> OutboxStore {
        let db = sled::open(dir).unwrap();
        OutboxStore::new(
            crate::store::Tree::unlogged(db.open_tree("outbox").unwrap()),
            crate::store::Tree::unlogged(db.open_tree("dead_letters").unwrap()),
        )
    }

    #[test]
    fn events_are_kept_until_removed_or_buried() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = store(dir.path());
        let (a, mut b) = (event(1), event(2));
        outbox.put(&a).unwrap();
        outbox.put(&b).unwrap();
        b.attempts = 3;
        outbox.put(&b).unwrap();
        assert_eq!(outbox.pending().unwrap(), vec![a.clone(), b.clone()]);

        outbox.remove(&a.id).unwrap();
        let letter = DeadLetter {
            event: b.clone(),
            error: "answered 503".into(),
            dead_at: 5,
        };
        outbox.bury(&letter).unwrap();
        assert_eq!(outbox.pending().unwrap(), vec![]);
        assert_eq!(outbox.dead_letters().unwrap(), vec![letter]);
        assert_eq!(outbox.dead_count(), 1);
    }

    #[test]
    fn only_the_newest_dead_letters_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = store(dir.path());
        outbox.dead_kept = 2;
        for n in 1..=3 {
            let letter = DeadLetter {
                event: event(n),
                error: String::new(),
                dead_at: Millis::from(n),
            };
            outbox.bury(&letter).unwrap();
        }
        let kept: Vec<u8> = outbox
            .dead_letters()
            .unwrap()
            .iter()
            .map(|l| l.event.id.as_bytes()[0])
            .collect();
        assert_eq!(kept, vec![2, 3]);
        assert_eq!(outbox.dead_count(), 2);
    }
}
