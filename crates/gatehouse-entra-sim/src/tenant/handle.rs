//! [`TenantHandle`]: the running emulator's shared, editable tenant.
//!
//! Endpoints read through it; the admin API, tests and reloads edit through it. Edits are
//! transactional: they run on a copy that replaces the live tenant only when the whole edit
//! succeeded, so a failed multi-step edit never leaves a half-changed directory behind.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use super::Tenant;
use crate::SimError;

/// A shared handle to the live tenant of a running emulator.
#[derive(Clone, Debug)]
pub struct TenantHandle {
    inner: Arc<RwLock<Tenant>>,
    source: Option<Arc<PathBuf>>,
}

impl TenantHandle {
    /// Wraps a tenant that has no file to reload from.
    pub fn new(tenant: Tenant) -> Self {
        Self { inner: Arc::new(RwLock::new(tenant)), source: None }
    }

    /// Wraps a tenant loaded from `path`, which [`TenantHandle::reload`] re-reads.
    pub fn with_source(tenant: Tenant, path: &Path) -> Self {
        Self { inner: Arc::new(RwLock::new(tenant)), source: Some(Arc::new(path.to_owned())) }
    }

    /// The tenant file this handle reloads from, if any.
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref().map(PathBuf::as_path)
    }

    /// Runs `f` with read access to the tenant.
    pub fn read<R>(&self, f: impl FnOnce(&Tenant) -> R) -> R {
        // A panic while holding the lock cannot leave a half-applied edit (edits swap a
        // finished copy in), so a poisoned lock still guards a consistent tenant.
        let guard = self.inner.read().unwrap_or_else(|e| e.into_inner());
        f(&guard)
    }

    /// A copy of the tenant as it is now.
    pub fn snapshot(&self) -> Tenant {
        self.read(Tenant::clone)
    }

    /// Applies an edit transactionally.
    ///
    /// # Errors
    /// Whatever `f` returns; the live tenant is then unchanged.
    pub fn edit<R>(&self, f: impl FnOnce(&mut Tenant) -> Result<R, SimError>) -> Result<R, SimError> {
        let mut guard = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let mut copy = guard.clone();
        let out = f(&mut copy)?;
        *guard = copy;
        Ok(out)
    }

    /// Replaces the tenant with another one of the same tenant id and cloud.
    ///
    /// # Errors
    /// [`SimError::InvalidTenant`] when the id or cloud differs: URLs, issuers and issued
    /// tokens depend on them, so changing them needs a restart.
    pub fn replace(&self, tenant: Tenant) -> Result<(), SimError> {
        self.edit(|current| {
            if current.id() != tenant.id() || current.info().cloud != tenant.info().cloud {
                return Err(SimError::InvalidTenant(
                    "the tenant id and cloud cannot change while the emulator runs; restart it".into(),
                ));
            }
            *current = tenant;
            Ok(())
        })
    }

    /// Re-reads the tenant file and replaces the tenant with it.
    ///
    /// # Errors
    /// [`SimError::NoTenantFile`] when the handle has no file, or any load error.
    pub fn reload(&self) -> Result<(), SimError> {
        let path = self.source().ok_or(SimError::NoTenantFile)?;
        let tenant = Tenant::load(path)?;
        self.replace(tenant)
    }
}
