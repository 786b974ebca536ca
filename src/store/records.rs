//! `RecordStore`: the `records` tree, where the vendor faces keep what their vendor's
//! model has and the native one does not (a Twilio Service, an Entity, a Webhook), as
//! engine data rather than a face's private map. A key is `tenant \0 namespace \0 name`,
//! so every key is tenant-prefixed and a namespace of a tenant is one range in name
//! order. A value is one format byte, then the face's own JSON document; what the
//! document means is the face's business, that it is sealed to its tenant is the store's.

use crate::model::TenantId;

use super::{tenant_prefix, StoreError, WriteError};

const FORMAT_VERSION: u8 = 1;

/// A page of records, `(name, document)` in name order, and the name to continue after.
pub type RecordPage = (Vec<(String, serde_json::Value)>, Option<String>);

#[derive(Clone)]
pub struct RecordStore {
    tree: super::Tree,
}

fn key(tenant: &TenantId, namespace: &str, name: &str) -> Vec<u8> {
    let mut k = tenant_prefix(tenant);
    k.extend_from_slice(namespace.as_bytes());
    k.push(0);
    k.extend_from_slice(name.as_bytes());
    k
}

fn encode(document: &serde_json::Value) -> Vec<u8> {
    let mut out = vec![FORMAT_VERSION];
    serde_json::to_writer(&mut out, document).expect("a JSON value encodes");
    out
}

fn decode(bytes: &[u8]) -> Result<serde_json::Value, StoreError> {
    match bytes.split_first() {
        Some((&FORMAT_VERSION, rest)) => {
            serde_json::from_slice(rest).map_err(|e| StoreError::Format(e.to_string()))
        }
        Some((version, _)) => Err(StoreError::Format(format!(
            "unknown record format {version}"
        ))),
        None => Err(StoreError::Format("empty record".into())),
    }
}

impl RecordStore {
    pub(super) fn new(tree: super::Tree) -> Self {
        RecordStore { tree }
    }

    pub fn get(
        &self,
        tenant: &TenantId,
        namespace: &str,
        name: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        self.tree
            .get(key(tenant, namespace, name))?
            .map(|bytes| decode(&bytes))
            .transpose()
    }

    /// Stores a new record; [`WriteError::Exists`] if the name is taken.
    pub fn insert(
        &self,
        tenant: &TenantId,
        namespace: &str,
        name: &str,
        document: &serde_json::Value,
    ) -> Result<(), WriteError> {
        self.tree
            .compare_and_swap(
                key(tenant, namespace, name),
                None::<&[u8]>,
                Some(encode(document)),
            )?
            .map_err(|_| WriteError::Exists)
    }

    /// Changes a stored record by `change`, retried on a concurrent write (compare and
    /// swap on the stored bytes); [`WriteError::NotFound`] if there is none.
    pub fn update<E>(
        &self,
        tenant: &TenantId,
        namespace: &str,
        name: &str,
        mut change: impl FnMut(serde_json::Value) -> Result<serde_json::Value, E>,
    ) -> Result<Result<serde_json::Value, E>, WriteError> {
        let key = key(tenant, namespace, name);
        loop {
            let Some(stored) = self.tree.get(&key)? else {
                return Err(WriteError::NotFound);
            };
            let next = match change(decode(&stored)?) {
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

    /// Deletes a record; [`WriteError::NotFound`] if there is none.
    pub fn remove(&self, tenant: &TenantId, namespace: &str, name: &str) -> Result<(), WriteError> {
        match self.tree.remove(key(tenant, namespace, name))? {
            Some(_) => Ok(()),
            None => Err(WriteError::NotFound),
        }
    }

    /// Up to `limit` records of a namespace whose names start with `prefix`, in name
    /// order after `after`, and the name to continue after if there are more.
    pub fn list(
        &self,
        tenant: &TenantId,
        namespace: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<RecordPage, StoreError> {
        let start = key(tenant, namespace, prefix);
        let from = match after {
            Some(name) => {
                let mut k = key(tenant, namespace, name);
                k.push(0);
                k
            }
            None => start.clone(),
        };
        let skip = key(tenant, namespace, "").len();
        let mut page = Vec::with_capacity(limit.min(128));
        for item in self.tree.range(from..) {
            let (k, value) = item?;
            if !k.starts_with(&start) {
                break;
            }
            let name = String::from_utf8_lossy(&k[skip..]).into_owned();
            if page.len() == limit {
                let last = page.last().map(|(n, _): &(String, _)| n.clone());
                return Ok((page, last));
            }
            page.push((name, decode(&value)?));
        }
        Ok((page, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn store() -> (tempfile::TempDir, RecordStore) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        (
            dir,
            RecordStore::new(crate::store::Tree::unlogged(
                db.open_tree("records").unwrap(),
            )),
        )
    }

    #[test]
    fn records_are_sealed_by_tenant_and_namespace() {
        let (_dir, store) = store();
        let acme = TenantId::parse("acme").unwrap();
        let other = TenantId::parse("acme2").unwrap();
        store.insert(&acme, "svc", "a", &json!({"n": 1})).unwrap();
        assert!(matches!(
            store.insert(&acme, "svc", "a", &json!({})),
            Err(WriteError::Exists)
        ));
        assert_eq!(store.get(&other, "svc", "a").unwrap(), None);
        assert_eq!(store.get(&acme, "svc2", "a").unwrap(), None);
        let changed = store
            .update(&acme, "svc", "a", |mut v| {
                v["n"] = json!(2);
                Ok::<_, ()>(v)
            })
            .unwrap()
            .unwrap();
        assert_eq!(changed, json!({"n": 2}));
        store.remove(&acme, "svc", "a").unwrap();
        assert!(matches!(
            store.remove(&acme, "svc", "a"),
            Err(WriteError::NotFound)
        ));
    }

    #[test]
    fn a_list_walks_one_prefix_in_name_order() {
        let (_dir, store) = store();
        let acme = TenantId::parse("acme").unwrap();
        for name in ["x/c", "x/a", "x/b", "y/a"] {
            store.insert(&acme, "ent", name, &json!(name)).unwrap();
        }
        store.insert(&acme, "ent2", "x/0", &json!(0)).unwrap();
        let (page, next) = store.list(&acme, "ent", "x/", None, 2).unwrap();
        let names: Vec<_> = page.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["x/a", "x/b"]);
        let (page, next) = store.list(&acme, "ent", "x/", next.as_deref(), 2).unwrap();
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].0, "x/c");
        assert_eq!(next, None);
    }
}
