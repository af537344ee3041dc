//! Gatehouse's SCIM 2.0 service provider for identity-provider provisioning (Entra ID's
//! provisioning service first). So far: the filter language ([`filter`]), parsed into an AST
//! with bounded size and depth, case-insensitive attribute names and operators; PATCH paths
//! ([`path`]) including value-filter paths; the PATCH engine ([`patch`]) with Entra's quirks;
//! and SCIM error responses ([`error`]).
//!
//! This crate must not touch sessions directly; provisioning effects on sessions are events.

pub mod error;
pub mod filter;
pub mod patch;
pub mod path;

pub use error::{ScimError, ScimType};
pub use patch::{PatchOutcome, ResourceKind, apply_patch};
