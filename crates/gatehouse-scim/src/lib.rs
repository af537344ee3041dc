//! Gatehouse's SCIM 2.0 service provider for identity-provider provisioning (Entra ID's
//! provisioning service first). So far: the filter language ([`filter`]), parsed into an AST
//! with bounded size and depth, case-insensitive attribute names and operators, and PATCH
//! paths ([`path`]) including value-filter paths.
//!
//! This crate must not touch sessions directly; provisioning effects on sessions are events.

pub mod filter;
pub mod path;
