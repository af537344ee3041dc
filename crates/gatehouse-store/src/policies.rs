//! Access groups and policies. A policy is either reusable (account-level, attachable to many
//! applications) or owned by one application; attachments carry the precedence.

use crate::BeginWrite as _;
use std::future::Future;

use gatehouse_core::AppId;
use gatehouse_core::policy::PolicyDecision;
use gatehouse_core::policy::input::{RuleSet, StoredGroup, StoredPolicy};
use uuid::Uuid;

use crate::{Page, Paged, Store, StoreError, on_pool};

/// The policies of one application: new or changed policies it owns, and the attachments
/// (owned and reusable) with their precedence.
#[derive(Debug, Clone, Default)]
pub struct AppPolicies {
    /// Owned policies to create or replace.
    pub owned: Vec<StoredPolicy>,
    /// Every attached policy id with its precedence.
    pub links: Vec<(Uuid, u32)>,
}

/// Storage of Access groups and policies.
pub trait PolicyStore {
    /// Inserts an Access group.
    fn insert_group(&self, g: &StoredGroup) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The group with `id`.
    fn get_group(&self, id: Uuid) -> impl Future<Output = Result<Option<StoredGroup>, StoreError>> + Send;
    /// A page of groups.
    fn list_groups(&self, page: Page) -> impl Future<Output = Result<Paged<StoredGroup>, StoreError>> + Send;
    /// Every group.
    fn all_groups(&self) -> impl Future<Output = Result<Vec<StoredGroup>, StoreError>> + Send;
    /// Replaces a group; `false` when missing.
    fn replace_group(&self, g: &StoredGroup) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Deletes a group; [`StoreError::Conflict`] while a policy or group references it.
    fn delete_group(&self, id: Uuid) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Inserts a reusable policy.
    fn insert_policy(&self, p: &StoredPolicy) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The policy with `id` and the number of applications it is attached to.
    fn get_policy(&self, id: Uuid) -> impl Future<Output = Result<Option<(StoredPolicy, u64)>, StoreError>> + Send;
    /// A page of reusable policies with their application counts.
    fn list_reusable_policies(
        &self,
        page: Page,
    ) -> impl Future<Output = Result<Paged<(StoredPolicy, u64)>, StoreError>> + Send;
    /// Replaces a policy; `false` when missing.
    fn replace_policy(&self, p: &StoredPolicy) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Deletes a policy; [`StoreError::Conflict`] while a reusable policy is attached.
    fn delete_policy(&self, id: Uuid) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Replaces an application's policies atomically: stores `owned`, attaches `links`, and
    /// deletes owned policies no longer attached.
    fn set_app_policies(
        &self,
        app: AppId,
        policies: &AppPolicies,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// An application's policies with their precedence, in precedence order.
    fn app_policies(&self, app: AppId) -> impl Future<Output = Result<Vec<(StoredPolicy, u32)>, StoreError>> + Send;
    /// Every attachment: `(app, policy, precedence)`, for the data plane's snapshot.
    fn all_app_policies(&self) -> impl Future<Output = Result<Vec<(AppId, StoredPolicy, u32)>, StoreError>> + Send;
}

type GroupRow = (String, String, String, i64, i64);
type PolicyRow = (String, String, String, String, Option<String>, bool, i64, i64);
/// A policy row followed by one number (an application count or a precedence).
type PolicyRowWith = (String, String, String, String, Option<String>, bool, i64, i64, i64);
/// An application id followed by a [`PolicyRowWith`] (flat, as rows decode).
type AppPolicyRow = (String, String, String, String, String, Option<String>, bool, i64, i64, i64);
const POLICY_COLUMNS: &str =
    "p.id, p.name, p.decision, p.rules, p.session_duration, p.reusable, p.created_at, p.updated_at";

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn rules_from(text: &str) -> Result<RuleSet, StoreError> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| corrupt("rules", e))?;
    RuleSet::from_json(&v).map_err(|e| corrupt("rules", e))
}

fn group_from_row(r: GroupRow) -> Result<StoredGroup, StoreError> {
    let (id, name, rules, created_at, updated_at) = r;
    Ok(StoredGroup {
        id: Uuid::parse_str(&id).map_err(|e| corrupt("group id", e))?,
        name,
        rules: rules_from(&rules)?,
        created_at,
        updated_at,
    })
}

fn policy_with(r: PolicyRowWith) -> Result<(StoredPolicy, i64), StoreError> {
    let (a, b, c, d, e, f, g, h, n) = r;
    Ok((policy_from_row((a, b, c, d, e, f, g, h))?, n))
}

fn decision_str(d: PolicyDecision) -> &'static str {
    match d {
        PolicyDecision::Allow => "allow",
        PolicyDecision::Deny => "deny",
        PolicyDecision::Bypass => "bypass",
        PolicyDecision::NonIdentity => "non_identity",
    }
}

fn policy_from_row(r: PolicyRow) -> Result<StoredPolicy, StoreError> {
    let (id, name, decision, rules, session_duration, reusable, created_at, updated_at) = r;
    let decision = match decision.as_str() {
        "allow" => PolicyDecision::Allow,
        "deny" => PolicyDecision::Deny,
        "bypass" => PolicyDecision::Bypass,
        "non_identity" => PolicyDecision::NonIdentity,
        other => return Err(corrupt("decision", other)),
    };
    Ok(StoredPolicy {
        id: Uuid::parse_str(&id).map_err(|e| corrupt("policy id", e))?,
        name,
        decision,
        rules: rules_from(&rules)?,
        session_duration: session_duration
            .map(|d| d.parse().map_err(|e| corrupt("session_duration", e)))
            .transpose()?,
        reusable,
        created_at,
        updated_at,
    })
}

/// Upserts one policy inside an open transaction.
macro_rules! upsert_policy {
    ($tx:expr, $p:expr) => {
        sqlx::query(
            "INSERT INTO policies (id, name, decision, rules, session_duration, reusable, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO UPDATE SET name = excluded.name, \
             decision = excluded.decision, rules = excluded.rules, session_duration = excluded.session_duration, \
             updated_at = excluded.updated_at",
        )
        .bind($p.id.to_string())
        .bind(&$p.name)
        .bind(decision_str($p.decision))
        .bind($p.rules.to_json().to_string())
        .bind($p.session_duration.map(|d| d.to_string()))
        .bind($p.reusable)
        .bind($p.created_at)
        .bind($p.updated_at)
        .execute(&mut *$tx)
        .await
    };
}

impl PolicyStore for Store {
    async fn insert_group(&self, g: &StoredGroup) -> Result<(), StoreError> {
        on_pool!(self, p => {
            sqlx::query("INSERT INTO access_groups (id, name, rules, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(g.id.to_string())
                .bind(&g.name)
                .bind(g.rules.to_json().to_string())
                .bind(g.created_at)
                .bind(g.updated_at)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(|e| StoreError::conflict_on_unique(e, "group exists"))?;
        self.publish(crate::Change::Applications).await;
        Ok(())
    }

    async fn get_group(&self, id: Uuid) -> Result<Option<StoredGroup>, StoreError> {
        let row: Option<GroupRow> = on_pool!(self, p => {
            sqlx::query_as("SELECT id, name, rules, created_at, updated_at FROM access_groups WHERE id = $1")
                .bind(id.to_string())
                .fetch_optional(p)
                .await
        })?;
        row.map(group_from_row).transpose()
    }

    async fn list_groups(&self, page: Page) -> Result<Paged<StoredGroup>, StoreError> {
        let (rows, total): (Vec<GroupRow>, (i64,)) = on_pool!(self, p => {
            let rows = sqlx::query_as(
                "SELECT id, name, rules, created_at, updated_at FROM access_groups ORDER BY created_at, id LIMIT $1 OFFSET $2",
            )
            .bind(page.limit())
            .bind(page.offset())
            .fetch_all(p)
            .await?;
            (rows, sqlx::query_as("SELECT COUNT(*) FROM access_groups").fetch_one(p).await?)
        });
        let items = rows.into_iter().map(group_from_row).collect::<Result<_, _>>()?;
        Ok(Paged { items, total: u64::try_from(total.0).unwrap_or(0) })
    }

    async fn all_groups(&self) -> Result<Vec<StoredGroup>, StoreError> {
        let rows: Vec<GroupRow> = on_pool!(self, p => {
            sqlx::query_as("SELECT id, name, rules, created_at, updated_at FROM access_groups ORDER BY created_at, id")
                .fetch_all(p)
                .await
        })?;
        rows.into_iter().map(group_from_row).collect()
    }

    async fn replace_group(&self, g: &StoredGroup) -> Result<bool, StoreError> {
        let done = on_pool!(self, p => {
            sqlx::query("UPDATE access_groups SET name = $2, rules = $3, updated_at = $4 WHERE id = $1")
                .bind(g.id.to_string())
                .bind(&g.name)
                .bind(g.rules.to_json().to_string())
                .bind(g.updated_at)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })?;
        if done == 1 {
            self.publish(crate::Change::Applications).await;
        }
        Ok(done == 1)
    }

    async fn delete_group(&self, id: Uuid) -> Result<bool, StoreError> {
        // Rules are stored as JSON text; a reference is the quoted id.
        let needle = format!("%\"{id}\"%");
        let users: (i64,) = on_pool!(self, p => {
            sqlx::query_as(
                "SELECT (SELECT COUNT(*) FROM policies WHERE rules LIKE $1) + \
                 (SELECT COUNT(*) FROM access_groups WHERE rules LIKE $1 AND id <> $2)",
            )
            .bind(&needle)
            .bind(id.to_string())
            .fetch_one(p)
            .await
        })?;
        if users.0 > 0 {
            return Err(StoreError::Conflict(format!(
                "group {id} is used by {} policies or groups; remove those references first",
                users.0
            )));
        }
        let done = on_pool!(self, p => {
            sqlx::query("DELETE FROM access_groups WHERE id = $1").bind(id.to_string()).execute(p).await.map(|r| r.rows_affected())
        })?;
        if done == 1 {
            self.publish(crate::Change::Applications).await;
        }
        Ok(done == 1)
    }

    async fn insert_policy(&self, pol: &StoredPolicy) -> Result<(), StoreError> {
        on_pool!(self, p => {
            let mut tx = p.begin_write().await?;
            upsert_policy!(tx, pol)?;
            tx.commit().await?;
        });
        self.publish(crate::Change::Applications).await;
        Ok(())
    }

    async fn get_policy(&self, id: Uuid) -> Result<Option<(StoredPolicy, u64)>, StoreError> {
        let row: Option<PolicyRowWith> = on_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {POLICY_COLUMNS}, (SELECT COUNT(*) FROM app_policies a WHERE a.policy_id = p.id) \
                 FROM policies p WHERE p.id = $1"
            )))
            .bind(id.to_string())
            .fetch_optional(p)
            .await
        })?;
        row.map(|(a, b, c, d, e, f, g, h, n)| {
            Ok((policy_from_row((a, b, c, d, e, f, g, h))?, u64::try_from(n).unwrap_or(0)))
        })
        .transpose()
    }

    async fn list_reusable_policies(&self, page: Page) -> Result<Paged<(StoredPolicy, u64)>, StoreError> {
        let (rows, total): (Vec<PolicyRowWith>, (i64,)) = on_pool!(self, p => {
            let rows = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {POLICY_COLUMNS}, (SELECT COUNT(*) FROM app_policies a WHERE a.policy_id = p.id) \
                 FROM policies p WHERE p.reusable ORDER BY p.created_at, p.id LIMIT $1 OFFSET $2"
            )))
            .bind(page.limit())
            .bind(page.offset())
            .fetch_all(p)
            .await?;
            (rows, sqlx::query_as("SELECT COUNT(*) FROM policies WHERE reusable").fetch_one(p).await?)
        });
        let items = rows
            .into_iter()
            .map(|(a, b, c, d, e, f, g, h, n)| {
                Ok((policy_from_row((a, b, c, d, e, f, g, h))?, u64::try_from(n).unwrap_or(0)))
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(Paged { items, total: u64::try_from(total.0).unwrap_or(0) })
    }

    async fn replace_policy(&self, pol: &StoredPolicy) -> Result<bool, StoreError> {
        let done = on_pool!(self, p => {
            sqlx::query(
                "UPDATE policies SET name = $2, decision = $3, rules = $4, session_duration = $5, updated_at = $6 WHERE id = $1",
            )
            .bind(pol.id.to_string())
            .bind(&pol.name)
            .bind(decision_str(pol.decision))
            .bind(pol.rules.to_json().to_string())
            .bind(pol.session_duration.map(|d| d.to_string()))
            .bind(pol.updated_at)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })?;
        if done == 1 {
            self.publish(crate::Change::Applications).await;
        }
        Ok(done == 1)
    }

    async fn delete_policy(&self, id: Uuid) -> Result<bool, StoreError> {
        if let Some((pol, apps)) = self.get_policy(id).await?
            && pol.reusable
            && apps > 0
        {
            return Err(StoreError::Conflict(format!(
                "policy {id} is attached to {apps} applications; detach it first"
            )));
        }
        let done = on_pool!(self, p => {
            sqlx::query("DELETE FROM policies WHERE id = $1").bind(id.to_string()).execute(p).await.map(|r| r.rows_affected())
        })?;
        if done == 1 {
            self.publish(crate::Change::Applications).await;
        }
        Ok(done == 1)
    }

    #[tracing::instrument(skip_all, fields(app = %app))]
    async fn set_app_policies(&self, app: AppId, policies: &AppPolicies) -> Result<(), StoreError> {
        let app_id = app.to_string();
        on_pool!(self, p => {
            let mut tx = p.begin_write().await?;
            for pol in &policies.owned {
                upsert_policy!(tx, pol)?;
            }
            // Owned policies that are no longer attached go away with their attachment.
            let old: Vec<(String,)> = sqlx::query_as(
                "SELECT a.policy_id FROM app_policies a JOIN policies p ON p.id = a.policy_id \
                 WHERE a.app_id = $1 AND NOT p.reusable",
            )
            .bind(&app_id)
            .fetch_all(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM app_policies WHERE app_id = $1").bind(&app_id).execute(&mut *tx).await?;
            for (id, precedence) in &policies.links {
                sqlx::query("INSERT INTO app_policies (app_id, policy_id, precedence) VALUES ($1, $2, $3)")
                    .bind(&app_id)
                    .bind(id.to_string())
                    .bind(i64::from(*precedence))
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| match &e {
                        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::Conflict(format!("no policy {id}")),
                        _ => StoreError::conflict_on_unique(e, "two policies have the same precedence"),
                    })?;
            }
            for (old_id,) in old {
                if !policies.links.iter().any(|(id, _)| id.to_string() == old_id) {
                    sqlx::query("DELETE FROM policies WHERE id = $1 AND NOT reusable").bind(&old_id).execute(&mut *tx).await?;
                }
            }
            tx.commit().await?;
        });
        self.publish(crate::Change::Applications).await;
        Ok(())
    }

    async fn app_policies(&self, app: AppId) -> Result<Vec<(StoredPolicy, u32)>, StoreError> {
        let rows: Vec<PolicyRowWith> = on_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {POLICY_COLUMNS}, a.precedence FROM app_policies a JOIN policies p ON p.id = a.policy_id \
                 WHERE a.app_id = $1 ORDER BY a.precedence"
            )))
            .bind(app.to_string())
            .fetch_all(p)
            .await
        })?;
        rows.into_iter()
            .map(|(a, b, c, d, e, f, g, h, prec)| {
                Ok((policy_from_row((a, b, c, d, e, f, g, h))?, u32::try_from(prec).unwrap_or(0)))
            })
            .collect()
    }

    async fn all_app_policies(&self) -> Result<Vec<(AppId, StoredPolicy, u32)>, StoreError> {
        let rows: Vec<AppPolicyRow> = on_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT a.app_id, {POLICY_COLUMNS}, a.precedence FROM app_policies a JOIN policies p ON p.id = a.policy_id \
                 ORDER BY a.app_id, a.precedence"
            )))
            .fetch_all(p)
            .await
        })?;
        rows.into_iter()
            .map(|(app, a, b, c, d, e, f, g, h, n)| {
                let app: AppId = app.parse().map_err(|_| corrupt("app id", &app))?;
                let (p, n) = policy_with((a, b, c, d, e, f, g, h, n))?;
                Ok((app, p, u32::try_from(n).unwrap_or(0)))
            })
            .collect()
    }
}
