//! `SnapshotStore`: the only code that knows sled. One tree of challenge snapshots keyed
//! by `tenant \0 id` (so every key is tenant-prefixed and a tenant's challenges are one
//! range), a `meta` tree with the on-disk format version, the trees of policies and of
//! tenant configurations (`policies.rs`, `configuration.rs`), the webhook outbox
//! (`outbox.rs`), the tree of enrolled factors (`factors.rs`), the vendor faces' records
//! (`records.rs`), and a group commit that makes writes durable in batches through a
//! write-ahead log (`log.rs`).

pub mod configuration;
pub mod encoding;
pub mod factors;
pub mod group_commit;
pub mod log;
pub mod outbox;
pub mod policies;
pub mod records;

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use crate::model::{Challenge, ChallengeId, ChallengeType, State, TenantId};
pub use configuration::ConfigurationStore;
pub use factors::FactorStore;
pub use group_commit::{Checkpoints, GroupCommit};
pub use log::Tree;
pub use outbox::{DeadLetter, EventFormat, OutboxStore, WebhookEvent};
pub use policies::PolicyStore;
pub use records::RecordStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage: {0}")]
    Sled(#[from] sled::Error),
    #[error("storage: {0}")]
    Io(#[from] std::io::Error),
    #[error("storage: snapshot format: {0}")]
    Format(String),
    #[error("storage: the store is closed")]
    Closed,
}

/// Why a versioned write (a policy, a tenant configuration) did not happen.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("an entry with this key exists already")]
    Exists,
    #[error("no such entry")]
    NotFound,
    #[error("the expected version is stale; the current one is {current}")]
    Stale { current: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sled::Error> for WriteError {
    fn from(e: sled::Error) -> Self {
        WriteError::Store(e.into())
    }
}

/// Which stored versions a versioned write (a policy, a tenant configuration) may
/// replace: an `If-Match` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    /// Whatever version there is (`If-Match: *`; a delete without `If-Match`).
    Any,
    /// Only one of these; an empty list admits none.
    OneOf(Vec<u64>),
}

impl Precondition {
    pub fn admits(&self, version: u64) -> bool {
        match self {
            Precondition::Any => true,
            Precondition::OneOf(versions) => versions.contains(&version),
        }
    }
}

impl From<u64> for Precondition {
    fn from(version: u64) -> Self {
        Precondition::OneOf(vec![version])
    }
}

/// Which challenges a list wants.
#[derive(Debug, Default, Clone)]
pub struct ListFilter {
    pub user_id: Option<String>,
    pub state: Option<State>,
    pub kind: Option<ChallengeType>,
    /// Challenges answered by this enrolled factor only (a device's own).
    pub factor: Option<crate::model::FactorId>,
}

impl ListFilter {
    pub fn matches(&self, challenge: &Challenge) -> bool {
        self.user_id
            .as_deref()
            .is_none_or(|u| *challenge.user_id == *u)
            && self.state.is_none_or(|s| challenge.life.state == s)
            && self.kind.is_none_or(|k| challenge.offers(k))
            && self.factor.is_none_or(|f| challenge.answered_by_factor(f))
    }
}

#[derive(Clone)]
pub struct SnapshotStore {
    db: sled::Db,
    challenges: Tree,
    policies: PolicyStore,
    configuration: ConfigurationStore,
    outbox: Arc<OutboxStore>,
    factors: FactorStore,
    records: RecordStore,
    commit: Arc<GroupCommit>,
}

const FORMAT_KEY: &[u8] = b"format";

impl SnapshotStore {
    pub fn open(dir: &Path, cache_capacity: u64) -> Result<Self, StoreError> {
        Self::open_with(dir, cache_capacity, Checkpoints::default())
    }

    /// Opens the store, replaying what the log holds beyond sled's last checkpoint.
    pub fn open_with(
        dir: &Path,
        cache_capacity: u64,
        checkpoints: Checkpoints,
    ) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)?;
        let db = sled::Config::new()
            .path(dir.join("db"))
            .cache_capacity(cache_capacity)
            .mode(sled::Mode::HighThroughput)
            .flush_every_ms(None)
            .open()?;
        let meta = db.open_tree("meta")?;
        match meta.get(FORMAT_KEY)?.as_deref() {
            None => {
                meta.insert(FORMAT_KEY, &[encoding::FORMAT_VERSION])?;
            }
            Some(&[v]) if v == encoding::FORMAT_VERSION => {}
            // Older snapshots stay readable; new writes use the current format, which an
            // older build must not be started on.
            Some(&[v]) if (encoding::OLDEST_READABLE..encoding::FORMAT_VERSION).contains(&v) => {
                tracing::info!(
                    from = v,
                    to = encoding::FORMAT_VERSION,
                    "snapshot format upgraded"
                );
                meta.insert(FORMAT_KEY, &[encoding::FORMAT_VERSION])?;
            }
            Some(v) => {
                return Err(StoreError::Format(format!(
                    "data directory has format {v:?}, this build reads {}",
                    encoding::FORMAT_VERSION
                )))
            }
        }
        let segments = log::Segments::new(dir, checkpoints.fdatasync)?;
        let (next_segment, replayed) = log::recover(&db, &segments)?;
        if replayed > 0 {
            tracing::info!(
                records = replayed,
                "replayed the log beyond the last checkpoint"
            );
        }
        let log = Arc::new(log::Log::default());
        let tree = |name: &str| Tree::open(&db, name, &log);
        let challenges = tree("challenges")?;
        let policies = PolicyStore::new(tree("policies")?);
        let configuration = ConfigurationStore::new(tree("configuration")?);
        let outbox = Arc::new(OutboxStore::new(tree("outbox")?, tree("dead_letters")?));
        let factors = FactorStore::new(tree("factors")?, tree("factor_ids")?);
        let records = RecordStore::new(tree("records")?);
        db.flush()?;
        let writer = log::Writer::create(&segments, next_segment)?;
        let commit = Arc::new(GroupCommit::start(
            db.clone(),
            log,
            segments,
            writer,
            checkpoints,
        ));
        Ok(SnapshotStore {
            db,
            challenges,
            policies,
            configuration,
            outbox,
            factors,
            records,
            commit,
        })
    }

    /// Tenants' policies; their writes are durable once [`SnapshotStore::durable`] returns.
    pub fn policies(&self) -> &PolicyStore {
        &self.policies
    }

    /// Tenants' runtime configurations; durable like policies.
    pub fn configuration(&self) -> &ConfigurationStore {
        &self.configuration
    }

    /// Webhook deliveries not done yet, and those that gave up; an event put here is
    /// durable once [`SnapshotStore::durable`] returns.
    pub fn outbox(&self) -> &OutboxStore {
        &self.outbox
    }

    /// Users' enrolled factors; durable like policies.
    pub fn factors(&self) -> &FactorStore {
        &self.factors
    }

    /// The vendor faces' records (a Twilio Service, Entity, Webhook); durable like
    /// policies.
    pub fn records(&self) -> &RecordStore {
        &self.records
    }

    /// Writes a snapshot; it is durable once a later [`SnapshotStore::durable`] returns.
    pub fn put(&self, challenge: &Challenge) -> Result<(), StoreError> {
        let key = key(&challenge.tenant, &challenge.id);
        self.challenges.insert(key, encoding::encode(challenge))?;
        Ok(())
    }

    /// Waits until every write made before the call is on disk (one shared flush).
    pub async fn durable(&self) -> Result<(), StoreError> {
        self.commit.wait().await
    }

    /// Why the store accepts no more writes, once a flush failed (see [`GroupCommit`]).
    pub fn failure(&self) -> Option<String> {
        self.commit.failure()
    }

    /// Makes every later flush fail, as a full or broken disk would.
    #[cfg(test)]
    pub fn inject_failure(&self) {
        self.commit.inject_failure();
    }

    pub fn load(
        &self,
        tenant: &TenantId,
        id: &ChallengeId,
    ) -> Result<Option<Challenge>, StoreError> {
        self.challenges
            .get(key(tenant, id))?
            .map(|bytes| encoding::decode(&bytes))
            .transpose()
    }

    pub fn delete(&self, tenant: &TenantId, id: &ChallengeId) -> Result<(), StoreError> {
        self.challenges.remove(key(tenant, id))?;
        Ok(())
    }

    /// Every snapshot, for the restore at start.
    pub fn scan(&self) -> impl Iterator<Item = Result<Challenge, StoreError>> + '_ {
        self.challenges
            .iter()
            .values()
            .map(|v| encoding::decode(&v?))
    }

    /// A tenant's challenge ids in id order, starting after `after`. Only the keys are
    /// read; what each challenge is now comes from its actor or settled view.
    pub fn ids<'a>(
        &'a self,
        tenant: &TenantId,
        after: Option<&ChallengeId>,
    ) -> impl Iterator<Item = Result<ChallengeId, StoreError>> + 'a {
        let prefix = tenant_prefix(tenant);
        let mut end = prefix.clone();
        *end.last_mut().expect("prefix ends with a separator") += 1;
        let skip = prefix.len();
        let start = match after {
            Some(id) => {
                let mut k = key(tenant, id);
                k.push(0);
                k
            }
            None => prefix,
        };
        self.challenges.range(start..end).keys().map(move |k| {
            let k = k?;
            let bytes: [u8; 16] = k
                .get(skip..)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| StoreError::Format("a challenge key is malformed".into()))?;
            Ok(ChallengeId::from_bytes(bytes))
        })
    }

    /// Flushes now, blocking (shutdown).
    pub fn flush_blocking(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}

/// `tenant \0`: the start of every key of a tenant.
fn tenant_prefix(tenant: &TenantId) -> Vec<u8> {
    let mut k = Vec::with_capacity(tenant.as_str().len() + 17);
    k.extend_from_slice(tenant.as_str().as_bytes());
    k.push(0);
    k
}

fn key(tenant: &TenantId, id: &ChallengeId) -> Vec<u8> {
    let mut k = tenant_prefix(tenant);
    k.extend_from_slice(id.as_bytes());
    k
}

/// The key for the keyed hashes of secrets: the configured one, else the one in
/// `<data_dir>/server.key`, created (mode 0600) on first start.
pub fn server_secret(dir: &Path, configured: &str) -> Result<[u8; 32], StoreError> {
    let parse = |hex_text: &str| -> Result<[u8; 32], StoreError> {
        let bytes = hex::decode(hex_text.trim())
            .map_err(|_| StoreError::Format("server.key is not hex".into()))?;
        bytes
            .try_into()
            .map_err(|_| StoreError::Format("server.key must hold 32 bytes".into()))
    };
    if !configured.is_empty() {
        return parse(configured);
    }
    key_file(&dir.join("server.key"))
}

/// A 32-byte key kept as hex in the file at `path`, created with a random key (mode
/// 0600, its directory too if missing) the first time.
pub fn key_file(path: &Path) -> Result<[u8; 32], StoreError> {
    let name = path.display();
    let parse = |hex_text: &str| -> Result<[u8; 32], StoreError> {
        let bytes = hex::decode(hex_text.trim())
            .map_err(|_| StoreError::Format(format!("{name} is not hex")))?;
        bytes
            .try_into()
            .map_err(|_| StoreError::Format(format!("{name} must hold 32 bytes")))
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(path)?;
            file.write_all(hex::encode(key).as_bytes())?;
            file.sync_all()?;
            Ok(key)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The database at `dir`, once the store that had it open has let go of it: sled
    /// may release its lock a moment after the last handle is dropped.
    fn open_db(dir: &Path) -> sled::Db {
        let started = std::time::Instant::now();
        loop {
            match sled::open(dir.join("db")) {
                Ok(db) => return db,
                Err(e) if started.elapsed() > std::time::Duration::from_secs(10) => {
                    panic!("the database stays locked: {e}")
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
            }
        }
    }

    /// The store at `dir`, retried while the database is still locked (see [`open_db`]).
    fn open_store(dir: &Path) -> Result<SnapshotStore, StoreError> {
        let started = std::time::Instant::now();
        loop {
            match SnapshotStore::open(dir, 1 << 20) {
                Err(StoreError::Sled(_))
                    if started.elapsed() < std::time::Duration::from_secs(10) =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(10))
                }
                other => return other,
            }
        }
    }

    fn set_format(dir: &Path, format: u8) {
        let db = open_db(dir);
        db.open_tree("meta")
            .unwrap()
            .insert(FORMAT_KEY, &[format])
            .unwrap();
        db.flush().unwrap();
    }

    fn format(dir: &Path) -> Vec<u8> {
        let db = open_db(dir);
        let meta = db.open_tree("meta").unwrap();
        meta.get(FORMAT_KEY).unwrap().unwrap().to_vec()
    }

    #[test]
    fn an_older_directory_is_upgraded_and_a_newer_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        set_format(dir.path(), 1);
        drop(open_store(dir.path()).unwrap());
        assert_eq!(format(dir.path()), [encoding::FORMAT_VERSION]);

        set_format(dir.path(), encoding::FORMAT_VERSION + 1);
        let refused = open_store(dir.path());
        assert!(matches!(refused, Err(StoreError::Format(_))));
    }
}
