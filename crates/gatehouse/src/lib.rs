//! The `gatehouse` binary's library half: layered configuration, the secret-key bootstrap,
//! and the wiring that starts the listeners. The CLI in `main.rs` is a thin shell over it,
//! and tests start a whole gateway in-process through [`gateway::Gateway::start`].

pub mod config;
pub mod gateway;
pub mod keyfile;
