//! Who is calling: the tenant from the token's tenant claim, its subject, its scopes.

use super::scopes::{Scope, Scopes};
use crate::model::TenantId;

#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant: TenantId,
    pub subject: Option<std::sync::Arc<str>>,
    pub scopes: Scopes,
}

impl Principal {
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(scope)
    }
}
