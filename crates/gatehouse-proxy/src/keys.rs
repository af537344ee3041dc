//! Application-token signing keys: RSA-2048, RS256, a 64-hex `kid`, a self-signed certificate
//! for origins that want PEM, scheduled and on-demand rotation with the previous key still
//! published (and accepted) for a grace period — the scheme Cloudflare Access uses.
//!
//! Private keys leave this module only sealed (through the store). [`KeyRing`] is the
//! immutable, in-memory view used on the request path.

use std::collections::HashMap;
use std::time::Duration;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use gatehouse_core::UnixMillis;
use gatehouse_store::{KeyStore, StoreError, StoredKey};
use jsonwebtoken::{DecodingKey, EncodingKey};
use serde_json::{Value, json};

/// How long a replaced key keeps validating tokens and stays published (Cloudflare: 7 days).
pub const GRACE: Duration = Duration::from_secs(7 * 24 * 3600);

/// Default interval between scheduled rotations (Cloudflare: 6 weeks).
pub const DEFAULT_ROTATION: Duration = Duration::from_secs(42 * 24 * 3600);

/// Failures of key handling.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Key generation or encoding failed in the crypto library.
    #[error("key generation failed: {0}")]
    Generate(String),
    /// A stored key could not be loaded.
    #[error("stored signing key {kid} is unusable: {reason}")]
    Load {
        /// Key id.
        kid: String,
        /// Why.
        reason: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Generates a new RSA-2048 signing key, ready to store.
pub fn generate(now: UnixMillis) -> Result<StoredKey, KeyError> {
    let err = |e: &dyn std::fmt::Display| KeyError::Generate(e.to_string());
    let pair = KeyPair::generate(KeySize::Rsa2048).map_err(|e| err(&e))?;
    let pkcs8 = pair.as_der().map_err(|e| err(&e))?.as_ref().to_vec();
    let public = pair.public_key();
    let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
    let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
    // The kid is the SHA-256 of the modulus, 64 hex characters like Cloudflare's.
    let kid = hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, n.as_bytes()));
    let jwk = json!({"kid": kid, "kty": "RSA", "alg": "RS256", "use": "sig", "e": e, "n": n}).to_string();
    let cert_pem = self_signed_cert(&pkcs8).map_err(|e| err(&e))?;
    Ok(StoredKey { kid, private_pkcs8: pkcs8, public_jwk: jwk, cert_pem, created_at: now, retired_at: None })
}

fn pkcs8_pem(pkcs8: &[u8]) -> String {
    let b64 = STANDARD.encode(pkcs8);
    let lines: Vec<&str> = b64.as_bytes().chunks(64).filter_map(|c| std::str::from_utf8(c).ok()).collect();
    format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", lines.join("\n"))
}

fn self_signed_cert(pkcs8: &[u8]) -> Result<String, rcgen::Error> {
    let key = rcgen::KeyPair::from_pem_and_sign_algo(&pkcs8_pem(pkcs8), &rcgen::PKCS_RSA_SHA256)?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(rcgen::DnType::CommonName, "Gatehouse application token signing key");
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2099, 12, 31);
    Ok(params.self_signed(&key)?.pem())
}

/// One usable key.
struct RingKey {
    kid: String,
    jwk: Value,
    cert_pem: String,
    decoding: DecodingKey,
    /// Only the current key signs.
    encoding: Option<EncodingKey>,
}

/// The published keys: the current one (signs) and those retired within the grace period
/// (still verify). Immutable; rebuilt on rotation.
pub struct KeyRing {
    /// Tells this ring from every other one built in this process (see [`KeyRing::id`]).
    id: u64,
    keys: Vec<RingKey>,
    by_kid: HashMap<String, usize>,
    current_created_at: UnixMillis,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing").field("kids", &self.keys.iter().map(|k| &k.kid).collect::<Vec<_>>()).finish()
    }
}

static NEXT_RING: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl KeyRing {
    /// This ring's identity: a token verified against it needs verifying again once the ring
    /// is replaced. Never reused, unlike the ring's address.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Builds the ring from stored keys, dropping those whose grace period ended before `now`.
    pub fn from_stored(stored: &[StoredKey], now: UnixMillis) -> Result<Self, KeyError> {
        let grace = GRACE.as_millis() as i64;
        let mut keys = Vec::new();
        let mut current_created_at = 0;
        for k in stored.iter().filter(|k| k.retired_at.is_none_or(|r| r + grace > now)) {
            let load = |reason: String| KeyError::Load { kid: k.kid.clone(), reason };
            let jwk: Value = serde_json::from_str(&k.public_jwk).map_err(|e| load(e.to_string()))?;
            let n = jwk["n"].as_str().unwrap_or_default();
            let e = jwk["e"].as_str().unwrap_or_default();
            let decoding = DecodingKey::from_rsa_components(n, e).map_err(|e| load(e.to_string()))?;
            let encoding = if k.retired_at.is_none() {
                current_created_at = k.created_at;
                let pem = pkcs8_pem(&k.private_pkcs8);
                Some(EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| load(e.to_string()))?)
            } else {
                None
            };
            keys.push(RingKey { kid: k.kid.clone(), jwk, cert_pem: k.cert_pem.clone(), decoding, encoding });
        }
        // Current key first.
        keys.sort_by_key(|k| k.encoding.is_none());
        let by_kid = keys.iter().enumerate().map(|(i, k)| (k.kid.clone(), i)).collect();
        let id = NEXT_RING.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Self { id, keys, by_kid, current_created_at })
    }

    /// The signing key's id and key, if the ring has a current key.
    pub fn signer(&self) -> Option<(&str, &EncodingKey)> {
        self.keys.first().and_then(|k| k.encoding.as_ref().map(|e| (k.kid.as_str(), e)))
    }

    /// The verification key for `kid`, if published.
    pub fn verifier(&self, kid: &str) -> Option<&DecodingKey> {
        self.by_kid.get(kid).map(|i| &self.keys[*i].decoding)
    }

    /// When the current key was created (0 when there is none).
    pub fn current_created_at(&self) -> UnixMillis {
        self.current_created_at
    }

    /// The `/cdn-cgi/access/certs` document: `keys` (JWKs), `public_cert` (current) and
    /// `public_certs` (all published).
    pub fn certs_document(&self) -> Value {
        let certs: Vec<Value> = self.keys.iter().map(|k| json!({"kid": k.kid, "cert": k.cert_pem})).collect();
        json!({
            "keys": self.keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>(),
            "public_cert": certs.first().cloned().unwrap_or(Value::Null),
            "public_certs": certs,
        })
    }
}

/// Rotates now: a new current key; the previous one stays valid for [`GRACE`].
pub async fn rotate<S: KeyStore + Sync>(store: &S, now: UnixMillis) -> Result<StoredKey, KeyError> {
    let key = generate(now)?;
    let forget_before = now - GRACE.as_millis() as i64;
    store.rotate_signing_key(&key, forget_before).await?;
    tracing::info!(kid = %key.kid, "application token signing key rotated");
    Ok(key)
}

/// Loads the ring, first rotating when there is no current key or it is older than `interval`.
pub async fn load_or_rotate<S: KeyStore + Sync>(
    store: &S,
    interval: Duration,
    now: UnixMillis,
) -> Result<KeyRing, KeyError> {
    let stored = store.signing_keys().await?;
    let current = stored.iter().find(|k| k.retired_at.is_none());
    let due = current.is_none_or(|k| now - k.created_at >= interval.as_millis() as i64);
    if due {
        rotate(store, now).await?;
        return KeyRing::from_stored(&store.signing_keys().await?, now);
    }
    KeyRing::from_stored(&stored, now)
}

/// The key ring in effect, swapped atomically when keys change. Readers never block.
#[derive(Debug, Clone)]
pub struct KeyRingHandle(std::sync::Arc<arc_swap::ArcSwap<KeyRing>>);

impl KeyRingHandle {
    /// Wraps a loaded ring.
    pub fn new(ring: KeyRing) -> Self {
        Self(std::sync::Arc::new(arc_swap::ArcSwap::from_pointee(ring)))
    }

    /// The current ring.
    pub fn load(&self) -> std::sync::Arc<KeyRing> {
        self.0.load_full()
    }

    /// The current ring for a moment (not across an `.await`): no reference count is taken,
    /// so the proxy threads checking tokens do not share a counter.
    pub fn peek(&self) -> arc_swap::Guard<std::sync::Arc<KeyRing>> {
        self.0.load()
    }

    fn store(&self, ring: KeyRing) {
        self.0.store(std::sync::Arc::new(ring));
    }
}

/// The configured rotation interval.
pub async fn rotation_interval<S: KeyStore + Sync>(store: &S) -> Result<Duration, KeyError> {
    Ok(store
        .rotation_interval_days()
        .await?
        .map_or(DEFAULT_ROTATION, |d| Duration::from_secs(u64::from(d) * 24 * 3600)))
}

/// Keeps `handle` current: reloads on every signing-key change and periodically, rotating
/// when the schedule says so.
pub fn spawn_refresher(store: gatehouse_store::Store, handle: KeyRingHandle) -> tokio::task::JoinHandle<()> {
    let reloader_store = store.clone();
    crate::reload::spawn_reloader(
        &reloader_store,
        |c| c == gatehouse_store::Change::SigningKeys,
        move || {
            let (store, handle) = (store.clone(), handle.clone());
            async move {
                let now = gatehouse_core::now_millis();
                let result = match rotation_interval(&store).await {
                    Ok(interval) => load_or_rotate(&store, interval, now).await,
                    Err(e) => Err(e),
                };
                match result {
                    Ok(ring) => handle.store(ring),
                    Err(e) => tracing::error!(error = %e, "could not reload signing keys; keeping the current ones"),
                }
            }
        },
    )
}
