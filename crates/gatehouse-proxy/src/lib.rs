//! Gatehouse's data plane. So far: application-token signing keys ([`keys`]), the
//! application tokens themselves ([`token`]), and the public listener's router ([`public`]),
//! which serves `/cdn-cgi/access/certs` and the ingress catch-all.
//!
//! The request path (resolve app → authenticate → authorize → forward) lands here too; nothing
//! on that path touches the database — keys and revocations are held in memory.

pub mod idp_test;
pub mod keys;
pub mod public;
pub mod reload;
pub mod routes;
pub mod signin;
pub mod token;
