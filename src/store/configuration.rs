//! `ConfigurationStore`: the `configuration` tree, one entry per tenant that has written
//! its runtime configuration, keyed by the tenant name. A value is one format byte, then
//! the configuration as JSON. A tenant without an entry is at version 0 (the file's
//! values); every write is a compare-and-swap, so of two writers that read the same
//! version exactly one succeeds.

use crate::clock::Millis;
use crate::model::{Properties, TenantConfig, TenantId};

use super::{Precondition, StoreError, WriteError};

const FORMAT_VERSION: u8 = 1;

#[derive(Clone)]
pub struct ConfigurationStore {
    tree: super::Tree,
}

impl ConfigurationStore {
    pub(super) fn new(tree: super::Tree) -> Self {
        ConfigurationStore { tree }
    }

    /// The tenant's stored configuration; `None` if it never wrote one.
    pub fn get(&self, tenant: &TenantId) -> Result<Option<TenantConfig>, StoreError> {
        self.tree
            .get(tenant.as_str().as_bytes())?
            .map(|bytes| decode(&bytes))
            .transpose()
    }

    /// Replaces the tenant's properties if `expected` admits its configuration's version
    /// (0 when it never wrote one), giving it the next version.
    pub fn replace(
        &self,
        tenant: &TenantId,
        expected: &Precondition,
        properties: Properties,
        now: Millis,
    ) -> Result<TenantConfig, WriteError> {
        let key = tenant.as_str().as_bytes();
        loop {
            let stored = self.tree.get(key)?;
            let current = match &stored {
                Some(bytes) => decode(bytes)?.version,
                None => 0,
            };
            if !expected.admits(current) {
                return Err(WriteError::Stale { current });
            }
            let next = TenantConfig {
                properties: properties.clone(),
                version: current + 1,
                updated_at: Some(now),
            };
            // Lost a race with another writer: read again, which reports its version.
            if self
                .tree
                .compare_and_swap(key, stored, Some(encode(&next)))?
                .is_ok()
            {
                return Ok(next);
            }
        }
    }
}

fn encode(config: &TenantConfig) -> Vec<u8> {
    let mut out = vec![FORMAT_VERSION];
    serde_json::to_writer(&mut out, config).expect("a configuration always encodes");
    out
}

fn decode(bytes: &[u8]) -> Result<TenantConfig, StoreError> {
    match bytes.split_first() {
        Some((&FORMAT_VERSION, rest)) => {
            serde_json::from_slice(rest).map_err(|e| StoreError::Format(e.to_string()))
        }
        Some((version, _)) => Err(StoreError::Format(format!(
            "unknown configuration format {version}"
        ))),
        None => Err(StoreError::Format("empty configuration".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    #[test]
    fn the_first_write_expects_version_0_and_later_ones_the_current_version() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let store = ConfigurationStore::new(crate::store::Tree::unlogged(
            db.open_tree("configuration").unwrap(),
        ));
        let acme = TenantId::parse("acme").unwrap();
        let properties = Properties::from_limits(&Settings::development().limits);
        assert_eq!(store.get(&acme).unwrap(), None);
        assert!(matches!(
            store.replace(&acme, &1.into(), properties.clone(), 5),
            Err(WriteError::Stale { current: 0 })
        ));
        let first = store
            .replace(&acme, &0.into(), properties.clone(), 5)
            .unwrap();
        assert_eq!((first.version, first.updated_at), (1, Some(5)));
        assert!(matches!(
            store.replace(&acme, &0.into(), properties.clone(), 6),
            Err(WriteError::Stale { current: 1 })
        ));
        let second = store.replace(&acme, &1.into(), properties, 7).unwrap();
        assert_eq!(store.get(&acme).unwrap(), Some(second));
        let other = TenantId::parse("globex").unwrap();
        assert_eq!(store.get(&other).unwrap(), None);
    }
}
