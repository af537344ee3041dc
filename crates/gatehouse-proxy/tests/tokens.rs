//! Signing keys and application tokens: rotation with a grace period, the certs document,
//! and strict verification (every tampering and mismatch refused).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_core::secret::SecretKey;
use gatehouse_proxy::keys::{self, GRACE, KeyRing};
use gatehouse_proxy::token::{self, AccessClaims, TokenError};
use gatehouse_store::{KeyStore, Store};
use gatehouse_testkit::TestDb;
use serde_json::Value;

const ISS: &str = "https://auth.example.com";
const AUD: &str = "4714c1358e65fe4b408ad6d432a5f878f08194bdb4752441fd56faefa9b2b6f2";
const DAY_MS: i64 = 24 * 3600 * 1000;

async fn store() -> (Store, TestDb) {
    let db = TestDb::sqlite();
    let key = SecretKey::generate().unwrap_or_else(|e| panic!("{e}"));
    (Store::connect(db.url(), key).await.unwrap_or_else(|e| panic!("{e}")), db)
}

fn claims(now_s: i64) -> AccessClaims {
    AccessClaims {
        aud: vec![AUD.to_owned()],
        email: "ada@example.com".into(),
        exp: now_s + 3600,
        iat: now_s,
        nbf: now_s,
        iss: ISS.into(),
        kind: "app".into(),
        identity_nonce: "nonce-1".into(),
        sub: "5f0a3c7e-1111-4222-8333-944455556666".into(),
        custom: serde_json::Map::new(),
        country: None,
    }
}

fn now_s() -> i64 {
    gatehouse_core::now_millis() / 1000
}

async fn ring(store: &Store) -> KeyRing {
    keys::load_or_rotate(store, keys::DEFAULT_ROTATION, gatehouse_core::now_millis())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Verifies an RS256 JWT against a JWK with aws-lc-rs directly, independent of the
/// JWT library the gateway uses.
fn independent_verify(jwt: &str, jwk: &Value) -> bool {
    let mut parts = jwt.rsplitn(2, '.');
    let (Some(sig), Some(signed)) = (parts.next(), parts.next()) else { return false };
    let (Ok(sig), Ok(n), Ok(e)) = (
        URL_SAFE_NO_PAD.decode(sig),
        URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap_or_default()),
        URL_SAFE_NO_PAD.decode(jwk["e"].as_str().unwrap_or_default()),
    ) else {
        return false;
    };
    let key = aws_lc_rs::signature::RsaPublicKeyComponents { n: &n, e: &e };
    key.verify(&aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256, signed.as_bytes(), &sig).is_ok()
}

#[tokio::test]
async fn sign_and_verify_round_trip_and_independent_check() {
    let (store, _db) = store().await;
    let ring = ring(&store).await;
    let c = claims(now_s());
    let jwt = token::sign(&ring, &c).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(token::verify(&ring, &jwt, ISS, AUD), Ok(c));

    let header = jsonwebtoken::decode_header(&jwt).unwrap_or_else(|e| panic!("{e}"));
    let kid = header.kid.unwrap_or_default();
    assert_eq!(kid.len(), 64);
    let certs = ring.certs_document();
    let jwk = certs["keys"].as_array().into_iter().flatten().find(|k| k["kid"] == kid.as_str()).cloned();
    let jwk = jwk.unwrap_or_else(|| panic!("kid not published: {certs}"));
    assert_eq!(
        (jwk["kty"].as_str(), jwk["alg"].as_str(), jwk["use"].as_str()),
        (Some("RSA"), Some("RS256"), Some("sig"))
    );
    assert!(independent_verify(&jwt, &jwk));
    assert_eq!(certs["public_cert"]["kid"], kid.as_str());
    assert!(certs["public_cert"]["cert"].as_str().is_some_and(|c| c.starts_with("-----BEGIN CERTIFICATE-----")));
}

#[tokio::test]
async fn tampered_and_mismatched_tokens_are_refused() {
    let (store, _db) = store().await;
    let ring = ring(&store).await;
    let now = now_s();
    let jwt = token::sign(&ring, &claims(now)).unwrap_or_else(|e| panic!("{e}"));

    // Flip one character of the payload.
    let mut parts: Vec<String> = jwt.split('.').map(str::to_owned).collect();
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap_or_default()).unwrap_or_default();
    payload["email"] = "mallory@example.com".into();
    parts[1] = URL_SAFE_NO_PAD.encode(payload.to_string());
    let tampered = parts.join(".");
    assert!(matches!(token::verify(&ring, &tampered, ISS, AUD), Err(TokenError::Invalid(_))));

    // Another application's audience, another issuer.
    assert!(matches!(token::verify(&ring, &jwt, ISS, &"0".repeat(64)), Err(TokenError::Invalid(_))));
    assert!(matches!(token::verify(&ring, &jwt, "https://evil.example.com", AUD), Err(TokenError::Invalid(_))));

    // Expired beyond the leeway; not yet valid.
    let mut old = claims(now - 7200);
    old.exp = now - 120;
    let expired = token::sign(&ring, &old).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(token::verify(&ring, &expired, ISS, AUD), Err(TokenError::Invalid(_))));
    let mut future = claims(now);
    future.nbf = now + 600;
    let early = token::sign(&ring, &future).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(token::verify(&ring, &early, ISS, AUD), Err(TokenError::Invalid(_))));

    // Algorithm confusion: an HS256 token with the published kid, keyed with the public JWK.
    let kid = jsonwebtoken::decode_header(&jwt).ok().and_then(|h| h.kid).unwrap_or_default();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(kid);
    let hs = jsonwebtoken::encode(&header, &claims(now), &jsonwebtoken::EncodingKey::from_secret(b"public"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(token::verify(&ring, &hs, ISS, AUD), Err(TokenError::Malformed(_))));
    // alg=none.
    let none = format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#), parts[1]);
    assert!(token::verify(&ring, &none, ISS, AUD).is_err());
    // Garbage.
    for junk in ["", "a.b.c", "not a jwt", "...."] {
        assert!(matches!(token::verify(&ring, junk, ISS, AUD), Err(TokenError::Malformed(_))), "{junk:?}");
    }
    // A key that is not ours.
    let (other_store, _db2) = self::store().await;
    let other = self::ring(&other_store).await;
    let foreign = token::sign(&other, &claims(now)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(token::verify(&ring, &foreign, ISS, AUD), Err(TokenError::UnknownKey));
}

#[tokio::test]
async fn rotation_keeps_the_previous_key_for_the_grace_period() {
    let (store, _db) = store().await;
    let t0 = gatehouse_core::now_millis();
    let first = keys::load_or_rotate(&store, keys::DEFAULT_ROTATION, t0).await.unwrap_or_else(|e| panic!("{e}"));
    let old_jwt = token::sign(&first, &claims(t0 / 1000)).unwrap_or_else(|e| panic!("{e}"));
    let old_kid = first.signer().map(|(k, _)| k.to_owned()).unwrap_or_default();

    // Not due yet: same key.
    let again =
        keys::load_or_rotate(&store, keys::DEFAULT_ROTATION, t0 + DAY_MS).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.signer().map(|(k, _)| k.to_owned()), Some(old_kid.clone()));

    // On demand: a new current key; the old one still verifies and is still published.
    keys::rotate(&store, t0 + 2 * DAY_MS).await.unwrap_or_else(|e| panic!("{e}"));
    let rotated = KeyRing::from_stored(&store.signing_keys().await.unwrap_or_default(), t0 + 2 * DAY_MS)
        .unwrap_or_else(|e| panic!("{e}"));
    let new_kid = rotated.signer().map(|(k, _)| k.to_owned()).unwrap_or_default();
    assert_ne!(new_kid, old_kid);
    assert!(token::verify(&rotated, &old_jwt, ISS, AUD).is_ok());
    let certs = rotated.certs_document();
    assert_eq!(certs["keys"].as_array().map(Vec::len), Some(2));
    assert_eq!(certs["public_certs"].as_array().map(Vec::len), Some(2));
    assert_eq!(certs["public_cert"]["kid"], new_kid.as_str());

    // After the grace period the old key is gone.
    let later = t0 + 2 * DAY_MS + GRACE.as_millis() as i64 + 1;
    let pruned =
        KeyRing::from_stored(&store.signing_keys().await.unwrap_or_default(), later).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(token::verify(&pruned, &old_jwt, ISS, AUD), Err(TokenError::UnknownKey));
    assert_eq!(pruned.certs_document()["keys"].as_array().map(Vec::len), Some(1));
    // Each ring is its own: a token cached as verified against one is checked again under
    // the next, even one built from the same keys or at the same address.
    let ids = [first.id(), again.id(), rotated.id(), pruned.id()];
    assert!(ids.iter().enumerate().all(|(i, a)| ids[i + 1..].iter().all(|b| a != b)), "{ids:?}");
    drop(pruned);
    let rebuilt =
        KeyRing::from_stored(&store.signing_keys().await.unwrap_or_default(), later).unwrap_or_else(|e| panic!("{e}"));
    assert!(!ids.contains(&rebuilt.id()));

    // Scheduled: once the interval has passed, loading rotates.
    let due = t0 + 2 * DAY_MS + keys::DEFAULT_ROTATION.as_millis() as i64;
    let scheduled = keys::load_or_rotate(&store, keys::DEFAULT_ROTATION, due).await.unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(scheduled.signer().map(|(k, _)| k.to_owned()), Some(new_kid));
}
