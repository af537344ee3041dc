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

    /// Transactions that read before they write, from many tasks at once, all succeed: on
    /// SQLite one waits for the other instead of failing with "database is locked".
    pub async fn concurrent_writers_all_succeed(url: &str) {
        let s = open(url).await;
        let mut apps = Vec::new();
        for i in 0..24 {
            let mut app = super::app_cases::app_for_tests(&format!("w{i}.example.com"));
            app.id = gatehouse_core::AppId::generate();
            app.aud = gatehouse_core::app::generate_aud().unwrap_or_else(|e| panic!("{e}"));
            s.insert_app(&app).await.unwrap_or_else(|e| panic!("{e}"));
            apps.push(app);
        }
        let writers: Vec<_> = apps
            .iter()
            .enumerate()
            .map(|(i, app)| {
                let (s, app_id) = (s.clone(), app.id);
                tokio::spawn(async move {
                    let p = policy(
                        &format!("p{i}"),
                        false,
                        RuleSet { include: vec![Rule::Everyone], ..RuleSet::default() },
                    );
                    s.set_app_policies(app_id, &AppPolicies { owned: vec![p.clone()], links: vec![(p.id, 1)] }).await
                })
            })
            .collect();
        for w in writers {
            w.await.unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|e| panic!("a writer failed: {e}"));
        }
        for app in &apps {
            assert_eq!(s.app_policies(app.id).await.map(|v| v.len()).ok(), Some(1));
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
    /// by age, and by count per user and for failures without a known user.
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
        // Failures without a known user are bounded the same way.
        for at in 108..113 {
            s.record_failed_login(&failure(Some(idp), None, at, &format!("a{at}")), 3)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let recent = s.recent_failed_logins(112, 100).await.unwrap_or_else(|e| panic!("{e}"));
        let codes: Vec<_> = recent.iter().map(|f| f.reason_code.as_str()).collect();
        assert_eq!(codes, ["a112", "a111", "a110", "r107", "r106", "r105", "x"], "{codes:?}");
        assert_eq!(recent[0].subject, None);
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

mod scim_cases {
    use super::*;
    use gatehouse_store::{
        MemberChange, ScimAttr, ScimFilter, ScimGroupRecord, ScimLogFilter, ScimLogRecord, ScimOp, ScimStore,
        ScimUserRecord, ScimValue, UserStore,
    };
    use serde_json::json;

    fn user(idp: IdpId, id: &str, name: &str, email: Option<&str>, at: i64) -> ScimUserRecord {
        ScimUserRecord {
            id: id.into(),
            idp_id: idp,
            user_name: name.into(),
            external_id: Some(format!("ext-{id}")),
            display_name: Some(format!("User {id}")),
            email: email.map(str::to_owned),
            active: true,
            resource: json!({"userName": name}),
            version: 1,
            created_at: at,
            updated_at: at,
        }
    }

    fn group(idp: IdpId, id: &str, name: &str, external: &str, at: i64) -> ScimGroupRecord {
        ScimGroupRecord {
            id: id.into(),
            idp_id: idp,
            display_name: name.into(),
            external_id: Some(external.into()),
            resource: json!({"displayName": name}),
            version: 1,
            created_at: at,
            updated_at: at,
        }
    }

    fn eq(attr: ScimAttr, v: &str) -> ScimFilter {
        ScimFilter::Compare { attr, op: ScimOp::Eq, value: ScimValue::Str(v.into()) }
    }

    async fn names(s: &Store, idp: IdpId, f: Option<&ScimFilter>) -> Vec<String> {
        let page = s.scim_list_users(idp, f, 0, 100).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(page.total as usize, page.items.len());
        page.items.into_iter().map(|u| u.user_name).collect()
    }

    pub async fn scim_users_groups_filters_and_sign_in(url: &str) {
        let s = open(url).await;
        let a = idp("scim-a", 1, true);
        let b = idp("scim-b", 2, true);
        s.insert_idp(&a).await.unwrap_or_else(|e| panic!("{e}"));
        s.insert_idp(&b).await.unwrap_or_else(|e| panic!("{e}"));
        let (a, b) = (a.id, b.id);
        s.scim_insert_user(&user(a, "u1", "Ada@Contoso.com", Some("ada@mail.test"), 10))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        s.scim_insert_user(&user(a, "u2", "bob@contoso.com", None, 20)).await.unwrap_or_else(|e| panic!("{e}"));
        s.scim_insert_user(&user(a, "u3", "o'hara%_@contoso.com", None, 30)).await.unwrap_or_else(|e| panic!("{e}"));
        // userName is unique per IdP regardless of case, and only per IdP.
        let clash = s.scim_insert_user(&user(a, "u4", "ADA@contoso.COM", None, 40)).await;
        assert!(matches!(clash, Err(StoreError::Conflict(_))), "{clash:?}");
        s.scim_insert_user(&user(b, "u5", "ada@contoso.com", None, 50)).await.unwrap_or_else(|e| panic!("{e}"));

        // Filters: case-insensitive userName, case-exact externalId, operators, pagination.
        assert_eq!(names(&s, a, Some(&eq(ScimAttr::UserName, "ada@CONTOSO.com"))).await, ["Ada@Contoso.com"]);
        assert_eq!(names(&s, a, Some(&eq(ScimAttr::ExternalId, "ext-u2"))).await, ["bob@contoso.com"]);
        assert!(names(&s, a, Some(&eq(ScimAttr::ExternalId, "EXT-U2"))).await.is_empty());
        assert_eq!(names(&s, a, Some(&eq(ScimAttr::Email, "ADA@mail.test"))).await, ["Ada@Contoso.com"]);
        let co = |v: &str, op| ScimFilter::Compare { attr: ScimAttr::UserName, op, value: ScimValue::Str(v.into()) };
        // Wildcards and quotes are literal text.
        assert_eq!(names(&s, a, Some(&co("%_", ScimOp::Co))).await, ["o'hara%_@contoso.com"]);
        assert_eq!(names(&s, a, Some(&co("O'H", ScimOp::Sw))).await, ["o'hara%_@contoso.com"]);
        assert_eq!(names(&s, a, Some(&co("contoso.com", ScimOp::Ew))).await.len(), 3);
        let not_bob = ScimFilter::Not(Box::new(eq(ScimAttr::UserName, "bob@contoso.com")));
        assert_eq!(names(&s, a, Some(&not_bob)).await.len(), 2);
        let no_email = ScimFilter::Not(Box::new(ScimFilter::Present(ScimAttr::Email)));
        assert_eq!(names(&s, a, Some(&no_email)).await.len(), 2);
        let either = ScimFilter::Or(Box::new(eq(ScimAttr::Id, "u1")), Box::new(eq(ScimAttr::Id, "u2")));
        assert_eq!(names(&s, a, Some(&either)).await.len(), 2);
        let later = ScimFilter::Compare { attr: ScimAttr::Created, op: ScimOp::Gt, value: ScimValue::Time(15) };
        assert_eq!(names(&s, a, Some(&later)).await.len(), 2);
        let page = s.scim_list_users(a, None, 1, 1).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((page.total, page.items[0].id.as_str()), (3, "u2"));
        assert_eq!(s.scim_list_users(a, None, 0, 0).await.map(|p| (p.total, p.items.len())).ok(), Some((3, 0)));

        // Updates keep uniqueness; deactivation is stored.
        let mut bob = s.scim_get_user(a, "u2").await.ok().flatten().unwrap_or_else(|| panic!("u2"));
        assert!(s.scim_get_user(b, "u2").await.ok().flatten().is_none(), "ids are per IdP");
        bob.user_name = "ADA@contoso.com".into();
        assert!(matches!(s.scim_update_user(&bob).await, Err(StoreError::Conflict(_))));
        bob.user_name = "robert@contoso.com".into();
        bob.active = false;
        bob.version = 2;
        assert_eq!(s.scim_update_user(&bob).await.ok(), Some(true));
        let inactive = ScimFilter::Compare { attr: ScimAttr::Active, op: ScimOp::Eq, value: ScimValue::Bool(false) };
        assert_eq!(names(&s, a, Some(&inactive)).await, ["robert@contoso.com"]);

        // Groups: unique names, members of the same IdP only, atomic membership changes.
        s.scim_insert_group(&group(a, "g1", "Engineering", "OBJ-1", 10), &["u1".into()])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let dup = s.scim_insert_group(&group(a, "g2", "engineering", "obj-2", 11), &[]).await;
        assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
        let foreign = s.scim_insert_group(&group(a, "g3", "Sales", "obj-3", 12), &["u5".into()]).await;
        assert!(matches!(foreign, Err(StoreError::Invalid(_))), "{foreign:?}");
        assert!(s.scim_get_group(a, "g3").await.ok().flatten().is_none(), "a failed insert leaves nothing");
        let mut g1 = s.scim_get_group(a, "g1").await.ok().flatten().unwrap_or_else(|| panic!("g1"));
        g1.display_name = "Platform".into();
        let bad = MemberChange { add: vec!["u3".into(), "nope".into()], remove: vec![] };
        assert!(matches!(s.scim_update_group(&g1, &bad).await, Err(StoreError::Invalid(_))));
        assert_eq!(s.scim_get_group(a, "g1").await.ok().flatten().map(|g| g.display_name), Some("Engineering".into()));
        let change = MemberChange { add: vec!["u3".into(), "u2".into()], remove: vec!["u1".into()] };
        assert_eq!(s.scim_update_group(&g1, &change).await.ok(), Some(true));
        let members = s.scim_group_members("g1").await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(members.iter().map(|m| m.user_id.as_str()).collect::<Vec<_>>(), ["u3", "u2"]);
        let has_u2 = eq(ScimAttr::Member, "u2");
        let groups = s.scim_list_groups(a, Some(&has_u2), 0, 10).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(groups.items.iter().map(|g| g.id.as_str()).collect::<Vec<_>>(), ["g1"]);
        assert_eq!(s.scim_user_groups("u3").await.map(|g| g.len()).ok(), Some(1));
        // Deleting a user drops its memberships.
        assert_eq!(s.scim_delete_user(a, "u3").await.ok(), Some(true));
        assert_eq!(s.scim_group_members("g1").await.map(|m| m.len()).ok(), Some(1));

        // Sign-in: registry users link by e-mail or object id; deactivation and drift show.
        assert_eq!(s.scim_idp_has_sign_ins(a).await.map_err(|e| e.to_string()), Ok(false));
        let reg = s
            .record_sign_in(a, "entra:t:oid-ada", "ada@mail.test", "Ada", &json!({"groups": []}), 60)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.scim_idp_has_sign_ins(a).await.map_err(|e| e.to_string()), Ok(true));
        let ada = s.scim_get_user(a, "u1").await.ok().flatten().unwrap_or_else(|| panic!("u1"));
        assert_eq!(
            s.scim_linked_users(&ada).await.map(|u| u.iter().map(|u| u.id).collect::<Vec<_>>()).ok(),
            Some(vec![reg.id])
        );
        let seen = s
            .scim_sign_in(a, "entra:t:oid-ada", "ada@mail.test", &["obj-1".into(), "other".into()], 70)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!seen.deactivated);
        assert_eq!(seen.group_names.get("obj-1").map(String::as_str), Some("Platform"));
        assert_eq!(seen.drift, ["g1"]);
        let drift = s.scim_drift(Some(a), Page::new(1, 10)).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((drift.total, drift.items[0].group_name.as_str()), (1, "Platform"));
        let robert =
            s.scim_sign_in(a, "entra:t:x", "robert@contoso.com", &[], 80).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(robert.deactivated);

        // The registry's seat and identity can be set; identity changes are announced.
        let mut changes = s.subscribe();
        assert_eq!(s.set_access_seat(reg.id, false, 90).await.ok(), Some(true));
        assert_eq!(s.set_user_identity(reg.id, &json!({"groups": [{"id": "obj-1"}]}), 90).await.ok(), Some(true));
        assert_eq!(changes.recv().await.ok(), Some(gatehouse_store::Change::Identities));
        let reg = s.get_user(reg.id).await.ok().flatten().unwrap_or_else(|| panic!("registry user"));
        assert!(!reg.access_seat);
        assert_eq!(reg.identity["groups"][0]["id"], "obj-1");

        // Deleting a group reports its former members.
        assert_eq!(s.scim_delete_group(a, "g1").await.ok(), Some(Some(vec!["u2".to_owned()])));
        assert_eq!(s.scim_delete_group(a, "g1").await.ok(), Some(None));

        // The provisioning log filters by IdP, method and status.
        let entry = |id: &str, method: &str, status: &str, at: i64| ScimLogRecord {
            id: id.into(),
            idp_id: a,
            logged_at: at,
            request_method: method.into(),
            resource_type: "USER".into(),
            cf_resource_id: Some("u1".into()),
            idp_resource_id: None,
            resource_user_email: Some("Ada@Contoso.com".into()),
            resource_group_name: None,
            status: status.into(),
            error_description: None,
            request_body: Some("{}".into()),
        };
        s.scim_log_append(&[entry("l1", "POST", "SUCCESS", 1), entry("l2", "PATCH", "FAILURE", 2)])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let all = s.scim_logs(&ScimLogFilter { idp_ids: vec![a], ..Default::default() }, Page::new(1, 10)).await;
        assert_eq!(
            all.map(|p| p.items.iter().map(|e| e.id.clone()).collect::<Vec<_>>()).ok(),
            Some(vec!["l2".into(), "l1".into()])
        );
        let failed = ScimLogFilter {
            statuses: vec!["FAILURE".into()],
            resource_user_email: Some("ada@contoso.com".into()),
            ..Default::default()
        };
        assert_eq!(s.scim_logs(&failed, Page::new(1, 10)).await.map(|p| p.total).ok(), Some(1));
        let other = ScimLogFilter { idp_ids: vec![b], ..Default::default() };
        assert_eq!(s.scim_logs(&other, Page::new(1, 10)).await.map(|p| p.total).ok(), Some(0));
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
use scim_cases::*;
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
    concurrent_writers_all_succeed,
    service_tokens_crud,
    scim_users_groups_filters_and_sign_in,
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
