//! Gatehouse's data plane. So far: application-token signing keys ([`keys`]) and the
//! application tokens themselves ([`token`]).
//!
//! The request path (resolve app → authenticate → authorize → forward) lands here too; nothing
//! on that path touches the database — keys and revocations are held in memory.

pub mod keys;
pub mod token;
