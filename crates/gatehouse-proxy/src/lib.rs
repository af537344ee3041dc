//! Gatehouse's data plane: application-token signing keys ([`keys`]) and tokens ([`token`]),
//! the sign-in endpoints ([`signin`]), the public listener's router ([`public`]), and the
//! request path ([`dataplane`]: resolve the application, authenticate, decide, forward through
//! [`forward`] to the origin chosen by the [`ingress`] rules). Nothing on the request path
//! waits on the database in the steady state: applications, keys, revocations and service
//! tokens are in-memory snapshots; decisions are logged through [`accesslog`].

pub mod accesslog;
pub mod cookies;
pub mod dataplane;
pub mod forward;
pub mod identity;
pub mod idp_test;
pub mod ingress;
pub mod keys;
pub mod origin_h1;
pub mod pages;
pub mod path;
pub mod public;
pub mod reload;
pub mod routes;
pub mod signin;
pub mod token;
