//! The vendor faces' records: what a vendor's model holds beyond challenges and factors
//! (a Twilio Service, Entity or Webhook), kept by the engine in the store like policies,
//! sealed to the principal's tenant. The document is the face's own JSON; the engine
//! only keeps it, under a namespace the face names, and makes every change durable
//! before it is acknowledged.

use super::{authorize, error, Engine, Error};
use crate::auth::{Principal, Scope};

/// A record's key: the face's namespace (e.g. `twilio.service`) and the record's name.
#[derive(Debug, Clone, Copy)]
pub struct RecordKey<'a> {
    pub namespace: &'static str,
    pub name: &'a str,
}

impl Engine {
    /// A record of the principal's tenant (`challenge:configuration:get`).
    pub async fn record(
        &self,
        principal: &Principal,
        key: RecordKey<'_>,
    ) -> Result<Option<serde_json::Value>, Error> {
        authorize(principal, Scope::ConfigurationGet)?;
        let tenant = principal.tenant.clone();
        let (namespace, name) = (key.namespace, key.name.to_string());
        self.blocking(move |store| store.records().get(&tenant, namespace, &name))
            .await
    }

    /// Stores a new record (`challenge:configuration:put`); `false` if the name is
    /// taken (nothing changed). Acknowledged once durable.
    pub async fn insert_record(
        &self,
        principal: &Principal,
        key: RecordKey<'_>,
        document: serde_json::Value,
    ) -> Result<bool, Error> {
        authorize(principal, Scope::ConfigurationPut)?;
        let tenant = principal.tenant.clone();
        let (namespace, name) = (key.namespace, key.name.to_string());
        let inserted = self
            .blocking(move |store| {
                match store.records().insert(&tenant, namespace, &name, &document) {
                    Ok(()) => Ok(true),
                    Err(crate::store::WriteError::Exists) => Ok(false),
                    Err(e) => Err(error::write_error(e, || Error::Internal, Error::Internal)),
                }
            })
            .await?;
        if inserted {
            self.durable().await?;
        }
        Ok(inserted)
    }

    /// Changes a record by `change` (`challenge:configuration:put`); `None` if there is
    /// none. `change` may refuse with an error, and then nothing changes. Acknowledged
    /// once durable.
    pub async fn update_record(
        &self,
        principal: &Principal,
        key: RecordKey<'_>,
        change: impl FnMut(serde_json::Value) -> Result<serde_json::Value, Error> + Send + 'static,
    ) -> Result<Option<serde_json::Value>, Error> {
        authorize(principal, Scope::ConfigurationPut)?;
        let tenant = principal.tenant.clone();
        let (namespace, name) = (key.namespace, key.name.to_string());
        let outcome = self
            .blocking(move |store| {
                match store.records().update(&tenant, namespace, &name, change) {
                    Ok(result) => Ok(Some(result)),
                    Err(crate::store::WriteError::NotFound) => Ok(None),
                    Err(e) => Err(error::write_error(e, || Error::Internal, Error::Internal)),
                }
            })
            .await?;
        match outcome {
            None => Ok(None),
            Some(Err(e)) => Err(e),
            Some(Ok(document)) => {
                self.durable().await?;
                Ok(Some(document))
            }
        }
    }

    /// Deletes a record (`challenge:configuration:put`); `false` if there was none.
    /// Acknowledged once durable.
    pub async fn remove_record(
        &self,
        principal: &Principal,
        key: RecordKey<'_>,
    ) -> Result<bool, Error> {
        authorize(principal, Scope::ConfigurationPut)?;
        let tenant = principal.tenant.clone();
        let (namespace, name) = (key.namespace, key.name.to_string());
        let removed = self
            .blocking(
                move |store| match store.records().remove(&tenant, namespace, &name) {
                    Ok(()) => Ok(true),
                    Err(crate::store::WriteError::NotFound) => Ok(false),
                    Err(e) => Err(error::write_error(e, || Error::Internal, Error::Internal)),
                },
            )
            .await?;
        if removed {
            self.durable().await?;
        }
        Ok(removed)
    }

    /// Up to `limit` records of `namespace` whose names start with `prefix`, in name
    /// order after `after`, and the name to continue after (`challenge:configuration:get`).
    pub async fn records(
        &self,
        principal: &Principal,
        namespace: &'static str,
        prefix: String,
        after: Option<String>,
        limit: usize,
    ) -> Result<crate::store::records::RecordPage, Error> {
        authorize(principal, Scope::ConfigurationGet)?;
        let tenant = principal.tenant.clone();
        self.blocking(move |store| {
            store
                .records()
                .list(&tenant, namespace, &prefix, after.as_deref(), limit)
        })
        .await
    }
}

impl Engine {
    /// A secret a face keeps in one of its records, sealed (AES-256-GCM under the
    /// secrets key, bound to the tenant and the record's key): what the store holds of
    /// it opens for that record only, and never reads in the clear.
    pub fn seal_record_secret(
        &self,
        tenant: &crate::model::TenantId,
        key: RecordKey<'_>,
        plain: &[u8],
    ) -> Vec<u8> {
        self.registry
            .services()
            .seal
            .seal_record(tenant, key.namespace, key.name, plain)
    }

    /// What [`Engine::seal_record_secret`] sealed for that record.
    pub fn open_record_secret(
        &self,
        tenant: &crate::model::TenantId,
        key: RecordKey<'_>,
        sealed: &[u8],
    ) -> Option<zeroize::Zeroizing<Vec<u8>>> {
        self.registry
            .services()
            .seal
            .open_record(tenant, key.namespace, key.name, sealed)
    }

    /// Sends a face's own webhook (a form body signed for a Twilio account) about one of
    /// the principal's resources, `subject` naming it in logs: stored in the outbox and
    /// durable before this returns, then delivered with the outbox's retries
    /// (`challenge:configuration:get`, which reads the webhooks).
    pub async fn send_form_webhook(
        &self,
        principal: &Principal,
        subject: [u8; 16],
        url: &str,
        body: String,
        account_sid: &str,
    ) -> Result<(), Error> {
        authorize(principal, Scope::ConfigurationGet)?;
        let outbox = &self.registry.services().outbox;
        let event = outbox.form_event(
            &principal.tenant,
            crate::model::ChallengeId::from_bytes(subject),
            url,
            body,
            account_sid,
        );
        outbox.enqueue(event).await.map_err(error::storage)
    }
}
