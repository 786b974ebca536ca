//! `FactorStore`: the `factors` tree. A key is `tenant \0 len(user) user factor-id`
//! (the user id's length as two bytes, big-endian, so no user id can run into another),
//! so every key is tenant-prefixed and one user's factors are one range in id order. A
//! value is one format byte, then the bincode encoding of a record owned by this module
//! (see `encoding.rs` for why records are not the model). Secrets are stored only as
//! sealed by the caller. Every change is a compare-and-swap on the stored bytes, so of
//! two writers that read the same record exactly one wins; durable once
//! [`SnapshotStore::durable`](super::SnapshotStore::durable) returns.
//!
//! Push and WebAuthn factors are also found by id alone (a device names only its
//! factor; an enrollment page only its factor and its token): the `factor_ids` tree
//! maps such a factor's id to its key. The index entry is written
//! before the factor and removed after it, so an entry without its factor may exist
//! (and finds nothing), never a push factor without its entry.

use serde::de::DeserializeOwned;

use crate::factors::Factor;
use crate::model::{FactorId, TenantId};

use super::{tenant_prefix, StoreError, WriteError};

/// The current record format.
const FORMAT_VERSION: u8 = 1;

#[derive(Clone)]
pub struct FactorStore {
    tree: super::Tree,
    /// Push factor id → its key in `tree`.
    ids: super::Tree,
}

impl FactorStore {
    pub(super) fn new(tree: super::Tree, ids: super::Tree) -> Self {
        FactorStore { tree, ids }
    }

    /// A push factor, by its id alone.
    pub fn find_push(&self, id: &FactorId) -> Result<Option<Factor>, StoreError> {
        self.find_by_id(id, crate::factors::FactorType::Push)
    }

    /// A factor of `kind` that is indexed by id (push, webauthn), by its id alone.
    pub fn find_by_id(
        &self,
        id: &FactorId,
        kind: crate::factors::FactorType,
    ) -> Result<Option<Factor>, StoreError> {
        let Some(key) = self.ids.get(id.as_bytes())? else {
            return Ok(None);
        };
        self.tree
            .get(key)?
            .map(|bytes| decode(&bytes))
            .transpose()
            .map(|found| found.filter(|f| f.id == *id && f.kind() == kind))
    }

    pub fn get(
        &self,
        tenant: &TenantId,
        user_id: &str,
        id: &FactorId,
    ) -> Result<Option<Factor>, StoreError> {
        self.tree
            .get(key(tenant, user_id, id))?
            .map(|bytes| decode(&bytes))
            .transpose()
    }

    /// Stores a new factor; [`WriteError::Exists`] if its id is taken.
    pub fn insert(&self, factor: &Factor) -> Result<(), WriteError> {
        let key = key(&factor.tenant, &factor.user_id, &factor.id);
        if factor.kind() != crate::factors::FactorType::Totp {
            self.ids
                .compare_and_swap(factor.id.as_bytes(), None::<&[u8]>, Some(key.as_slice()))?
                .map_err(|_| WriteError::Exists)?;
        }
        self.tree
            .compare_and_swap(key, None::<&[u8]>, Some(encode(factor)))?
            .map_err(|_| WriteError::Exists)
    }

    /// Changes a factor by compare-and-swap: `change` sees the stored factor and returns
    /// the next one, or refuses (`Ok(Err(_))`, nothing written). If another writer got
    /// there first, `change` runs again on what it wrote.
    pub fn update<E>(
        &self,
        tenant: &TenantId,
        user_id: &str,
        id: &FactorId,
        mut change: impl FnMut(&Factor) -> Result<Factor, E>,
    ) -> Result<Result<Factor, E>, WriteError> {
        let key = key(tenant, user_id, id);
        loop {
            let Some(stored) = self.tree.get(&key)? else {
                return Err(WriteError::NotFound);
            };
            let next = match change(&decode(&stored)?) {
                Ok(next) => next,
                Err(e) => return Ok(Err(e)),
            };
            if self
                .tree
                .compare_and_swap(&key, Some(stored), Some(encode(&next)))?
                .is_ok()
            {
                return Ok(Ok(next));
            }
        }
    }

    /// Deletes a factor; [`WriteError::NotFound`] if there is none.
    pub fn remove(
        &self,
        tenant: &TenantId,
        user_id: &str,
        id: &FactorId,
    ) -> Result<(), WriteError> {
        match self.tree.remove(key(tenant, user_id, id))? {
            Some(_) => {
                self.ids.remove(id.as_bytes())?;
                Ok(())
            }
            None => Err(WriteError::NotFound),
        }
    }

    /// One page of a user's factors in id order, starting after `after`; returns the page
    /// and the id to continue after, if there are more.
    pub fn list(
        &self,
        tenant: &TenantId,
        user_id: &str,
        after: Option<&FactorId>,
        limit: usize,
    ) -> Result<(Vec<Factor>, Option<FactorId>), StoreError> {
        let prefix = user_prefix(tenant, user_id);
        let mut end = prefix.clone();
        // Every key of the user is the prefix and 16 id bytes: all sort before this.
        end.extend_from_slice(&[0xff; 17]);
        let start = match after {
            Some(id) => {
                let mut k = key(tenant, user_id, id);
                k.push(0);
                k
            }
            None => prefix,
        };
        let mut page = Vec::with_capacity(limit.min(128));
        for item in self.tree.range(start..end) {
            let (_, value) = item?;
            if page.len() == limit {
                let last = page.last().map(|f: &Factor| f.id);
                return Ok((page, last));
            }
            page.push(decode(&value)?);
        }
        Ok((page, None))
    }
}

fn user_prefix(tenant: &TenantId, user_id: &str) -> Vec<u8> {
    let mut k = tenant_prefix(tenant);
    let len = u16::try_from(user_id.len()).expect("user ids are bounded far below 64 KiB");
    k.extend_from_slice(&len.to_be_bytes());
    k.extend_from_slice(user_id.as_bytes());
    k
}

fn key(tenant: &TenantId, user_id: &str, id: &FactorId) -> Vec<u8> {
    let mut k = user_prefix(tenant, user_id);
    k.extend_from_slice(id.as_bytes());
    k
}

fn encode(factor: &Factor) -> Vec<u8> {
    let mut out = vec![FORMAT_VERSION];
    bincode::serialize_into(&mut out, &v1::FactorRecord::from(factor))
        .expect("a factor always encodes");
    out
}

fn decode(bytes: &[u8]) -> Result<Factor, StoreError> {
    match bytes.split_first() {
        Some((&FORMAT_VERSION, rest)) => read::<v1::FactorRecord>(rest)?.try_into(),
        Some((version, _)) => Err(StoreError::Format(format!(
            "unknown factor format {version}"
        ))),
        None => Err(StoreError::Format("empty factor".into())),
    }
}

fn read<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    bincode::deserialize(bytes).map_err(|e| StoreError::Format(e.to_string()))
}

/// Format 1 of a factor. As in `encoding.rs`: field order is the format, and every
/// enum's variants carry their index as an explicit discriminant and keep it for good; a
/// type's data the model gains later is a new variant at the end of [`DataRecord`].
mod v1 {
    use serde::{Deserialize, Serialize};

    use crate::clock::Millis;
    use crate::factors::push::{Platform, PushFactor};
    use crate::factors::totp::{Algorithm, Params};
    use crate::factors::webauthn::{PendingRegistration, StoredCredential, WebauthnFactor};
    use crate::factors::{Factor, FactorData, FactorStatus, TotpFactor};
    use crate::model::{FactorId, TenantId, TokenHash};
    use crate::store::StoreError;

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct FactorRecord {
        pub id: [u8; 16],
        pub tenant: Box<str>,
        pub user_id: Box<str>,
        pub friendly_name: Box<str>,
        pub status: StatusRecord,
        pub created_at: Millis,
        pub updated_at: Millis,
        pub last_used_at: Option<Millis>,
        pub data: DataRecord,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum StatusRecord {
        Unverified = 0,
        Verified = 1,
    }

    /// Variant 0: `Totp`, 1: `Push`, 2: `Webauthn`. New types go after them, in the
    /// order they are added.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub enum DataRecord {
        Totp(TotpRecord),
        Push(PushRecord),
        Webauthn(WebauthnRecord),
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct WebauthnRecord {
        pub relying_party: Box<str>,
        pub registration: Option<RegistrationRecord>,
        pub credential: Option<CredentialRecord>,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct RegistrationRecord {
        /// The creation options sent to the client (not secret).
        pub options: Box<str>,
        /// nonce ‖ AES-256-GCM ciphertext ‖ tag of the ceremony state.
        pub sealed_state: Vec<u8>,
        /// HMAC-SHA256 of the enrollment page's token.
        pub page_token: [u8; 32],
        pub expires_at: Millis,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct CredentialRecord {
        pub id: Vec<u8>,
        /// The relying-party crate's `Passkey`, JSON (public key, counter, flags).
        pub passkey: Box<str>,
        pub counter: u32,
        pub backup_eligible: bool,
        pub backup_state: bool,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct PushRecord {
        /// SPKI DER of the device's P-256 key (public).
        pub public_key: Vec<u8>,
        pub platform: PlatformRecord,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum PlatformRecord {
        Webhook = 0,
        None = 1,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct TotpRecord {
        pub algorithm: AlgorithmRecord,
        pub digits: u8,
        pub period_seconds: u32,
        pub skew_steps: u8,
        /// nonce ‖ AES-256-GCM ciphertext ‖ tag; never the plain seed.
        pub sealed_seed: Vec<u8>,
        pub last_step: Option<u64>,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum AlgorithmRecord {
        Sha1 = 0,
        Sha256 = 1,
        Sha512 = 2,
    }

    impl From<&Factor> for FactorRecord {
        fn from(f: &Factor) -> Self {
            FactorRecord {
                id: *f.id.as_bytes(),
                tenant: f.tenant.as_str().into(),
                user_id: f.user_id.clone(),
                friendly_name: f.friendly_name.clone(),
                status: match f.status {
                    FactorStatus::Unverified => StatusRecord::Unverified,
                    FactorStatus::Verified => StatusRecord::Verified,
                },
                created_at: f.created_at,
                updated_at: f.updated_at,
                last_used_at: f.last_used_at,
                data: match &f.data {
                    FactorData::Totp(t) => DataRecord::Totp(TotpRecord {
                        algorithm: match t.params.algorithm {
                            Algorithm::Sha1 => AlgorithmRecord::Sha1,
                            Algorithm::Sha256 => AlgorithmRecord::Sha256,
                            Algorithm::Sha512 => AlgorithmRecord::Sha512,
                        },
                        digits: t.params.digits,
                        period_seconds: t.params.period_seconds,
                        skew_steps: t.params.skew_steps,
                        sealed_seed: t.sealed_seed.clone(),
                        last_step: t.last_step,
                    }),
                    FactorData::Push(p) => DataRecord::Push(PushRecord {
                        public_key: p.public_key.clone(),
                        platform: match p.platform {
                            Platform::Webhook => PlatformRecord::Webhook,
                            Platform::None => PlatformRecord::None,
                        },
                    }),
                    FactorData::Webauthn(w) => DataRecord::Webauthn(WebauthnRecord {
                        relying_party: w.relying_party.clone(),
                        registration: w.registration.as_ref().map(|r| RegistrationRecord {
                            options: r.options.clone(),
                            sealed_state: r.sealed_state.clone(),
                            page_token: r.page_token.0,
                            expires_at: r.expires_at,
                        }),
                        credential: w.credential.as_ref().map(|c| CredentialRecord {
                            id: c.id.clone(),
                            passkey: c.passkey.clone(),
                            counter: c.counter,
                            backup_eligible: c.backup_eligible,
                            backup_state: c.backup_state,
                        }),
                    }),
                },
            }
        }
    }

    impl TryFrom<FactorRecord> for Factor {
        type Error = StoreError;

        fn try_from(r: FactorRecord) -> Result<Self, StoreError> {
            let tenant = TenantId::parse(&r.tenant)
                .ok_or_else(|| StoreError::Format(format!("invalid tenant {:?}", r.tenant)))?;
            let data = match r.data {
                DataRecord::Totp(t) => {
                    let algorithm = match t.algorithm {
                        AlgorithmRecord::Sha1 => Algorithm::Sha1,
                        AlgorithmRecord::Sha256 => Algorithm::Sha256,
                        AlgorithmRecord::Sha512 => Algorithm::Sha512,
                    };
                    let params = Params::check(
                        algorithm,
                        u32::from(t.digits),
                        t.period_seconds,
                        u32::from(t.skew_steps),
                    )
                    .map_err(|e| StoreError::Format(format!("a stored TOTP factor: {e}")))?;
                    FactorData::Totp(TotpFactor {
                        params,
                        sealed_seed: t.sealed_seed,
                        last_step: t.last_step,
                    })
                }
                DataRecord::Push(p) => FactorData::Push(PushFactor {
                    public_key: p.public_key,
                    platform: match p.platform {
                        PlatformRecord::Webhook => Platform::Webhook,
                        PlatformRecord::None => Platform::None,
                    },
                }),
                DataRecord::Webauthn(w) => FactorData::Webauthn(WebauthnFactor {
                    relying_party: w.relying_party,
                    registration: w.registration.map(|r| PendingRegistration {
                        options: r.options,
                        sealed_state: r.sealed_state,
                        page_token: TokenHash(r.page_token),
                        expires_at: r.expires_at,
                    }),
                    credential: w.credential.map(|c| StoredCredential {
                        id: c.id,
                        passkey: c.passkey,
                        counter: c.counter,
                        backup_eligible: c.backup_eligible,
                        backup_state: c.backup_state,
                    }),
                }),
            };
            Ok(Factor {
                id: FactorId::from_bytes(r.id),
                tenant,
                user_id: r.user_id,
                friendly_name: r.friendly_name,
                status: match r.status {
                    StatusRecord::Unverified => FactorStatus::Unverified,
                    StatusRecord::Verified => FactorStatus::Verified,
                },
                created_at: r.created_at,
                updated_at: r.updated_at,
                last_used_at: r.last_used_at,
                data,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::factors::totp::{Algorithm, Params};
    use crate::factors::{FactorData, FactorStatus, TotpFactor};

    fn store() -> (tempfile::TempDir, FactorStore) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        (
            dir,
            FactorStore::new(
                crate::store::Tree::unlogged(db.open_tree("factors").unwrap()),
                crate::store::Tree::unlogged(db.open_tree("factor_ids").unwrap()),
            ),
        )
    }

    fn factor(tenant: &str, user: &str) -> Factor {
        Factor {
            id: FactorId::random(),
            tenant: TenantId::parse(tenant).unwrap(),
            user_id: user.into(),
            friendly_name: "phone".into(),
            status: FactorStatus::Unverified,
            created_at: 1,
            updated_at: 1,
            last_used_at: None,
            data: FactorData::Totp(TotpFactor {
                params: Params::check(Algorithm::Sha256, 8, 60, 2).unwrap(),
                sealed_seed: vec![1, 2, 3],
                last_step: Some(9),
            }),
        }
    }

    #[test]
    fn a_webauthn_factor_round_trips_and_is_found_by_its_id_alone() {
        use crate::factors::webauthn::{PendingRegistration, StoredCredential, WebauthnFactor};
        use crate::factors::FactorType;
        let (_dir, store) = store();
        let mut f = factor("acme", "alice");
        f.data = FactorData::Webauthn(WebauthnFactor {
            relying_party: "localhost".into(),
            registration: Some(PendingRegistration {
                options: r#"{"publicKey":{}}"#.into(),
                sealed_state: vec![4, 5, 6],
                page_token: crate::model::TokenHash([7; 32]),
                expires_at: 99,
            }),
            credential: Some(StoredCredential {
                id: vec![1, 2],
                passkey: "{}".into(),
                counter: 3,
                backup_eligible: true,
                backup_state: false,
            }),
        });
        store.insert(&f).unwrap();
        assert_eq!(
            store.get(&f.tenant, "alice", &f.id).unwrap(),
            Some(f.clone())
        );
        assert_eq!(
            store.find_by_id(&f.id, FactorType::Webauthn).unwrap(),
            Some(f.clone())
        );
        assert_eq!(store.find_push(&f.id).unwrap(), None);
        store.remove(&f.tenant, "alice", &f.id).unwrap();
        assert_eq!(store.find_by_id(&f.id, FactorType::Webauthn).unwrap(), None);
    }

    #[test]
    fn a_factor_round_trips_and_is_found_only_under_its_tenant_and_user() {
        let (_dir, store) = store();
        let f = factor("acme", "alice");
        store.insert(&f).unwrap();
        assert_eq!(
            store.get(&f.tenant, "alice", &f.id).unwrap(),
            Some(f.clone())
        );
        let globex = TenantId::parse("globex").unwrap();
        assert_eq!(store.get(&globex, "alice", &f.id).unwrap(), None);
        assert_eq!(store.get(&f.tenant, "bob", &f.id).unwrap(), None);
        assert!(matches!(store.insert(&f), Err(WriteError::Exists)));
        store.remove(&f.tenant, "alice", &f.id).unwrap();
        assert!(matches!(
            store.remove(&f.tenant, "alice", &f.id),
            Err(WriteError::NotFound)
        ));
    }

    #[test]
    fn a_list_walks_one_user_of_one_tenant_in_id_order() {
        let (_dir, store) = store();
        let mut mine: Vec<Factor> = (0..3).map(|_| factor("acme", "al")).collect();
        for f in &mine {
            store.insert(f).unwrap();
        }
        // Neighbours whose keys would sort near: a longer user id, another tenant.
        store.insert(&factor("acme", "alice")).unwrap();
        store.insert(&factor("acme2", "al")).unwrap();
        mine.sort_by_key(|f| f.id);
        let tenant = TenantId::parse("acme").unwrap();
        let (page, next) = store.list(&tenant, "al", None, 2).unwrap();
        assert_eq!(page, mine[..2]);
        let (page, next) = store.list(&tenant, "al", next.as_ref(), 2).unwrap();
        assert_eq!(page, mine[2..]);
        assert_eq!(next, None);
    }

    #[test]
    fn a_push_factor_is_found_by_its_id_alone_until_removed() {
        let (_dir, store) = store();
        let mut f = factor("acme", "al");
        f.data = FactorData::Push(crate::factors::push::PushFactor {
            public_key: vec![4, 5, 6],
            platform: crate::factors::push::Platform::Webhook,
        });
        store.insert(&f).unwrap();
        assert_eq!(store.find_push(&f.id).unwrap(), Some(f.clone()));
        // TOTP factors are not indexed.
        let totp = factor("acme", "al");
        store.insert(&totp).unwrap();
        assert_eq!(store.find_push(&totp.id).unwrap(), None);
        store.remove(&f.tenant, "al", &f.id).unwrap();
        assert_eq!(store.find_push(&f.id).unwrap(), None);
    }

    #[test]
    fn an_update_refused_by_its_change_writes_nothing() {
        let (_dir, store) = store();
        let f = factor("acme", "al");
        store.insert(&f).unwrap();
        let refused: Result<Factor, &str> =
            store.update(&f.tenant, "al", &f.id, |_| Err("no")).unwrap();
        assert_eq!(refused, Err("no"));
        let changed = store
            .update(&f.tenant, "al", &f.id, |f| {
                Ok::<_, ()>(Factor {
                    status: FactorStatus::Verified,
                    ..f.clone()
                })
            })
            .unwrap()
            .unwrap();
        assert_eq!(store.get(&f.tenant, "al", &f.id).unwrap(), Some(changed));
    }
}
