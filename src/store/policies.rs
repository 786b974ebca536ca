//! `PolicyStore`: the `policies` tree, keyed by `tenant \0 alias` so every key is
//! tenant-prefixed and a tenant's policies are one range in alias order. A value is one
//! format byte, then the policy as JSON. Every write is a compare-and-swap on the
//! stored bytes, so of two writers that read the same version exactly one succeeds.

use crate::clock::Millis;
use crate::model::{Policy, PolicyAlias, PolicySpec, TenantId};

use super::{tenant_prefix, Precondition, StoreError, WriteError};

const FORMAT_VERSION: u8 = 1;

#[derive(Clone)]
pub struct PolicyStore {
    tree: super::Tree,
}

impl PolicyStore {
    pub(super) fn new(tree: super::Tree) -> Self {
        PolicyStore { tree }
    }

    pub fn get(
        &self,
        tenant: &TenantId,
        alias: &PolicyAlias,
    ) -> Result<Option<Policy>, StoreError> {
        self.tree
            .get(key(tenant, alias))?
            .map(|bytes| decode(&bytes))
            .transpose()
    }

    /// Stores a new policy; [`WriteError::Exists`] if the alias is taken.
    pub fn insert(&self, tenant: &TenantId, policy: &Policy) -> Result<(), WriteError> {
        self.tree
            .compare_and_swap(
                key(tenant, &policy.alias),
                None::<&[u8]>,
                Some(encode(policy)),
            )?
            .map_err(|_| WriteError::Exists)
    }

    /// Replaces the spec of the policy if `expected` admits its version, giving it the
    /// next version.
    pub fn replace(
        &self,
        tenant: &TenantId,
        alias: &PolicyAlias,
        expected: &Precondition,
        spec: PolicySpec,
        now: Millis,
    ) -> Result<Policy, WriteError> {
        let key = key(tenant, alias);
        loop {
            let Some(stored) = self.tree.get(&key)? else {
                return Err(WriteError::NotFound);
            };
            let current = decode(&stored)?;
            if !expected.admits(current.version) {
                return Err(WriteError::Stale {
                    current: current.version,
                });
            }
            let next = Policy {
                spec: spec.clone(),
                version: current.version + 1,
                updated_at: now,
                ..current
            };
            // Lost a race with another writer: read again, which reports its version.
            if self
                .tree
                .compare_and_swap(&key, Some(stored), Some(encode(&next)))?
                .is_ok()
            {
                return Ok(next);
            }
        }
    }

    /// Deletes the policy if `expected` admits its version.
    pub fn remove(
        &self,
        tenant: &TenantId,
        alias: &PolicyAlias,
        expected: &Precondition,
    ) -> Result<(), WriteError> {
        let key = key(tenant, alias);
        loop {
            let Some(stored) = self.tree.get(&key)? else {
                return Err(WriteError::NotFound);
            };
            if *expected != Precondition::Any {
                let current = decode(&stored)?.version;
                if !expected.admits(current) {
                    return Err(WriteError::Stale { current });
                }
            }
            if self
                .tree
                .compare_and_swap(&key, Some(stored), None::<&[u8]>)?
                .is_ok()
            {
                return Ok(());
            }
        }
    }

    /// One page of a tenant's policies in alias order, starting after `after`; returns
    /// the page and the alias to continue after, if there are more.
    pub fn list(
        &self,
        tenant: &TenantId,
        after: Option<&PolicyAlias>,
        limit: usize,
    ) -> Result<(Vec<Policy>, Option<PolicyAlias>), StoreError> {
        let prefix = tenant_prefix(tenant);
        let mut end = prefix.clone();
        *end.last_mut().expect("prefix ends with a separator") += 1;
        let start = match after {
            Some(alias) => {
                let mut k = key(tenant, alias);
                k.push(0);
                k
            }
            None => prefix,
        };
        let mut page = Vec::with_capacity(limit.min(128));
        for item in self.tree.range(start..end) {
            let (_, value) = item?;
            if page.len() == limit {
                let last = page.last().map(|p: &Policy| p.alias.clone());
                return Ok((page, last));
            }
            page.push(decode(&value)?);
        }
        Ok((page, None))
    }
}

fn key(tenant: &TenantId, alias: &PolicyAlias) -> Vec<u8> {
    let mut k = tenant_prefix(tenant);
    k.extend_from_slice(alias.as_str().as_bytes());
    k
}

fn encode(policy: &Policy) -> Vec<u8> {
    let mut out = vec![FORMAT_VERSION];
    serde_json::to_writer(&mut out, policy).expect("a policy always encodes");
    out
}

fn decode(bytes: &[u8]) -> Result<Policy, StoreError> {
    match bytes.split_first() {
        Some((&FORMAT_VERSION, rest)) => {
            serde_json::from_slice(rest).map_err(|e| StoreError::Format(e.to_string()))
        }
        Some((version, _)) => Err(StoreError::Format(format!(
            "unknown policy format {version}"
        ))),
        None => Err(StoreError::Format("empty policy".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ChallengeType;

    fn store() -> (tempfile::TempDir, PolicyStore) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        (
            dir,
            PolicyStore::new(crate::store::Tree::unlogged(
                db.open_tree("policies").unwrap(),
            )),
        )
    }

    fn policy(alias: &str) -> Policy {
        Policy {
            alias: PolicyAlias::parse(alias).unwrap(),
            spec: serde_json::from_str(r#"{"type": "token", "ttl_seconds": 60}"#).unwrap(),
            version: 1,
            created_at: 10,
            updated_at: 10,
        }
    }

    #[test]
    fn versions_move_only_from_the_expected_one() {
        let (_dir, store) = store();
        let acme = TenantId::parse("acme").unwrap();
        let p = policy("login");
        store.insert(&acme, &p).unwrap();
        assert!(matches!(store.insert(&acme, &p), Err(WriteError::Exists)));
        let mut spec = p.spec.clone();
        spec.kind = ChallengeType::EmailOtp;
        let replaced = store
            .replace(&acme, &p.alias, &1.into(), spec.clone(), 20)
            .unwrap();
        assert_eq!(
            (replaced.version, replaced.created_at, replaced.updated_at),
            (2, 10, 20)
        );
        assert!(matches!(
            store.replace(&acme, &p.alias, &1.into(), spec, 30),
            Err(WriteError::Stale { current: 2 })
        ));
        assert_eq!(store.get(&acme, &p.alias).unwrap(), Some(replaced));
        assert!(matches!(
            store.remove(&acme, &p.alias, &1.into()),
            Err(WriteError::Stale { current: 2 })
        ));
        store.remove(&acme, &p.alias, &2.into()).unwrap();
        assert!(matches!(
            store.remove(&acme, &p.alias, &Precondition::Any),
            Err(WriteError::NotFound)
        ));
    }

    #[test]
    fn a_list_walks_one_tenant_in_alias_order() {
        let (_dir, store) = store();
        let acme = TenantId::parse("acme").unwrap();
        let acme2 = TenantId::parse("acme2").unwrap();
        for alias in ["c", "a", "b"] {
            store.insert(&acme, &policy(alias)).unwrap();
        }
        store.insert(&acme2, &policy("a0")).unwrap();
        let (page, next) = store.list(&acme, None, 2).unwrap();
        let aliases: Vec<_> = page.iter().map(|p| p.alias.as_str()).collect();
        assert_eq!(aliases, ["a", "b"]);
        let (page, next) = store.list(&acme, next.as_ref(), 2).unwrap();
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].alias.as_str(), "c");
        assert_eq!(next, None);
    }
}
