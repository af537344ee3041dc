//! One conformance suite, run against SQLite and PostgreSQL: every behaviour the rest of the
//! gateway relies on must hold on both backends.

use gatehouse_core::idp::{IdentityProvider, IdpConfig, IdpType, ScimSettings};
use gatehouse_core::org::Organization;
use gatehouse_core::secret::{SecretKey, SecretString};
use gatehouse_core::{GoDuration, IdpId, TokenId};
use gatehouse_store::{
    ApiToken, IdpFilter, IdpStore, KeyStore, OrgStore, Page, Store, StoreError, StoredKey, TokenStore,
};
use gatehouse_testkit::TestDb;

fn key() -> SecretKey {
    SecretKey::parse("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn open(url: &str) -> Store {
    Store::connect(url, key()).await.unwrap_or_else(|e| panic!("connect {url}: {e}"))
}

fn idp(name: &str, created_at: i64, scim: bool) -> IdentityProvider {
    IdentityProvider {
        id: IdpId::generate(),
        name: name.to_owned(),
        kind: IdpType::AzureAd,
        config: IdpConfig {
            client_id: "c37d0163-d4a4-43a8-8b1e-1a2b3c4d5e6f".into(),
            directory_id: Some(uuid::Uuid::new_v4()),
            support_groups: true,
            claims: vec!["employeeId".into()],
            ..IdpConfig::default()
        },
        client_secret: SecretString::new(format!("plain-secret-{name}")),
        scim: ScimSettings { enabled: scim, user_deprovision: scim, ..ScimSettings::default() },
        scim_secret_hash: scim.then(|| "ab".repeat(32)),
        created_at,
        updated_at: created_at,
    }
}

mod cases {
    use super::*;

    pub async fn migrations_are_idempotent(url: &str) {
        let a = open(url).await;
        a.close().await;
        let b = open(url).await;
        b.ping().await.unwrap_or_else(|e| panic!("{e}"));
    }

    pub async fn wrong_secret_key_is_refused(url: &str) {
        open(url).await.close().await;
        let other = SecretKey::generate().unwrap_or_else(|e| panic!("{e}"));
        match Store::connect(url, other).await {
            Err(StoreError::WrongSecretKey) => {}
            other => panic!("expected WrongSecretKey, got {other:?}"),
        }
    }

    pub async fn account_id_is_stable_across_instances(url: &str) {
        let (a, b) = (open(url).await, open(url).await);
        let (x, y) = tokio::join!(a.account_id(), b.account_id());
        let x = x.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(Some(x), y.ok());
        assert_eq!(a.account_id().await.ok(), Some(x));
    }

    pub async fn organization_defaults_and_round_trips(url: &str) {
        let s = open(url).await;
        let org = s.organization().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(org.session_duration.to_string(), "24h");
        let changed = Organization {
            name: "Acme".into(),
            auth_domain: Some("auth.acme.test".into()),
            session_duration: "12h".parse::<GoDuration>().unwrap_or_else(|e| panic!("{e}")),
            ..org
        };
        s.put_organization(&changed).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(open(url).await.organization().await.ok(), Some(changed));
    }

    pub async fn idp_crud(url: &str) {
        let s = open(url).await;
        let a = idp("a", 1, false);
        s.insert_idp(&a).await.unwrap_or_else(|e| panic!("{e}"));
        let got = s.get_idp(a.id).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got.as_ref(), Some(&a));
        assert_eq!(got.map(|g| g.client_secret.expose().to_owned()).as_deref(), Some("plain-secret-a"));

        let mut changed = a.clone();
        changed.name = "renamed".into();
        changed.client_secret = SecretString::new("rotated");
        changed.scim = ScimSettings { enabled: true, ..ScimSettings::default() };
        changed.scim_secret_hash = Some("cd".repeat(32));
        changed.updated_at = 5;
        assert!(s.replace_idp(&changed).await.unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(s.get_idp(a.id).await.ok().flatten(), Some(changed));

        assert!(matches!(s.insert_idp(&a).await, Err(StoreError::Conflict(_))));
        assert!(s.delete_idp(a.id).await.unwrap_or_else(|e| panic!("{e}")));
        assert!(!s.delete_idp(a.id).await.unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(s.get_idp(a.id).await.ok(), Some(None));
        let missing = idp("missing", 1, false);
        assert!(!s.replace_idp(&missing).await.unwrap_or_else(|e| panic!("{e}")));
    }

    pub async fn idp_list_pages_and_filters(url: &str) {
        let s = open(url).await;
        let all: Vec<_> = (0..5).map(|i| idp(&format!("idp{i}"), 10 + i, i % 2 == 0)).collect();
        for i in all.iter().rev() {
            s.insert_idp(i).await.unwrap_or_else(|e| panic!("{e}"));
        }
        let p1 = s.list_idps(IdpFilter::default(), Page::new(1, 2)).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p1.total, 5);
        assert_eq!(p1.items.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(), ["idp0", "idp1"]);
        let p3 = s.list_idps(IdpFilter::default(), Page::new(3, 2)).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p3.items.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(), ["idp4"]);
        let p9 = s.list_idps(IdpFilter::default(), Page::new(9, 2)).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(p9.items.is_empty());
        assert_eq!(p9.total, 5);
        let scim = s
            .list_idps(IdpFilter { scim_enabled: Some(true) }, Page::new(1, 50))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(scim.total, 3);
        assert_eq!(scim.items.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(), ["idp0", "idp2", "idp4"]);
        let no_scim = s
            .list_idps(IdpFilter { scim_enabled: Some(false) }, Page::new(1, 50))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(no_scim.total, 2);
    }

    pub async fn tokens_by_hash(url: &str) {
        let s = open(url).await;
        let t = ApiToken {
            id: TokenId::generate(),
            name: "ci".into(),
            secret_hash: "ef".repeat(32),
            read_only: true,
            created_at: 7,
            last_used_at: None,
        };
        s.insert_token(&t).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.find_token_by_hash(&t.secret_hash).await.ok().flatten().as_ref(), Some(&t));
        assert_eq!(s.find_token_by_hash(&"00".repeat(32)).await.ok(), Some(None));
        s.touch_token(t.id, 99).await.unwrap_or_else(|e| panic!("{e}"));
        let touched = s.find_token_by_hash(&t.secret_hash).await.ok().flatten();
        assert_eq!(touched.and_then(|t| t.last_used_at), Some(99));
        let dup = ApiToken { id: TokenId::generate(), ..t };
        assert!(matches!(s.insert_token(&dup).await, Err(StoreError::Conflict(_))));
    }
}

mod key_cases {
    use super::*;

    fn key(kid: &str, at: i64) -> StoredKey {
        StoredKey {
            kid: kid.to_owned(),
            private_pkcs8: format!("private-{kid}").into_bytes(),
            public_jwk: format!("{{\"kid\":\"{kid}\"}}"),
            cert_pem: "-----BEGIN CERTIFICATE-----".into(),
            created_at: at,
            retired_at: None,
        }
    }

    pub async fn signing_keys_rotate(url: &str) {
        let s = open(url).await;
        assert!(s.signing_keys().await.unwrap_or_else(|e| panic!("{e}")).is_empty());
        s.rotate_signing_key(&key("a", 10), 0).await.unwrap_or_else(|e| panic!("{e}"));
        s.rotate_signing_key(&key("b", 20), 0).await.unwrap_or_else(|e| panic!("{e}"));
        let keys = s.signing_keys().await.unwrap_or_else(|e| panic!("{e}"));
        let summary: Vec<_> = keys.iter().map(|k| (k.kid.as_str(), k.retired_at)).collect();
        assert_eq!(summary, [("b", None), ("a", Some(20))]);
        assert_eq!(keys[1].private_pkcs8, b"private-a");
        // A third rotation forgets keys retired before the cut-off.
        s.rotate_signing_key(&key("c", 30), 25).await.unwrap_or_else(|e| panic!("{e}"));
        let kids: Vec<_> = s.signing_keys().await.unwrap_or_default().into_iter().map(|k| k.kid).collect();
        assert_eq!(kids, ["c", "b"]);
        assert!(matches!(s.rotate_signing_key(&key("c", 40), 0).await, Err(StoreError::Conflict(_))));
        // The failed rotation changed nothing.
        let current: Vec<_> = s
            .signing_keys()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|k| k.retired_at.is_none())
            .map(|k| k.kid)
            .collect();
        assert_eq!(current, ["c"]);
    }
}

mod app_cases {
    use super::*;
    use gatehouse_core::AppId;
    use gatehouse_core::app::{AppSettings, Application};
    use gatehouse_store::AppStore;

    pub fn app_for_tests(host: &str) -> Application {
        app(host, &[host], 99)
    }

    fn app(name: &str, destinations: &[&str], at: i64) -> Application {
        Application {
            id: AppId::generate(),
            name: name.to_owned(),
            domain: destinations[0].to_owned(),
            destinations: destinations.iter().map(|d| (*d).to_owned()).collect(),
            aud: format!("{:064x}", at),
            settings: AppSettings {
                session_duration: "24h".parse().unwrap_or_else(|e| panic!("{e}")),
                allowed_idps: vec![IdpId::generate()],
                auto_redirect_to_identity: false,
                same_site_cookie_attribute: None,
                http_only_cookie_attribute: true,
                path_cookie_attribute: false,
                enable_binding_cookie: false,
                service_auth_401_redirect: false,
                custom_deny_message: Some("ask IT".into()),
            },
            created_at: at,
            updated_at: at,
        }
    }

    pub async fn apps_crud_and_unique_destinations(url: &str) {
        let s = open(url).await;
        let wiki = app("wiki", &["wiki.example.com", "docs.example.com/wiki"], 1);
        s.insert_app(&wiki).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.get_app(wiki.id).await.ok().flatten().as_ref(), Some(&wiki));

        // A second app on a taken destination is refused, and leaves nothing behind.
        let clash = app("clash", &["grafana.example.com", "docs.example.com/wiki"], 2);
        assert!(matches!(s.insert_app(&clash).await, Err(StoreError::Conflict(_))));
        assert_eq!(s.get_app(clash.id).await.ok(), Some(None));
        let free = app("grafana", &["grafana.example.com"], 3);
        s.insert_app(&free).await.unwrap_or_else(|e| panic!("{e}"));

        let page = s.list_apps(Page::new(1, 1)).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((page.total, page.items[0].name.as_str()), (2, "wiki"));
        assert_eq!(s.all_apps().await.map(|a| a.len()).ok(), Some(2));

        let mut moved = wiki.clone();
        moved.destinations = vec!["wiki2.example.com".into()];
        moved.domain = "wiki2.example.com".into();
        moved.name = "wiki 2".into();
        assert!(s.replace_app(&moved).await.unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(s.get_app(wiki.id).await.ok().flatten(), Some(moved.clone()));
        // Moving onto another app's destination is refused and changes nothing.
        let mut onto = moved.clone();
        onto.destinations = vec!["grafana.example.com".into()];
        assert!(matches!(s.replace_app(&onto).await, Err(StoreError::Conflict(_))));
        assert_eq!(s.get_app(wiki.id).await.ok().flatten(), Some(moved));

        assert!(s.delete_app(free.id).await.unwrap_or_else(|e| panic!("{e}")));
        assert!(!s.delete_app(free.id).await.unwrap_or_else(|e| panic!("{e}")));
        // Its destination is free again.
        s.insert_app(&app("again", &["grafana.example.com"], 4)).await.unwrap_or_else(|e| panic!("{e}"));
    }
}

mod user_cases {
    use super::*;
    use gatehouse_store::{PendingStore, SessionKind, SessionRecord, SessionStore, UserStore};
    use serde_json::json;

    pub async fn users_are_keyed_by_idp_and_subject(url: &str) {
        let s = open(url).await;
        let (a, b) = (IdpId::generate(), IdpId::generate());
        let first = s
            .record_sign_in(a, "tid:oid-1", "ada@example.com", "Ada", &json!({"v": 1}), 10)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((first.created_at, first.last_login_at, first.access_seat), (10, Some(10), true));
        // Same subject again: same user, updated.
        let again = s
            .record_sign_in(a, "tid:oid-1", "ada@new.example.com", "Ada L", &json!({"v": 2}), 20)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again.id, first.id);
        assert_eq!(
            (again.email.as_str(), again.created_at, again.last_login_at),
            ("ada@new.example.com", 10, Some(20))
        );
        assert_eq!(again.identity, json!({"v": 2}));
        // Same e-mail from another IdP or subject: a different user.
        let other = s
            .record_sign_in(b, "tid:oid-1", "ada@new.example.com", "Ada", &json!({}), 30)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(other.id, first.id);
        assert_eq!(s.get_user(first.id).await.ok().flatten().map(|u| u.name), Some("Ada L".to_owned()));

        s.record_sign_in(a, "tid:oid-2", "bob@contoso.com", "Bob_Jones", &json!({}), 40)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let all = s.list_users(None, Page::new(1, 10)).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(all.total, 3);
        let found = s.list_users(Some("BOB"), Page::new(1, 10)).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(found.items.iter().map(|u| u.email.as_str()).collect::<Vec<_>>(), ["bob@contoso.com"]);
        // LIKE wildcards are literal.
        assert_eq!(s.list_users(Some("_"), Page::new(1, 10)).await.map(|p| p.total).ok(), Some(1));
        assert_eq!(s.list_users(Some("%"), Page::new(1, 10)).await.map(|p| p.total).ok(), Some(0));
    }

    pub async fn sessions_revoke(url: &str) {
        let s = open(url).await;
        let user = s
            .record_sign_in(IdpId::generate(), "sub", "a@b.c", "A", &json!({}), 1)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let session = |nonce: &str, kind, expires_at| SessionRecord {
            nonce: nonce.to_owned(),
            user_id: user.id,
            kind,
            app_id: None,
            created_at: 1,
            expires_at,
            revoked_at: None,
        };
        for x in [
            session("n1", SessionKind::Org, 100),
            session("n2", SessionKind::App, 100),
            session("old", SessionKind::App, 5),
        ] {
            s.insert_session(&x).await.unwrap_or_else(|e| panic!("{e}"));
        }
        assert!(matches!(s.insert_session(&session("n1", SessionKind::Org, 100)).await, Err(StoreError::Conflict(_))));
        let live: Vec<_> =
            s.active_sessions(user.id, 10).await.unwrap_or_default().into_iter().map(|x| x.nonce).collect();
        assert_eq!(live, ["n1", "n2"]);
        assert_eq!(s.live_session("n1", 10).await.ok().flatten().map(|x| x.kind), Some(SessionKind::Org));
        assert_eq!(s.live_session("old", 10).await.ok(), Some(None), "expired");
        let mut rx = s.subscribe();
        assert!(s.revoke_session("n1", 11).await.unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(s.live_session("n1", 12).await.ok(), Some(None), "revoked");
        assert!(!s.revoke_session("n1", 12).await.unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(rx.try_recv().ok(), Some(gatehouse_store::Change::Revocations));
        assert_eq!(s.revoked_nonces(12).await.ok(), Some(vec!["n1".to_owned()]));
        assert_eq!(s.revoke_user_sessions(user.id, 13).await.ok(), Some(1));
        assert_eq!(s.revoked_nonces(13).await.ok(), Some(vec!["n1".to_owned(), "n2".to_owned()]));
        assert!(s.active_sessions(user.id, 14).await.unwrap_or_else(|e| panic!("{e}")).is_empty());
        // Expired revocations no longer need remembering.
        assert!(s.revoked_nonces(100).await.unwrap_or_else(|e| panic!("{e}")).is_empty());
    }

    pub async fn pending_sign_ins_are_single_use(url: &str) {
        let s = open(url).await;
        s.put_pending("state-1", "data-1", 100).await.unwrap_or_else(|e| panic!("{e}"));
        s.put_pending("state-2", "data-2", 100).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(s.put_pending("state-1", "x", 100).await, Err(StoreError::Conflict(_))));
        assert_eq!(s.take_pending("state-1", 50).await.ok(), Some(Some("data-1".to_owned())));
        assert_eq!(s.take_pending("state-1", 50).await.ok(), Some(None), "replay must fail");
        assert_eq!(s.take_pending("unknown", 50).await.ok(), Some(None));
        assert_eq!(s.take_pending("state-2", 100).await.ok(), Some(None), "expired");
    }
}

mod policy_cases {
    use super::*;
    use gatehouse_core::policy::input::{RuleSet, StoredGroup, StoredPolicy};
    use gatehouse_core::policy::{PolicyDecision, Rule};
    use gatehouse_store::{AppPolicies, AppStore, PolicyStore};

    fn policy(name: &str, reusable: bool, rules: RuleSet) -> StoredPolicy {
        StoredPolicy {
            id: uuid::Uuid::new_v4(),
            name: name.to_owned(),
            decision: PolicyDecision::Allow,
            rules,
            session_duration: Some("8h".parse().unwrap_or_else(|e| panic!("{e}"))),
            reusable,
            created_at: 1,
            updated_at: 1,
        }
    }

    pub async fn policies_groups_and_attachments(url: &str) {
        let s = open(url).await;
        let group = StoredGroup {
            id: uuid::Uuid::new_v4(),
            name: "Engineers".into(),
            rules: RuleSet { include: vec![Rule::EmailDomain("example.com".into())], ..RuleSet::default() },
            created_at: 1,
            updated_at: 1,
        };
        s.insert_group(&group).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.get_group(group.id).await.ok().flatten().as_ref(), Some(&group));
        let shared = policy("shared", true, RuleSet { include: vec![Rule::Group(group.id)], ..RuleSet::default() });
        s.insert_policy(&shared).await.unwrap_or_else(|e| panic!("{e}"));
        // A referenced group cannot be deleted.
        assert!(matches!(s.delete_group(group.id).await, Err(StoreError::Conflict(_))));

        let app = app_cases_app();
        s.insert_app(&app).await.unwrap_or_else(|e| panic!("{e}"));
        let owned = policy("owned", false, RuleSet { include: vec![Rule::Everyone], ..RuleSet::default() });
        let attach = AppPolicies { owned: vec![owned.clone()], links: vec![(shared.id, 2), (owned.id, 1)] };
        s.set_app_policies(app.id, &attach).await.unwrap_or_else(|e| panic!("{e}"));
        let got: Vec<_> = s
            .app_policies(app.id)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .map(|(p, n)| (p.name, n))
            .collect();
        assert_eq!(got, [("owned".to_owned(), 1), ("shared".to_owned(), 2)]);
        assert_eq!(s.get_policy(shared.id).await.ok().flatten().map(|(_, n)| n), Some(1));
        assert_eq!(s.all_app_policies().await.map(|v| v.len()).ok(), Some(2));
        // Duplicate precedence and unknown policies are refused atomically.
        let dup = AppPolicies { owned: vec![], links: vec![(shared.id, 1), (owned.id, 1)] };
        assert!(matches!(s.set_app_policies(app.id, &dup).await, Err(StoreError::Conflict(_))));
        assert_eq!(s.app_policies(app.id).await.map(|v| v.len()).ok(), Some(2));
        // An attached reusable policy cannot be deleted.
        assert!(matches!(s.delete_policy(shared.id).await, Err(StoreError::Conflict(_))));
        // Detaching the owned policy deletes it.
        s.set_app_policies(app.id, &AppPolicies { owned: vec![], links: vec![(shared.id, 1)] })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.get_policy(owned.id).await.ok(), Some(None));
        let page = s.list_reusable_policies(Page::new(1, 10)).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((page.total, page.items[0].1), (1, 1));
        // Deleting the app detaches the reusable policy, which can then go, and then the group.
        assert!(s.delete_app(app.id).await.unwrap_or_else(|e| panic!("{e}")));
        assert!(s.delete_policy(shared.id).await.unwrap_or_else(|e| panic!("{e}")));
        assert!(s.delete_group(group.id).await.unwrap_or_else(|e| panic!("{e}")));
    }

    fn app_cases_app() -> gatehouse_core::app::Application {
        super::app_cases::app_for_tests("policy-app.example.com")
    }
}

mod token_cases {
    use super::*;
    use gatehouse_store::{ServiceTokenRecord, ServiceTokenStore};

    pub async fn service_tokens_crud(url: &str) {
        let s = open(url).await;
        let t = ServiceTokenRecord {
            id: uuid::Uuid::new_v4(),
            name: "ci".into(),
            client_id: format!("{}.access", "a".repeat(32)),
            secret_hash: "11".repeat(32),
            secret_version: 1,
            previous_secret_hash: None,
            previous_expires_at: None,
            duration: "8760h".into(),
            expires_at: 1000,
            created_at: 1,
            updated_at: 1,
            last_seen_at: None,
        };
        s.insert_service_token(&t).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.get_service_token(t.id).await.ok().flatten().as_ref(), Some(&t));
        let dup = ServiceTokenRecord { id: uuid::Uuid::new_v4(), ..t.clone() };
        assert!(matches!(s.insert_service_token(&dup).await, Err(StoreError::Conflict(_))));
        let rotated = ServiceTokenRecord {
            secret_hash: "22".repeat(32),
            secret_version: 2,
            previous_secret_hash: Some(t.secret_hash.clone()),
            previous_expires_at: Some(50),
            ..t.clone()
        };
        assert!(s.update_service_token(&rotated).await.unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(s.all_service_tokens().await.ok(), Some(vec![rotated.clone()]));
        assert_eq!(s.list_service_tokens(Page::new(1, 5)).await.map(|p| p.total).ok(), Some(1));
        assert!(s.delete_service_token(t.id).await.unwrap_or_else(|e| panic!("{e}")));
        assert!(!s.update_service_token(&rotated).await.unwrap_or_else(|e| panic!("{e}")));
    }
}

mod change_cases {
    use super::*;
    use gatehouse_store::{BackendKind, Change};
    use std::time::Duration;

    async fn next(rx: &mut tokio::sync::broadcast::Receiver<Change>) -> Option<Change> {
        tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.ok().and_then(Result::ok)
    }

    /// Writes announce themselves; with PostgreSQL, to other instances too.
    pub async fn changes_are_published(url: &str) {
        let a = open(url).await;
        let b = open(url).await;
        let mut own = a.subscribe();
        let mut other = b.subscribe();
        a.insert_idp(&idp("n", 1, false)).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(next(&mut own).await, Some(Change::IdentityProviders));
        a.set_rotation_interval_days(30).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(next(&mut own).await, Some(Change::SigningKeys));
        assert_eq!(b.rotation_interval_days().await.ok(), Some(Some(30)));
        if a.backend_kind() == BackendKind::Postgres {
            assert_eq!(next(&mut other).await, Some(Change::IdentityProviders));
            assert_eq!(next(&mut other).await, Some(Change::SigningKeys));
        }
    }
}

mod failed_login_cases {
    use super::*;
    use gatehouse_store::{FailedLoginRecord, FailedLoginStore};

    fn failure(idp: Option<IdpId>, subject: Option<&str>, at: i64, code: &str) -> FailedLoginRecord {
        FailedLoginRecord {
            id: uuid::Uuid::new_v4(),
            created_at: at,
            expires_at: at + 1000,
            idp_id: idp,
            subject: subject.map(str::to_owned),
            user_id: subject.map(|_| uuid::Uuid::new_v4()),
            email: subject.map(|s| format!("{s}@example.com")),
            app_id: Some(gatehouse_core::AppId::generate()),
            app_name: Some("Wiki".into()),
            aud: Some("a".repeat(64)),
            reason_code: code.into(),
            reason: format!("because {code}"),
            ip_address: "192.0.2.7".into(),
            ray_id: format!("ray{at}"),
        }
    }

    /// Failed sign-ins round-trip per user (IdP + subject), newest first, and stay bounded:
    /// by age, and by count per user.
    pub async fn failed_logins_are_kept_per_user_and_bounded(url: &str) {
        let s = open(url).await;
        let (idp, other) = (IdpId::generate(), IdpId::generate());
        let first = failure(Some(idp), Some("sub-1"), 100, "policy_denied");
        s.record_failed_login(&first, 3).await.unwrap_or_else(|e| panic!("{e}"));
        let got = s.failed_logins(idp, "sub-1", 100, 10).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got, vec![first.clone()]);
        // Another IdP's user with the same subject, and a failure without a user: not this user's.
        s.record_failed_login(&failure(Some(other), Some("sub-1"), 101, "x"), 3)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        s.record_failed_login(&failure(Some(idp), None, 102, "access_denied"), 3)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.failed_logins(idp, "sub-1", 100, 10).await.ok().map(|v| v.len()), Some(1));
        // Only the newest `keep` of a user remain.
        for at in 103..108 {
            s.record_failed_login(&failure(Some(idp), Some("sub-1"), at, &format!("r{at}")), 3)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let got = s.failed_logins(idp, "sub-1", 107, 10).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got.iter().map(|f| f.reason_code.as_str()).collect::<Vec<_>>(), ["r107", "r106", "r105"]);
        assert_eq!(s.failed_logins(idp, "sub-1", 107, 2).await.ok().map(|v| v.len()), Some(2), "limit");
        // Expired records are not listed, and the next insert deletes them.
        assert_eq!(s.failed_logins(idp, "sub-1", 1105, 10).await.ok().map(|v| v.len()), Some(2));
        s.record_failed_login(&failure(Some(idp), Some("sub-2"), 2000, "late"), 3)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.failed_logins(idp, "sub-1", 0, 10).await.ok().map(|v| v.len()), Some(0), "pruned");
        assert_eq!(s.failed_logins(other, "sub-1", 0, 10).await.ok().map(|v| v.len()), Some(0), "pruned");
        let late = s.failed_logins(idp, "sub-2", 2000, 10).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(late.len(), 1);
    }
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let db = gatehouse_testkit::TestDb::sqlite();
                    super::$case(db.url()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some(db) = gatehouse_testkit::TestDb::postgres().await else { return };
                    super::$case(db.url()).await;
                }
            )*
        }
    };
}

use app_cases::*;
use cases::*;
use change_cases::*;
use failed_login_cases::*;
use key_cases::*;
use policy_cases::*;
use token_cases::*;
use user_cases::*;

conformance!(
    migrations_are_idempotent,
    wrong_secret_key_is_refused,
    account_id_is_stable_across_instances,
    organization_defaults_and_round_trips,
    idp_crud,
    idp_list_pages_and_filters,
    tokens_by_hash,
    signing_keys_rotate,
    changes_are_published,
    apps_crud_and_unique_destinations,
    users_are_keyed_by_idp_and_subject,
    sessions_revoke,
    pending_sign_ins_are_single_use,
    policies_groups_and_attachments,
    service_tokens_crud,
    failed_logins_are_kept_per_user_and_bounded,
);

/// The client secret never reaches the SQLite file in plaintext.
#[tokio::test]
async fn sqlite_file_holds_no_plaintext_client_secret() {
    let db = TestDb::sqlite();
    let s = open(db.url()).await;
    let a = idp("sealed", 1, false);
    s.insert_idp(&a).await.unwrap_or_else(|e| panic!("{e}"));
    s.close().await;
    let path = db.url().trim_start_matches("sqlite://").to_owned();
    let mut bytes = std::fs::read(&path).unwrap_or_default();
    bytes.extend(std::fs::read(format!("{path}-wal")).unwrap_or_default());
    assert!(!bytes.is_empty());
    let needle = a.client_secret.expose().as_bytes();
    assert!(!bytes.windows(needle.len()).any(|w| w == needle), "plaintext secret found in the database file");
    assert!(bytes.windows(6).any(|w| w == b"sealed"), "sanity: the IdP name is stored");
}
