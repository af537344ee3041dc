//! Gatehouse's SCIM 2.0 service provider for identity-provider provisioning (Entra ID's
//! provisioning service first): the endpoint of every IdP, `/populations/<idp_id>/scim/v2`
//! ([`router`]), with `/Users`, `/Groups` and discovery; the filter language ([`filter`]),
//! parsed into an AST with bounded size and depth, case-insensitive attribute names and
//! operators, and translated into the store's filter; PATCH paths ([`path`]) including
//! value-filter paths; the PATCH engine ([`patch`]) with Entra's quirks; and SCIM error
//! responses ([`error`]).
//!
//! This crate acts on sessions and identities only through the store (revocation and
//! identity updates, which every instance hears): see `effects`.

mod discovery;
mod effects;
pub mod error;
pub mod filter;
mod groups;
pub mod patch;
pub mod path;
mod query;
mod resource;
mod search;
mod server;
mod users;

pub use error::{ScimError, ScimType};
pub use patch::{PatchOutcome, ResourceKind, apply_patch};
pub use server::{FAIL_WINDOW, MAX_BODY_BYTES, MAX_FAILED_AUTH, SCIM_CONTENT_TYPE, ScimState, router};
