//! Token signing keys: generation, the published JWKS, rotation, signing and verification.
//!
//! Entra signs with RS256 and publishes several keys at once, each with a `kid` that is the
//! base64url SHA-1 thumbprint of a self-signed certificate (also in `x5t`, with the
//! certificate in `x5c`) and an `issuer` (reference §1.8). The emulator does the same: each
//! key comes with a minimal self-signed X.509 certificate built here, rotation makes a new
//! key the signing key while the previous ones stay published (up to
//! [`MAX_PUBLISHED`]), and tokens carry only `kid` in their header as v2 tokens do. Private
//! keys never leave this module.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::SimError;

/// How many keys stay published after rotations (the signing key included).
pub const MAX_PUBLISHED: usize = 3;

/// One RSA signing key with its certificate.
struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    n: String,
    e: String,
    cert_der: Vec<u8>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

/// The published keys; the first one signs.
#[derive(Debug)]
pub(crate) struct KeySet {
    keys: Vec<SigningKey>,
}

impl KeySet {
    /// A key set with one fresh key.
    pub(crate) fn generate(now: OffsetDateTime) -> Result<Self, SimError> {
        Ok(Self { keys: vec![SigningKey::generate(now)?] })
    }

    /// Makes a fresh key the signing key. With `keep_previous`, earlier keys stay published
    /// (the oldest beyond [`MAX_PUBLISHED`] are dropped); without, only the new key is.
    /// Returns the new `kid`.
    pub(crate) fn rotate(&mut self, now: OffsetDateTime, keep_previous: bool) -> Result<String, SimError> {
        let key = SigningKey::generate(now)?;
        let kid = key.kid.clone();
        if !keep_previous {
            self.keys.clear();
        }
        self.keys.insert(0, key);
        self.keys.truncate(MAX_PUBLISHED);
        Ok(kid)
    }

    /// Every published `kid`, signing key first.
    pub(crate) fn kids(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.kid.clone()).collect()
    }

    /// Signs claims as an RS256 JWT with `typ` and `kid` in the header.
    pub(crate) fn sign<T: Serialize>(&self, claims: &T) -> Result<String, SimError> {
        let key = self.keys.first().ok_or_else(|| SimError::Key("no signing key".into()))?;
        let mut header = Header::new(Algorithm::RS256);
        header.typ = Some("JWT".into());
        header.kid = Some(key.kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, &key.encoding)?)
    }

    /// Verifies a JWT signed by any published key and decodes its claims.
    pub(crate) fn verify<T: DeserializeOwned>(&self, token: &str, validation: &Validation) -> Option<T> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        let kid = header.kid?;
        let key = self.keys.iter().find(|k| k.kid == kid)?;
        jsonwebtoken::decode::<T>(token, &key.decoding, validation).ok().map(|d| d.claims)
    }

    /// The JWKS document, each key labelled with `issuer`.
    pub(crate) fn jwks(&self, issuer: &str) -> Value {
        let keys: Vec<Value> = self
            .keys
            .iter()
            .map(|k| {
                json!({
                    "kty": "RSA",
                    "use": "sig",
                    "kid": k.kid,
                    "x5t": k.kid,
                    "n": k.n,
                    "e": k.e,
                    "x5c": [STANDARD.encode(&k.cert_der)],
                    "issuer": issuer,
                })
            })
            .collect();
        json!({ "keys": keys })
    }
}

impl SigningKey {
    fn generate(now: OffsetDateTime) -> Result<Self, SimError> {
        let key = KeyPair::generate(KeySize::Rsa2048).map_err(|_| SimError::Key("RSA key generation failed".into()))?;
        let pkcs8 = key.as_der().map_err(|_| SimError::Key("cannot export the private key".into()))?;
        let pem =
            format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", STANDARD.encode(pkcs8.as_ref()));
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes())?;
        let (n, e) = rsa_public_components(key.public_key().as_ref())
            .ok_or_else(|| SimError::Key("cannot read the public key".into()))?;
        let n = URL_SAFE_NO_PAD.encode(n);
        let e = URL_SAFE_NO_PAD.encode(e);
        let decoding = DecodingKey::from_rsa_components(&n, &e)?;
        let cert_der = self_signed_certificate(&key, now)?;
        let thumbprint = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &cert_der);
        let kid = URL_SAFE_NO_PAD.encode(thumbprint.as_ref());
        Ok(Self { kid, encoding, decoding, n, e, cert_der })
    }
}

// === DER ===
//
// Just enough DER to read an RSAPublicKey and to write a self-signed certificate; the
// emulator publishes `x5c` because Entra does and some relying parties read it.

/// Splits an RFC 8017 `RSAPublicKey` (SEQUENCE { n INTEGER, e INTEGER }) into unsigned
/// big-endian `n` and `e`.
fn rsa_public_components(der: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let (tag, seq, _) = der_read(der)?;
    if tag != 0x30 {
        return None;
    }
    let (t1, n, rest) = der_read(seq)?;
    let (t2, e, _) = der_read(rest)?;
    if t1 != 0x02 || t2 != 0x02 {
        return None;
    }
    let strip = |v: &[u8]| {
        let start = v.iter().position(|b| *b != 0).unwrap_or(v.len().saturating_sub(1));
        v[start..].to_vec()
    };
    Some((strip(n), strip(e)))
}

/// Reads one TLV: (tag, content, rest).
fn der_read(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count].iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        rest = &rest[count..];
        len
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().iter().copied().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

fn der_seq(parts: &[&[u8]]) -> Vec<u8> {
    der(0x30, &parts.concat())
}

fn der_utc_time(t: OffsetDateTime) -> Vec<u8> {
    let text = format!(
        "{:02}{:02}{:02}{:02}{:02}{:02}Z",
        t.year().rem_euclid(100),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    der(0x17, text.as_bytes())
}

/// A self-signed X.509 v3 certificate for the key, with Entra's subject
/// `CN=accounts.accesscontrol.windows.net`.
fn self_signed_certificate(key: &KeyPair, now: OffsetDateTime) -> Result<Vec<u8>, SimError> {
    // sha256WithRSAEncryption, NULL parameters.
    let sig_alg = der_seq(&[&[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b], &[0x05, 0x00]]);
    let cn = der_seq(&[&[0x06, 0x03, 0x55, 0x04, 0x03], &der(0x0c, b"accounts.accesscontrol.windows.net")]);
    let name = der_seq(&[&der(0x31, &cn)]);
    let mut serial = uuid::Uuid::new_v4().into_bytes().to_vec();
    serial[0] &= 0x7f; // positive INTEGER
    let validity =
        der_seq(&[&der_utc_time(now - time::Duration::days(1)), &der_utc_time(now + time::Duration::days(5 * 365))]);
    let spki = key.public_key().as_der().map_err(|_| SimError::Key("cannot export the public key".into()))?;
    let version = der(0xa0, &der(0x02, &[0x02]));
    let tbs = der_seq(&[&version, &der(0x02, &serial), &sig_alg, &name, &validity, &name, spki.as_ref()]);
    let mut signature = vec![0u8; key.public_modulus_len()];
    let rng = aws_lc_rs::rand::SystemRandom::new();
    key.sign(&RSA_PKCS1_SHA256, &rng, &tbs, &mut signature)
        .map_err(|_| SimError::Key("cannot sign the certificate".into()))?;
    let mut bits = vec![0u8];
    bits.extend(signature);
    Ok(der_seq(&[&tbs, &sig_alg, &der(0x03, &bits)]))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_rotation_keep_old_keys_published() {
        let now = OffsetDateTime::now_utc();
        let mut keys = KeySet::generate(now).unwrap();
        let first = keys.kids()[0].clone();
        assert_eq!(first.len(), 27, "a base64url SHA-1 thumbprint");
        let token = keys.sign(&json!({"sub": "x", "exp": now.unix_timestamp() + 60})).unwrap();
        let mut v = Validation::new(Algorithm::RS256);
        v.validate_aud = false;
        assert!(keys.verify::<Value>(&token, &v).is_some());

        let second = keys.rotate(now, true).unwrap();
        assert_ne!(first, second);
        assert_eq!(keys.kids(), vec![second.clone(), first.clone()]);
        assert!(keys.verify::<Value>(&token, &v).is_some(), "old tokens still verify");
        let jwks = keys.jwks("https://issuer/{tenantid}/v2.0");
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
        assert_eq!(jwks["keys"][0]["kid"], jwks["keys"][0]["x5t"]);

        keys.rotate(now, false).unwrap();
        assert_eq!(keys.kids().len(), 1);
        assert!(keys.verify::<Value>(&token, &v).is_none(), "retired keys no longer verify");
    }

    #[test]
    fn certificate_signature_verifies_with_the_published_key() {
        let now = OffsetDateTime::now_utc();
        let key = KeyPair::generate(KeySize::Rsa2048).unwrap();
        let cert = self_signed_certificate(&key, now).unwrap();
        let (_, body, _) = der_read(&cert).unwrap();
        let (_, _tbs_content, rest) = der_read(body).unwrap();
        let tbs_len = body.len() - rest.len();
        let tbs = &body[..tbs_len];
        let (_, _alg, rest) = der_read(rest).unwrap();
        let (tag, bits, _) = der_read(rest).unwrap();
        assert_eq!(tag, 0x03);
        let public = aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
            key.public_key().as_ref(),
        );
        public.verify(tbs, &bits[1..]).unwrap();
    }
}
