//! The provisioning driver: one cycle of Entra's provisioning service against a SCIM
//! endpoint (reference §3.4–§3.6).
//!
//! A cycle runs in this order:
//!
//! 1. **Test connection** (first cycle against a target only): `GET /Users?filter=userName eq
//!    "<random GUID>"` and, when groups are assigned, the same probe on `/Groups`; both must
//!    answer 200 with no resources or the cycle stops there.
//! 2. **Users** in scope — assigned users and the *direct* user members of assigned groups
//!    (nested members are not in scope). A user not yet provisioned is looked up with
//!    `GET /Users?filter=userName eq "<upn>"` and then created (`POST`) or matched (PATCH of
//!    the differences); disabled or soft-deleted users are not created. A provisioned user
//!    gets a PATCH with what changed, `active` → false when disabled/soft-deleted or out of
//!    scope (after which it is no longer managed), `DELETE` when hard-deleted.
//! 3. **Managers**, patched once both users exist (a reference attribute).
//! 4. **Groups** assigned: looked up by `displayName` (`excludedAttributes=members`), created
//!    empty, then members added by PATCH; renames and membership changes by PATCH; `DELETE`
//!    when deleted or unassigned.
//!
//! Incremental cycles compare the tenant with what the previous cycles sent (the
//! [`ProvisioningState`]: Entra object id ↔ SCIM id and last known attributes), so only
//! changes produce requests. Failures are logged and reported and the object is retried next
//! cycle; nothing here panics or aborts on a bad answer.

mod client;
mod mapping;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use self::client::{Call, Cycle, ScimTarget};
use self::mapping::{Attr, UserImage};
use crate::SimError;
use crate::server::SimState;
use crate::tenant::{Tenant, User};

/// How the provisioning service formats PATCH requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ProvisioningMode {
    /// Entra's default for non-gallery apps: capitalised ops, `"False"` strings, member
    /// removal with a value array.
    #[default]
    Default,
    /// The `aadOptscim062020` flag: RFC-compliant PATCH (lowercase ops, booleans,
    /// `members[value eq "..."]` removal, path-less replace).
    AadOptscim062020,
}

impl ProvisioningMode {
    /// `default` or `aadOptscim062020`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProvisioningMode::Default => "default",
            ProvisioningMode::AadOptscim062020 => "aadOptscim062020",
        }
    }
}

impl fmt::Display for ProvisioningMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProvisioningMode {
    type Err = SimError;

    /// Parses `default` or `aadOptscim062020` (case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("default") {
            Ok(ProvisioningMode::Default)
        } else if s.eq_ignore_ascii_case("aadOptscim062020") {
            Ok(ProvisioningMode::AadOptscim062020)
        } else {
            Err(SimError::UnknownMode(s.to_owned()))
        }
    }
}

impl Serialize for ProvisioningMode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ProvisioningMode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?.parse().map_err(serde::de::Error::custom)
    }
}

/// What a logged request did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProvisioningOperation {
    /// The test-connection probe.
    TestConnection,
    /// A lookup by the matching attribute.
    Query,
    /// `POST`.
    Create,
    /// `PATCH` of attributes.
    Update,
    /// `PATCH` of `active` to false.
    Disable,
    /// `PATCH` of `active` to true.
    Enable,
    /// `DELETE`.
    Delete,
    /// `PATCH` of group members.
    UpdateMembers,
}

/// User or group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResourceType {
    /// A user.
    User,
    /// A group.
    Group,
}

/// Whether a request achieved what it was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProvisioningOutcome {
    /// It did.
    Success,
    /// It did not; see the entry's `reason`.
    Failure,
}

/// One request of the provisioning log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProvisioningLogEntry {
    /// The cycle number (1 for the initial cycle).
    pub cycle: u64,
    /// When the request completed.
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// What the request did.
    pub operation: ProvisioningOperation,
    /// User or group.
    pub resource_type: ResourceType,
    /// The Entra object id, when the request concerns one object.
    pub source_id: Option<Uuid>,
    /// The object's UPN or display name.
    pub source_name: Option<String>,
    /// The SCIM id, when known.
    pub target_id: Option<String>,
    /// HTTP method.
    pub method: String,
    /// Path and query relative to the SCIM base URL.
    pub path: String,
    /// The JSON body sent, if any.
    pub request_body: Option<Value>,
    /// HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// Success or failure.
    pub outcome: ProvisioningOutcome,
    /// Entra's provisioning error code on failure.
    pub error_code: Option<String>,
    /// Why it failed.
    pub reason: Option<String>,
}

/// Counters of a cycle.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisioningCounts {
    /// Users created.
    pub users_created: u64,
    /// Users updated (attributes, including matched existing users).
    pub users_updated: u64,
    /// Users disabled.
    pub users_disabled: u64,
    /// Users re-enabled.
    pub users_enabled: u64,
    /// Users deleted.
    pub users_deleted: u64,
    /// Groups created.
    pub groups_created: u64,
    /// Groups updated (renamed or `externalId` fixed).
    pub groups_updated: u64,
    /// Groups deleted.
    pub groups_deleted: u64,
    /// Memberships added.
    pub members_added: u64,
    /// Memberships removed.
    pub members_removed: u64,
}

/// The result of one provisioning cycle.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProvisioningReport {
    /// The cycle number (1 for the initial cycle against this target).
    pub cycle: u64,
    /// The mode used (the URL's `aadOptscim062020` flag wins).
    pub mode: ProvisioningMode,
    /// The SCIM base URL, without query string.
    pub target: String,
    /// Whether this was the initial cycle.
    pub initial: bool,
    /// The test connection's result, on the initial cycle.
    pub test_connection: Option<ProvisioningOutcome>,
    /// When the cycle started.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// When it finished.
    #[serde(with = "time::serde::rfc3339")]
    pub finished_at: OffsetDateTime,
    /// Counters.
    pub counts: ProvisioningCounts,
    /// Requests sent.
    pub requests: usize,
    /// Requests that failed.
    pub failures: usize,
    /// Every request, in order.
    pub log: Vec<ProvisioningLogEntry>,
}

impl ProvisioningReport {
    /// True when every request succeeded.
    pub fn is_success(&self) -> bool {
        self.failures == 0
    }

    /// The failed requests.
    pub fn failed(&self) -> impl Iterator<Item = &ProvisioningLogEntry> {
        self.log.iter().filter(|e| e.outcome == ProvisioningOutcome::Failure)
    }

    /// A one-line summary for people.
    pub fn summary(&self) -> String {
        let c = &self.counts;
        format!(
            "cycle {} ({}) against {}: {} requests, {} failed; users +{} ~{} disabled {} enabled {} deleted {}; \
             groups +{} ~{} deleted {}; members +{} -{}",
            self.cycle,
            self.mode,
            self.target,
            self.requests,
            self.failures,
            c.users_created,
            c.users_updated,
            c.users_disabled,
            c.users_enabled,
            c.users_deleted,
            c.groups_created,
            c.groups_updated,
            c.groups_deleted,
            c.members_added,
            c.members_removed
        )
    }
}

/// A provisioned user, as the driver remembers it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct SyncedUser {
    scim_id: String,
    image: UserImage,
    /// False once the user left scope: Entra stops managing it.
    managed: bool,
}

/// A provisioned group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct SyncedGroup {
    scim_id: String,
    display_name: String,
    /// Entra user ids whose membership was sent.
    members: BTreeSet<Uuid>,
}

/// What the driver remembers between cycles: the target, the id mapping and what was sent.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ProvisioningState {
    target: Option<String>,
    cycles: u64,
    users: BTreeMap<Uuid, SyncedUser>,
    groups: BTreeMap<Uuid, SyncedGroup>,
    #[serde(skip)]
    log: Vec<ProvisioningLogEntry>,
}

impl ProvisioningState {
    /// The log of every cycle run with this state in memory.
    pub fn log(&self) -> &[ProvisioningLogEntry] {
        &self.log
    }

    /// The SCIM id of a provisioned user or group.
    pub fn scim_id(&self, object_id: Uuid) -> Option<&str> {
        self.users
            .get(&object_id)
            .map(|u| u.scim_id.as_str())
            .or_else(|| self.groups.get(&object_id).map(|g| g.scim_id.as_str()))
    }

    /// Entra object id → SCIM id for every provisioned object.
    pub fn id_mapping(&self) -> BTreeMap<Uuid, String> {
        let users = self.users.iter().map(|(k, v)| (*k, v.scim_id.clone()));
        let groups = self.groups.iter().map(|(k, v)| (*k, v.scim_id.clone()));
        users.chain(groups).collect()
    }

    /// Cycles completed against the current target.
    pub fn cycles(&self) -> u64 {
        self.cycles
    }

    /// Reads a state file; a missing file is a fresh state.
    ///
    /// # Errors
    /// [`SimError::StateFile`] when the file exists but cannot be read or parsed.
    pub fn load(path: &Path) -> Result<Self, SimError> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| SimError::StateFile { path: path.to_owned(), message: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(SimError::StateFile { path: path.to_owned(), message: e.to_string() }),
        }
    }

    /// Writes the state file atomically (temporary file, then rename).
    ///
    /// # Errors
    /// [`SimError::StateFile`] on I/O failure.
    pub fn save(&self, path: &Path) -> Result<(), SimError> {
        let fail = |e: &dyn fmt::Display| SimError::StateFile { path: path.to_owned(), message: e.to_string() };
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| fail(&e))?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, bytes).map_err(|e| fail(&e))?;
        std::fs::rename(&tmp, path).map_err(|e| fail(&e))
    }
}

/// The state file kept next to a tenant file: `demo.toml` → `demo.provisioning.json`.
pub fn state_file_for(tenant_path: &Path) -> PathBuf {
    tenant_path.with_extension("provisioning.json")
}

/// Runs a cycle with a running emulator's in-memory state.
pub(crate) async fn run_in(
    st: &SimState,
    scim_url: &str,
    token: &str,
    mode: ProvisioningMode,
) -> Result<ProvisioningReport, SimError> {
    let target = ScimTarget::new(scim_url, token, mode)?;
    let mut state = st.provisioning.lock().await;
    let tenant = st.tenant.snapshot();
    Ok(run_cycle(&tenant, &mut state, &target).await)
}

/// Runs one cycle for a tenant against a target, updating `state`.
///
/// # Errors
/// [`SimError::InvalidScimUrl`] or [`SimError::HttpClient`].
pub async fn run(
    tenant: &Tenant,
    state: &mut ProvisioningState,
    scim_url: &str,
    token: &str,
    mode: ProvisioningMode,
) -> Result<ProvisioningReport, SimError> {
    let target = ScimTarget::new(scim_url, token, mode)?;
    Ok(run_cycle(tenant, state, &target).await)
}

fn users_in_scope(t: &Tenant) -> BTreeSet<Uuid> {
    let assignments = t.scim_assignments();
    let mut scope = assignments.users.clone();
    for g in assignments.groups.iter().filter_map(|id| t.group(*id)) {
        scope.extend(g.member_users.iter().copied());
    }
    scope
}

fn filter_path(resource: &str, attribute: &str, value: &str, exclude_members: bool) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    if exclude_members {
        query.append_pair("excludedAttributes", "members");
    }
    query.append_pair("filter", &format!("{attribute} eq \"{value}\""));
    format!("/{resource}?{}", query.finish())
}

/// The first resource of a ListResponse, or `None` when it is empty.
fn first_resource(list: &Value) -> Option<&Value> {
    list.get("Resources").and_then(Value::as_array).and_then(|r| r.first())
}

fn resource_id(resource: &Value) -> Option<String> {
    match resource.get("id")? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

async fn run_cycle(t: &Tenant, state: &mut ProvisioningState, target: &ScimTarget) -> ProvisioningReport {
    let started_at = OffsetDateTime::now_utc();
    if state.target.as_deref() != Some(target.base.as_str()) {
        // A new target starts from scratch, as a new provisioning job would.
        let log = std::mem::take(&mut state.log);
        *state = ProvisioningState { target: Some(target.base.clone()), log, ..ProvisioningState::default() };
    }
    let initial = state.cycles == 0;
    let mut cycle = Cycle::new(target, state.cycles + 1);
    let mut test_connection = None;
    let mut proceed = true;
    if initial {
        let ok = test_connection_probe(&mut cycle, !t.scim_assignments().groups.is_empty()).await;
        test_connection = Some(if ok { ProvisioningOutcome::Success } else { ProvisioningOutcome::Failure });
        proceed = ok;
    }
    if proceed {
        sync_users(t, state, &mut cycle).await;
        delete_users(t, state, &mut cycle).await;
        sync_managers(t, state, &mut cycle).await;
        sync_groups(t, state, &mut cycle).await;
        state.cycles += 1;
    }
    let failures = cycle.log.iter().filter(|e| e.outcome == ProvisioningOutcome::Failure).count();
    let report = ProvisioningReport {
        cycle: cycle.number,
        mode: target.mode,
        target: target.base.clone(),
        initial,
        test_connection,
        started_at,
        finished_at: OffsetDateTime::now_utc(),
        counts: cycle.counts,
        requests: cycle.log.len(),
        failures,
        log: cycle.log,
    };
    state.log.extend(report.log.iter().cloned());
    tracing::info!(summary = %report.summary(), "provisioning cycle finished");
    report
}

/// The probe: a filter on a random value must return 200 and nothing.
async fn test_connection_probe(cycle: &mut Cycle<'_>, groups: bool) -> bool {
    let probes = [
        (ResourceType::User, filter_path("Users", "userName", &Uuid::new_v4().to_string(), false)),
        (ResourceType::Group, filter_path("Groups", "displayName", &Uuid::new_v4().to_string(), true)),
    ];
    for (resource_type, path) in probes.into_iter().take(if groups { 2 } else { 1 }) {
        let answer = cycle
            .call(Call {
                operation: ProvisioningOperation::TestConnection,
                resource_type,
                source: None,
                target_id: None,
                method: Method::GET,
                path,
                body: None,
                expect: &[200],
            })
            .await;
        match answer {
            Ok(list) if first_resource(&list).is_none() => {}
            Ok(_) => {
                if let Some(last) = cycle.log.last_mut() {
                    last.outcome = ProvisioningOutcome::Failure;
                    last.reason = Some("a filter on a random value returned resources".into());
                }
                return false;
            }
            Err(()) => return false,
        }
    }
    true
}

async fn sync_users(t: &Tenant, state: &mut ProvisioningState, cycle: &mut Cycle<'_>) {
    let scope = users_in_scope(t);
    let mut users: Vec<&User> = t.users().collect();
    users.sort_by_key(|u| u.upn.to_lowercase());
    let mode = cycle.target.mode;
    for user in users {
        let in_scope = scope.contains(&user.id);
        let active = user.can_sign_in();
        let source = Some((user.id, user.upn.as_str()));
        match state.users.get(&user.id).cloned() {
            Some(synced) if synced.managed && in_scope => {
                // Keep the manager as sent: managers are a separate pass.
                let manager = synced.image.attrs.get(&Attr::Manager).map(String::as_str);
                let desired = mapping::desired(user, manager, active);
                let ops = mapping::user_patch_ops(&synced.image, &desired, mode);
                if ops.is_empty() {
                    continue;
                }
                let operation = match (synced.image.active, desired.active) {
                    (true, false) => ProvisioningOperation::Disable,
                    (false, true) => ProvisioningOperation::Enable,
                    _ => ProvisioningOperation::Update,
                };
                let sent = cycle
                    .call(Call {
                        operation,
                        resource_type: ResourceType::User,
                        source,
                        target_id: Some(&synced.scim_id),
                        method: Method::PATCH,
                        path: format!("/Users/{}", synced.scim_id),
                        body: Some(mapping::patch_body(ops)),
                        expect: &[200, 204],
                    })
                    .await;
                if sent.is_ok() {
                    match operation {
                        ProvisioningOperation::Disable => cycle.counts.users_disabled += 1,
                        ProvisioningOperation::Enable => cycle.counts.users_enabled += 1,
                        _ => cycle.counts.users_updated += 1,
                    }
                    state.users.insert(user.id, SyncedUser { image: desired, ..synced });
                }
            }
            Some(synced) if synced.managed => {
                // Left scope: disable, then stop managing.
                if !synced.image.active {
                    state.users.insert(user.id, SyncedUser { managed: false, ..synced });
                    continue;
                }
                let mut desired = synced.image.clone();
                desired.active = false;
                let ops = mapping::user_patch_ops(&synced.image, &desired, mode);
                let sent = cycle
                    .call(Call {
                        operation: ProvisioningOperation::Disable,
                        resource_type: ResourceType::User,
                        source,
                        target_id: Some(&synced.scim_id),
                        method: Method::PATCH,
                        path: format!("/Users/{}", synced.scim_id),
                        body: Some(mapping::patch_body(ops)),
                        expect: &[200, 204],
                    })
                    .await;
                if sent.is_ok() {
                    cycle.counts.users_disabled += 1;
                    state.users.insert(user.id, SyncedUser { image: desired, managed: false, ..synced });
                }
            }
            _ if in_scope && active => provision_user(user, state, cycle).await,
            // Disabled users are not created; unmanaged users out of scope are left alone.
            _ => {}
        }
    }
}

/// Matching lookup, then create or update.
async fn provision_user(user: &User, state: &mut ProvisioningState, cycle: &mut Cycle<'_>) {
    let mode = cycle.target.mode;
    let source = Some((user.id, user.upn.as_str()));
    let Ok(list) = cycle
        .call(Call {
            operation: ProvisioningOperation::Query,
            resource_type: ResourceType::User,
            source,
            target_id: None,
            method: Method::GET,
            path: filter_path("Users", "userName", &user.upn, false),
            body: None,
            expect: &[200],
        })
        .await
    else {
        return;
    };
    match first_resource(&list) {
        Some(existing) => {
            let Some(scim_id) = resource_id(existing) else {
                fail_last(cycle, "the matched resource has no id");
                return;
            };
            let current = mapping::from_resource(existing);
            let manager = current.attrs.get(&Attr::Manager).map(String::as_str);
            let desired = mapping::desired(user, manager, true);
            let ops = mapping::user_patch_ops(&current, &desired, mode);
            if !ops.is_empty() {
                let sent = cycle
                    .call(Call {
                        operation: if current.active {
                            ProvisioningOperation::Update
                        } else {
                            ProvisioningOperation::Enable
                        },
                        resource_type: ResourceType::User,
                        source,
                        target_id: Some(&scim_id),
                        method: Method::PATCH,
                        path: format!("/Users/{scim_id}"),
                        body: Some(mapping::patch_body(ops)),
                        expect: &[200, 204],
                    })
                    .await;
                if sent.is_err() {
                    return;
                }
                if current.active {
                    cycle.counts.users_updated += 1;
                } else {
                    cycle.counts.users_enabled += 1;
                }
            }
            state.users.insert(user.id, SyncedUser { scim_id, image: desired, managed: true });
        }
        None => {
            let desired = mapping::desired(user, None, true);
            let Ok(created) = cycle
                .call(Call {
                    operation: ProvisioningOperation::Create,
                    resource_type: ResourceType::User,
                    source,
                    target_id: None,
                    method: Method::POST,
                    path: "/Users".into(),
                    body: Some(mapping::create_user_body(&desired)),
                    expect: &[201, 200],
                })
                .await
            else {
                return;
            };
            match resource_id(&created) {
                Some(scim_id) => {
                    if let Some(last) = cycle.log.last_mut() {
                        last.target_id = Some(scim_id.clone());
                    }
                    cycle.counts.users_created += 1;
                    state.users.insert(user.id, SyncedUser { scim_id, image: desired, managed: true });
                }
                None => fail_last(cycle, "the created resource has no id"),
            }
        }
    }
}

fn fail_last(cycle: &mut Cycle<'_>, reason: &str) {
    if let Some(last) = cycle.log.last_mut() {
        last.outcome = ProvisioningOutcome::Failure;
        last.error_code = Some("SystemForCrossDomainIdentityManagementServiceIncompatible".into());
        last.reason = Some(reason.to_owned());
    }
}

/// Hard-deleted users: `DELETE` when still managed, otherwise forget them.
async fn delete_users(t: &Tenant, state: &mut ProvisioningState, cycle: &mut Cycle<'_>) {
    let gone: Vec<(Uuid, SyncedUser)> =
        state.users.iter().filter(|(id, _)| t.user(**id).is_none()).map(|(id, s)| (*id, s.clone())).collect();
    for (id, synced) in gone {
        if synced.managed {
            let name = synced.image.attrs.get(&Attr::UserName).cloned().unwrap_or_default();
            let sent = cycle
                .call(Call {
                    operation: ProvisioningOperation::Delete,
                    resource_type: ResourceType::User,
                    source: Some((id, &name)),
                    target_id: Some(&synced.scim_id),
                    method: Method::DELETE,
                    path: format!("/Users/{}", synced.scim_id),
                    body: None,
                    // 404: already gone at the target, which is what was wanted.
                    expect: &[204, 200, 404],
                })
                .await;
            if sent.is_err() {
                continue;
            }
            cycle.counts.users_deleted += 1;
        }
        state.users.remove(&id);
        // The target drops a deleted user's memberships itself.
        for g in state.groups.values_mut() {
            g.members.remove(&id);
        }
    }
}

/// Manager references, once both users are provisioned.
async fn sync_managers(t: &Tenant, state: &mut ProvisioningState, cycle: &mut Cycle<'_>) {
    let mode = cycle.target.mode;
    let mut users: Vec<&User> = t.users().collect();
    users.sort_by_key(|u| u.upn.to_lowercase());
    for user in users {
        let Some(synced) = state.users.get(&user.id).filter(|s| s.managed).cloned() else {
            continue;
        };
        let wanted = user.manager.and_then(|m| state.users.get(&m)).filter(|m| m.managed).map(|m| m.scim_id.clone());
        if synced.image.attrs.get(&Attr::Manager) == wanted.as_ref() {
            continue;
        }
        let mut desired = synced.image.clone();
        match wanted {
            Some(id) => desired.attrs.insert(Attr::Manager, id),
            None => desired.attrs.remove(&Attr::Manager),
        };
        let ops = mapping::user_patch_ops(&synced.image, &desired, mode);
        let sent = cycle
            .call(Call {
                operation: ProvisioningOperation::Update,
                resource_type: ResourceType::User,
                source: Some((user.id, &user.upn)),
                target_id: Some(&synced.scim_id),
                method: Method::PATCH,
                path: format!("/Users/{}", synced.scim_id),
                body: Some(mapping::patch_body(ops)),
                expect: &[200, 204],
            })
            .await;
        if sent.is_ok() {
            cycle.counts.users_updated += 1;
            state.users.insert(user.id, SyncedUser { image: desired, ..synced });
        }
    }
}

async fn sync_groups(t: &Tenant, state: &mut ProvisioningState, cycle: &mut Cycle<'_>) {
    let mode = cycle.target.mode;
    let mut assigned: Vec<_> = t.scim_assignments().groups.iter().filter_map(|id| t.group(*id)).collect();
    assigned.sort_by_key(|g| (g.display_name.to_lowercase(), g.id));
    for group in &assigned {
        let source = Some((group.id, group.display_name.as_str()));
        let mut synced = match state.groups.get(&group.id).cloned() {
            Some(synced) => synced,
            None => {
                let Ok(list) = cycle
                    .call(Call {
                        operation: ProvisioningOperation::Query,
                        resource_type: ResourceType::Group,
                        source,
                        target_id: None,
                        method: Method::GET,
                        path: filter_path("Groups", "displayName", &group.display_name, true),
                        body: None,
                        expect: &[200],
                    })
                    .await
                else {
                    continue;
                };
                match first_resource(&list) {
                    Some(existing) => {
                        let Some(scim_id) = resource_id(existing) else {
                            fail_last(cycle, "the matched resource has no id");
                            continue;
                        };
                        let external = existing.get("externalId").and_then(Value::as_str);
                        if external != Some(group.id.to_string().as_str()) {
                            let sent = cycle
                                .call(Call {
                                    operation: ProvisioningOperation::Update,
                                    resource_type: ResourceType::Group,
                                    source,
                                    target_id: Some(&scim_id),
                                    method: Method::PATCH,
                                    path: format!("/Groups/{scim_id}"),
                                    body: Some(mapping::patch_body(mapping::group_replace_ops(
                                        "externalId",
                                        &group.id.to_string(),
                                        mode,
                                    ))),
                                    expect: &[204, 200],
                                })
                                .await;
                            if sent.is_err() {
                                continue;
                            }
                            cycle.counts.groups_updated += 1;
                        }
                        SyncedGroup { scim_id, display_name: group.display_name.clone(), members: BTreeSet::new() }
                    }
                    None => {
                        let Ok(created) = cycle
                            .call(Call {
                                operation: ProvisioningOperation::Create,
                                resource_type: ResourceType::Group,
                                source,
                                target_id: None,
                                method: Method::POST,
                                path: "/Groups".into(),
                                body: Some(mapping::create_group_body(group)),
                                expect: &[201, 200],
                            })
                            .await
                        else {
                            continue;
                        };
                        let Some(scim_id) = resource_id(&created) else {
                            fail_last(cycle, "the created resource has no id");
                            continue;
                        };
                        if let Some(last) = cycle.log.last_mut() {
                            last.target_id = Some(scim_id.clone());
                        }
                        cycle.counts.groups_created += 1;
                        SyncedGroup { scim_id, display_name: group.display_name.clone(), members: BTreeSet::new() }
                    }
                }
            }
        };
        state.groups.insert(group.id, synced.clone());

        if synced.display_name != group.display_name {
            let sent = cycle
                .call(Call {
                    operation: ProvisioningOperation::Update,
                    resource_type: ResourceType::Group,
                    source,
                    target_id: Some(&synced.scim_id),
                    method: Method::PATCH,
                    path: format!("/Groups/{}", synced.scim_id),
                    body: Some(mapping::patch_body(mapping::group_replace_ops(
                        "displayName",
                        &group.display_name,
                        mode,
                    ))),
                    expect: &[204, 200],
                })
                .await;
            if sent.is_ok() {
                cycle.counts.groups_updated += 1;
                synced.display_name = group.display_name.clone();
                state.groups.insert(group.id, synced.clone());
            }
        }

        // Only direct user members that are provisioned and managed; nested groups are not sent.
        let desired: BTreeSet<Uuid> =
            group.member_users.iter().filter(|u| state.users.get(u).is_some_and(|s| s.managed)).copied().collect();
        let adds: Vec<Uuid> = desired.difference(&synced.members).copied().collect();
        let removes: Vec<Uuid> = synced.members.difference(&desired).copied().collect();
        if adds.is_empty() && removes.is_empty() {
            continue;
        }
        let scim = |ids: &[Uuid]| -> Vec<String> {
            let mut out: Vec<(String, String)> = ids
                .iter()
                .filter_map(|id| {
                    state.users.get(id).map(|s| {
                        (
                            s.image.attrs.get(&Attr::UserName).cloned().unwrap_or_default().to_lowercase(),
                            s.scim_id.clone(),
                        )
                    })
                })
                .collect();
            out.sort();
            out.into_iter().map(|(_, id)| id).collect()
        };
        let (add_ids, remove_ids) = (scim(&adds), scim(&removes));
        let sent = cycle
            .call(Call {
                operation: ProvisioningOperation::UpdateMembers,
                resource_type: ResourceType::Group,
                source,
                target_id: Some(&synced.scim_id),
                method: Method::PATCH,
                path: format!("/Groups/{}", synced.scim_id),
                body: Some(mapping::patch_body(mapping::member_ops(&add_ids, &remove_ids, mode))),
                expect: &[204, 200],
            })
            .await;
        if sent.is_ok() {
            cycle.counts.members_added += add_ids.len() as u64;
            cycle.counts.members_removed += remove_ids.len() as u64;
            synced.members = desired;
            state.groups.insert(group.id, synced);
        }
    }

    let assigned_ids: BTreeSet<Uuid> = assigned.iter().map(|g| g.id).collect();
    let gone: Vec<(Uuid, SyncedGroup)> =
        state.groups.iter().filter(|(id, _)| !assigned_ids.contains(id)).map(|(id, g)| (*id, g.clone())).collect();
    for (id, synced) in gone {
        let sent = cycle
            .call(Call {
                operation: ProvisioningOperation::Delete,
                resource_type: ResourceType::Group,
                source: Some((id, &synced.display_name)),
                target_id: Some(&synced.scim_id),
                method: Method::DELETE,
                path: format!("/Groups/{}", synced.scim_id),
                body: None,
                expect: &[204, 200, 404],
            })
            .await;
        if sent.is_ok() {
            cycle.counts.groups_deleted += 1;
            state.groups.remove(&id);
        }
    }
}
