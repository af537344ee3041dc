//! The emulated directory: tenant settings, users, groups, app registrations and the SCIM
//! enterprise app's assignments.
//!
//! [`Tenant`] is the one consistent model every endpoint reads. It is built from a tenant
//! file ([`Tenant::from_toml_str`], [`Tenant::load`]) by replaying the same edit operations
//! the admin API uses ([`Tenant::add_user`], [`Tenant::add_member`]...), so a file and a
//! sequence of edits are validated by one code path. It answers the directory questions
//! Entra answers — direct and transitive group membership — and knows nothing about HTTP,
//! tokens or SCIM. A running emulator shares it through a [`TenantHandle`].

mod handle;
pub mod spec;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::Path;

use time::OffsetDateTime;
use uuid::Uuid;

pub use handle::TenantHandle;
pub use spec::{
    AppSpec, AppUpdate, DateTimeSpec, GroupMembershipClaims, GroupSpec, GroupUpdate, OptionalClaim, ScimSpec,
    SecretSpec, TenantFile, ThrottleConfig, UserAttr, UserSpec, UserUpdate,
};

use crate::SimError;
use crate::cloud::{Cloud, HostOverrides};
use crate::secret::Secret;

/// Tenant-wide identity and settings.
#[derive(Clone, Debug)]
pub struct TenantInfo {
    /// The tenant (directory) id, `tid` in tokens.
    pub id: Uuid,
    /// The organisation's display name.
    pub display_name: String,
    /// The initial domain (`contoso.onmicrosoft.com`), accepted in place of the tenant id.
    pub domain: String,
    /// The cloud the emulator presents itself as.
    pub cloud: Cloud,
    /// Base-URL overrides.
    pub hosts: HostOverrides,
    /// Lifetimes and thresholds.
    pub settings: TenantSettings,
}

/// Lifetimes and thresholds of the emulated tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TenantSettings {
    /// More groups than this become an overage (`_claim_names`) instead of a `groups` claim.
    pub overage_threshold: usize,
    /// Authorization code lifetime in seconds.
    pub code_lifetime_secs: u64,
    /// ID token lifetime in seconds.
    pub id_token_lifetime_secs: u64,
    /// Access token lifetime in seconds.
    pub access_token_lifetime_secs: u64,
    /// Refresh token inactivity lifetime in seconds.
    pub refresh_token_lifetime_secs: u64,
    /// Browser session lifetime in seconds.
    pub session_lifetime_secs: u64,
}

impl Default for TenantSettings {
    fn default() -> Self {
        Self {
            overage_threshold: 200,
            code_lifetime_secs: 600,
            id_token_lifetime_secs: 3600,
            access_token_lifetime_secs: 3599,
            refresh_token_lifetime_secs: 90 * 24 * 3600,
            session_lifetime_secs: 24 * 3600,
        }
    }
}

/// A user of the directory.
#[derive(Clone, Debug)]
pub struct User {
    /// Object id (`oid`).
    pub id: Uuid,
    /// `userPrincipalName`.
    pub upn: String,
    /// `displayName`.
    pub display_name: String,
    /// Optional attributes (`mail`, `givenName`...).
    pub attributes: BTreeMap<UserAttr, String>,
    /// Manager's object id.
    pub manager: Option<Uuid>,
    /// `accountEnabled`.
    pub enabled: bool,
    /// In the deleted-items container (restorable); such a user cannot sign in.
    pub soft_deleted: bool,
    pub(crate) password: Option<Secret>,
}

impl User {
    /// The value of an optional attribute.
    pub fn attr(&self, attr: UserAttr) -> Option<&str> {
        self.attributes.get(&attr).map(String::as_str)
    }

    /// `mail`, if the user has a mailbox.
    pub fn mail(&self) -> Option<&str> {
        self.attr(UserAttr::Mail)
    }

    /// `mailNickname`: the stored value or the UPN's local part.
    pub fn mail_nickname(&self) -> &str {
        self.attr(UserAttr::MailNickname).unwrap_or_else(|| self.upn.split('@').next().unwrap_or(&self.upn))
    }

    /// Whether the user may sign in now.
    pub fn can_sign_in(&self) -> bool {
        self.enabled && !self.soft_deleted
    }
}

/// A group of the directory.
#[derive(Clone, Debug)]
pub struct Group {
    /// Object id.
    pub id: Uuid,
    /// `displayName`.
    pub display_name: String,
    /// `description`.
    pub description: Option<String>,
    /// `securityEnabled`.
    pub security_enabled: bool,
    /// `mailEnabled`.
    pub mail_enabled: bool,
    /// `mailNickname`.
    pub mail_nickname: String,
    /// Direct user members.
    pub member_users: BTreeSet<Uuid>,
    /// Direct group members (nesting).
    pub member_groups: BTreeSet<Uuid>,
    /// `createdDateTime`.
    pub created: OffsetDateTime,
}

/// An app registration.
#[derive(Clone, Debug)]
pub struct App {
    /// Application (client) id.
    pub client_id: Uuid,
    /// Display name.
    pub display_name: String,
    /// Registered redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Client secrets.
    pub secrets: Vec<ClientSecret>,
    /// Whether admin consent was granted.
    pub admin_consent: bool,
    /// `groupMembershipClaims`.
    pub group_membership_claims: GroupMembershipClaims,
    /// Optional ID-token claims.
    pub optional_claims: BTreeSet<OptionalClaim>,
    /// Microsoft Graph permissions.
    pub graph_permissions: Vec<String>,
    /// Public client flows allowed (no secret needed).
    pub public_client: bool,
    /// Groups assigned to the app (for `ApplicationGroup`).
    pub assigned_groups: BTreeSet<Uuid>,
}

impl App {
    /// Whether the app holds a Graph permission (case-insensitive, as Entra compares scopes).
    pub fn has_graph_permission(&self, name: &str) -> bool {
        self.graph_permissions.iter().any(|p| p.eq_ignore_ascii_case(name))
    }
}

/// A client secret of an app registration.
#[derive(Clone, Debug)]
pub struct ClientSecret {
    /// The secret ID (key id).
    pub id: Uuid,
    /// Expiry; `None` never expires.
    pub expires: Option<OffsetDateTime>,
    /// Description.
    pub display_name: Option<String>,
    pub(crate) value: Secret,
}

impl ClientSecret {
    /// The first three characters of the value, as the portal shows them.
    pub fn hint(&self) -> String {
        self.value.expose().chars().take(3).collect()
    }

    /// The secret's value, as the portal shows it once at creation — what a relying party
    /// is configured with (the demo wires its identity provider with it).
    pub fn value(&self) -> &Secret {
        &self.value
    }
}

/// Users and groups assigned to the SCIM provisioning enterprise app.
#[derive(Clone, Debug, Default)]
pub struct ScimAssignments {
    /// Assigned users.
    pub users: BTreeSet<Uuid>,
    /// Assigned groups.
    pub groups: BTreeSet<Uuid>,
}

/// The emulated directory. See the module documentation.
#[derive(Clone, Debug)]
pub struct Tenant {
    info: TenantInfo,
    users: BTreeMap<Uuid, User>,
    groups: BTreeMap<Uuid, Group>,
    apps: BTreeMap<Uuid, App>,
    scim: ScimAssignments,
    graph_throttle: ThrottleConfig,
    created: OffsetDateTime,
}

// === impl Tenant: loading ===

impl Tenant {
    /// An empty tenant.
    pub fn new(id: Uuid, cloud: Cloud) -> Self {
        Self {
            info: TenantInfo {
                id,
                display_name: "Contoso".into(),
                domain: "contoso.onmicrosoft.com".into(),
                cloud,
                hosts: HostOverrides::default(),
                settings: TenantSettings::default(),
            },
            users: BTreeMap::new(),
            groups: BTreeMap::new(),
            apps: BTreeMap::new(),
            scim: ScimAssignments::default(),
            graph_throttle: ThrottleConfig::default(),
            created: OffsetDateTime::now_utc(),
        }
    }

    /// Reads and validates a tenant file.
    ///
    /// # Errors
    /// [`SimError::ReadTenant`], [`SimError::ParseTenant`] or [`SimError::InvalidTenant`].
    pub fn load(path: &Path) -> Result<Self, SimError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| SimError::ReadTenant { path: path.to_owned(), source })?;
        Self::from_toml_str(&text).map_err(|e| match e {
            SimError::ParseTenant { message, .. } => SimError::ParseTenant { path: Some(path.to_owned()), message },
            SimError::InvalidTenant(message) => SimError::InvalidTenant(format!("{}: {message}", path.display())),
            other => other,
        })
    }

    /// Parses and validates tenant-file text.
    ///
    /// # Errors
    /// [`SimError::ParseTenant`] for TOML or format errors, [`SimError::InvalidTenant`] for
    /// inconsistencies (duplicates, unknown references).
    pub fn from_toml_str(text: &str) -> Result<Self, SimError> {
        let file: TenantFile =
            toml::from_str(text).map_err(|e| SimError::ParseTenant { path: None, message: e.to_string() })?;
        Self::from_file(file)
    }

    /// Builds a tenant from a parsed file.
    ///
    /// # Errors
    /// [`SimError::InvalidTenant`] for inconsistencies.
    pub fn from_file(file: TenantFile) -> Result<Self, SimError> {
        let t = file.tenant;
        let mut tenant = Tenant::new(t.id, t.cloud);
        let defaults = TenantSettings::default();
        tenant.info.display_name = t.display_name.unwrap_or_else(|| "Contoso".into());
        tenant.info.domain = t.domain.unwrap_or_else(|| "contoso.onmicrosoft.com".into());
        tenant.info.hosts = HostOverrides { login_url: t.login_url, issuer_url: t.issuer_url, graph_url: t.graph_url };
        tenant.info.settings = TenantSettings {
            overage_threshold: t.overage_threshold.unwrap_or(defaults.overage_threshold),
            code_lifetime_secs: t.code_lifetime_seconds.unwrap_or(defaults.code_lifetime_secs),
            id_token_lifetime_secs: t.id_token_lifetime_seconds.unwrap_or(defaults.id_token_lifetime_secs),
            access_token_lifetime_secs: t.access_token_lifetime_seconds.unwrap_or(defaults.access_token_lifetime_secs),
            refresh_token_lifetime_secs: t
                .refresh_token_lifetime_seconds
                .unwrap_or(defaults.refresh_token_lifetime_secs),
            session_lifetime_secs: t.session_lifetime_seconds.unwrap_or(defaults.session_lifetime_secs),
        };
        tenant.graph_throttle = file.graph_throttle;

        // Groups first without nesting, so that nesting and user memberships can name any
        // group regardless of file order.
        let mut nesting = Vec::new();
        for mut spec in file.groups {
            let members = std::mem::take(&mut spec.member_groups);
            let id = tenant.add_group(spec)?;
            nesting.push((id, members));
        }
        for (parent, members) in nesting {
            for member in members {
                let child = tenant.resolve_group(&member)?;
                tenant.add_member(parent, child)?;
            }
        }
        // Users next, managers last (a manager may appear after the user in the file).
        let mut managers = Vec::new();
        for mut spec in file.users {
            let manager = spec.manager.take();
            let id = tenant.add_user(spec)?;
            if let Some(m) = manager {
                managers.push((id, m));
            }
        }
        for (id, manager) in managers {
            let update = UserUpdate { manager: Some(Some(manager)), ..UserUpdate::default() };
            tenant.update_user(id, update)?;
        }
        for spec in file.apps {
            tenant.add_app(spec)?;
        }
        for user in file.scim.users {
            let id = tenant.resolve_user(&user)?;
            tenant.assign_scim(id)?;
        }
        for group in file.scim.groups {
            let id = tenant.resolve_group(&group)?;
            tenant.assign_scim(id)?;
        }
        Ok(tenant)
    }
}

// === impl Tenant: queries ===

impl Tenant {
    /// Tenant-wide identity and settings.
    pub fn info(&self) -> &TenantInfo {
        &self.info
    }

    /// The tenant id.
    pub fn id(&self) -> Uuid {
        self.info.id
    }

    /// The Graph throttling configured in the tenant file.
    pub fn graph_throttle(&self) -> ThrottleConfig {
        self.graph_throttle
    }

    /// All users (including soft-deleted ones), ordered by object id.
    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    /// A user by object id.
    pub fn user(&self, id: Uuid) -> Option<&User> {
        self.users.get(&id)
    }

    /// A user by UPN, case-insensitively.
    pub fn user_by_upn(&self, upn: &str) -> Option<&User> {
        self.users.values().find(|u| u.upn.eq_ignore_ascii_case(upn))
    }

    /// A user by object id or UPN, as Graph's `/users/{id | userPrincipalName}` accepts.
    pub fn user_by_id_or_upn(&self, key: &str) -> Option<&User> {
        match Uuid::parse_str(key) {
            Ok(id) => self.user(id),
            Err(_) => self.user_by_upn(key),
        }
    }

    /// All groups, ordered by object id.
    pub fn groups(&self) -> impl Iterator<Item = &Group> {
        self.groups.values()
    }

    /// A group by object id.
    pub fn group(&self, id: Uuid) -> Option<&Group> {
        self.groups.get(&id)
    }

    /// All app registrations.
    pub fn apps(&self) -> impl Iterator<Item = &App> {
        self.apps.values()
    }

    /// An app registration by client id.
    pub fn app(&self, client_id: Uuid) -> Option<&App> {
        self.apps.get(&client_id)
    }

    /// The SCIM enterprise app's assignments.
    pub fn scim_assignments(&self) -> &ScimAssignments {
        &self.scim
    }

    /// Groups the user is a direct member of, ordered by display name then id.
    pub fn direct_groups(&self, user: Uuid) -> Vec<&Group> {
        let mut groups: Vec<&Group> = self.groups.values().filter(|g| g.member_users.contains(&user)).collect();
        sort_groups(&mut groups);
        groups
    }

    /// Groups the user belongs to directly or through nesting, ordered by display name then
    /// id. Cycles in nesting are tolerated.
    pub fn transitive_groups(&self, user: Uuid) -> Vec<&Group> {
        let mut parents: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
        for g in self.groups.values() {
            for child in &g.member_groups {
                parents.entry(*child).or_default().push(g.id);
            }
        }
        let mut seen: BTreeSet<Uuid> = BTreeSet::new();
        let mut queue: VecDeque<Uuid> = self.direct_groups(user).iter().map(|g| g.id).collect();
        while let Some(id) = queue.pop_front() {
            if seen.insert(id) {
                queue.extend(parents.get(&id).into_iter().flatten().copied());
            }
        }
        let mut groups: Vec<&Group> = seen.iter().filter_map(|id| self.groups.get(id)).collect();
        sort_groups(&mut groups);
        groups
    }

    /// Resolves a user reference: an object id or a UPN.
    ///
    /// # Errors
    /// [`SimError::NotFound`] when no user matches.
    pub fn resolve_user(&self, reference: &str) -> Result<Uuid, SimError> {
        self.user_by_id_or_upn(reference).map(|u| u.id).ok_or_else(|| SimError::NotFound(format!("user {reference:?}")))
    }

    /// Resolves a group reference: an object id or a display name (case-insensitive, must
    /// be unambiguous).
    ///
    /// # Errors
    /// [`SimError::NotFound`] when nothing matches, [`SimError::InvalidTenant`] when the
    /// name is ambiguous.
    pub fn resolve_group(&self, reference: &str) -> Result<Uuid, SimError> {
        if let Ok(id) = Uuid::parse_str(reference) {
            return self
                .groups
                .contains_key(&id)
                .then_some(id)
                .ok_or_else(|| SimError::NotFound(format!("group {reference:?}")));
        }
        let mut matches = self.groups.values().filter(|g| g.display_name.eq_ignore_ascii_case(reference));
        match (matches.next(), matches.next()) {
            (Some(g), None) => Ok(g.id),
            (Some(_), Some(_)) => Err(SimError::InvalidTenant(format!(
                "group name {reference:?} is ambiguous; refer to the group by object id"
            ))),
            (None, _) => Err(SimError::NotFound(format!("group {reference:?}"))),
        }
    }

    fn derive_id(&self, kind: &str, key: &str) -> Uuid {
        derive_uuid(&format!("{}/{kind}/{key}", self.info.id))
    }

    fn object_exists(&self, id: Uuid) -> bool {
        self.users.contains_key(&id) || self.groups.contains_key(&id) || self.apps.contains_key(&id)
    }
}

fn sort_groups(groups: &mut [&Group]) {
    groups.sort_by(|a, b| a.display_name.to_lowercase().cmp(&b.display_name.to_lowercase()).then(a.id.cmp(&b.id)));
}

/// A stable, random-looking (version 4 layout) UUID derived from a key, so tenant files may
/// omit ids and still get the same ones on every load.
pub(crate) fn derive_uuid(key: &str) -> Uuid {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest.as_ref()[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

// === impl Tenant: edits ===

impl Tenant {
    /// Adds a user, its direct memberships and its synthetic groups.
    ///
    /// # Errors
    /// [`SimError::InvalidTenant`] for a duplicate id or UPN or an empty name;
    /// [`SimError::NotFound`] for an unknown group or manager.
    pub fn add_user(&mut self, spec: UserSpec) -> Result<Uuid, SimError> {
        let upn = spec.upn.trim().to_owned();
        if upn.is_empty() || !upn.contains('@') {
            return Err(SimError::InvalidTenant(format!("user UPN {upn:?} must look like name@domain")));
        }
        if spec.display_name.trim().is_empty() {
            return Err(SimError::InvalidTenant(format!("user {upn:?} needs a display_name")));
        }
        if self.user_by_upn(&upn).is_some() {
            return Err(SimError::InvalidTenant(format!("duplicate UPN {upn:?}")));
        }
        let id = spec.id.unwrap_or_else(|| self.derive_id("user", &upn.to_lowercase()));
        if self.object_exists(id) {
            return Err(SimError::InvalidTenant(format!("duplicate object id {id} (user {upn:?})")));
        }
        let groups = spec.groups.iter().map(|g| self.resolve_group(g)).collect::<Result<Vec<_>, _>>()?;
        let manager = spec.manager.as_deref().map(|m| self.resolve_user(m)).transpose()?;
        let attributes = spec.attributes.into_iter().filter(|(_, v)| !v.is_empty()).collect();
        let local = upn.split('@').next().unwrap_or(&upn).to_owned();
        self.users.insert(
            id,
            User {
                id,
                upn,
                display_name: spec.display_name,
                attributes,
                manager,
                enabled: spec.enabled,
                soft_deleted: false,
                password: spec.password,
            },
        );
        for g in groups {
            self.add_member(g, id)?;
        }
        for i in 1..=spec.extra_groups {
            let key = format!("{id}/{i}");
            let gid = self.derive_id("extra-group", &key);
            let group = GroupSpec {
                id: Some(gid),
                display_name: format!("{local} extra group {i:03}"),
                description: Some(format!("Synthetic group {i} of {local}")),
                security_enabled: true,
                mail_enabled: false,
                mail_nickname: Some(format!("{local}-extra-{i:03}")),
                member_groups: Vec::new(),
            };
            self.add_group(group)?;
            self.add_member(gid, id)?;
        }
        Ok(id)
    }

    /// Updates a user.
    ///
    /// # Errors
    /// [`SimError::NotFound`] for an unknown user or manager; [`SimError::InvalidTenant`]
    /// for a UPN already taken.
    pub fn update_user(&mut self, id: Uuid, update: UserUpdate) -> Result<(), SimError> {
        if !self.users.contains_key(&id) {
            return Err(SimError::NotFound(format!("user {id}")));
        }
        if let Some(upn) = &update.upn {
            if let Some(other) = self.user_by_upn(upn).filter(|u| u.id != id) {
                return Err(SimError::InvalidTenant(format!("UPN {upn:?} is taken by {}", other.id)));
            }
            if !upn.contains('@') {
                return Err(SimError::InvalidTenant(format!("UPN {upn:?} must look like name@domain")));
            }
        }
        let manager = match &update.manager {
            Some(Some(m)) => Some(Some(self.resolve_user(m)?)),
            Some(None) => Some(None),
            None => None,
        };
        let user = self.users.get_mut(&id).ok_or_else(|| SimError::NotFound(format!("user {id}")))?;
        if let Some(upn) = update.upn {
            user.upn = upn;
        }
        if let Some(name) = update.display_name {
            user.display_name = name;
        }
        if let Some(password) = update.password {
            user.password = Some(password);
        }
        if let Some(enabled) = update.enabled {
            user.enabled = enabled;
        }
        if let Some(manager) = manager {
            user.manager = manager;
        }
        for (attr, value) in update.attributes {
            match value.filter(|v| !v.is_empty()) {
                Some(v) => user.attributes.insert(attr, v),
                None => user.attributes.remove(&attr),
            };
        }
        Ok(())
    }

    /// Enables or disables a user (`accountEnabled`).
    ///
    /// # Errors
    /// [`SimError::NotFound`] for an unknown user.
    pub fn set_user_enabled(&mut self, id: Uuid, enabled: bool) -> Result<(), SimError> {
        self.update_user(id, UserUpdate { enabled: Some(enabled), ..UserUpdate::default() })
    }

    /// Moves a user to deleted items (restorable; provisioning disables it).
    ///
    /// # Errors
    /// [`SimError::NotFound`] for an unknown user.
    pub fn soft_delete_user(&mut self, id: Uuid) -> Result<(), SimError> {
        self.users.get_mut(&id).map(|u| u.soft_deleted = true).ok_or_else(|| SimError::NotFound(format!("user {id}")))
    }

    /// Restores a soft-deleted user.
    ///
    /// # Errors
    /// [`SimError::NotFound`] for an unknown user.
    pub fn restore_user(&mut self, id: Uuid) -> Result<(), SimError> {
        self.users.get_mut(&id).map(|u| u.soft_deleted = false).ok_or_else(|| SimError::NotFound(format!("user {id}")))
    }

    /// Deletes a user permanently (provisioning sends `DELETE`), removing its memberships,
    /// assignments and manager references.
    ///
    /// # Errors
    /// [`SimError::NotFound`] for an unknown user.
    pub fn delete_user(&mut self, id: Uuid) -> Result<(), SimError> {
        self.users.remove(&id).ok_or_else(|| SimError::NotFound(format!("user {id}")))?;
        for g in self.groups.values_mut() {
            g.member_users.remove(&id);
        }
        for u in self.users.values_mut() {
            if u.manager == Some(id) {
                u.manager = None;
            }
        }
        self.scim.users.remove(&id);
        Ok(())
    }

    /// Adds a group (without members).
    ///
    /// # Errors
    /// [`SimError::InvalidTenant`] for a duplicate id or an empty name; [`SimError::NotFound`]
    /// for an unknown nested group.
    pub fn add_group(&mut self, spec: GroupSpec) -> Result<Uuid, SimError> {
        let name = spec.display_name.trim().to_owned();
        if name.is_empty() {
            return Err(SimError::InvalidTenant("a group needs a display_name".into()));
        }
        let id = spec.id.unwrap_or_else(|| self.derive_id("group", &name.to_lowercase()));
        if self.object_exists(id) {
            return Err(SimError::InvalidTenant(format!("duplicate object id {id} (group {name:?})")));
        }
        let members = spec.member_groups.iter().map(|g| self.resolve_group(g)).collect::<Result<Vec<_>, _>>()?;
        let nickname = spec
            .mail_nickname
            .unwrap_or_else(|| name.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_lowercase());
        self.groups.insert(
            id,
            Group {
                id,
                display_name: name,
                description: spec.description,
                security_enabled: spec.security_enabled,
                mail_enabled: spec.mail_enabled,
                mail_nickname: nickname,
                member_users: BTreeSet::new(),
                member_groups: BTreeSet::new(),
                created: self.created,
            },
        );
        for m in members {
            self.add_member(id, m)?;
        }
        Ok(id)
    }

    /// Updates (e.g. renames) a group.
    ///
    /// # Errors
    /// [`SimError::NotFound`] for an unknown group; [`SimError::InvalidTenant`] for an
    /// empty name.
    pub fn update_group(&mut self, id: Uuid, update: GroupUpdate) -> Result<(), SimError> {
        let group = self.groups.get_mut(&id).ok_or_else(|| SimError::NotFound(format!("group {id}")))?;
        if let Some(name) = update.display_name {
            if name.trim().is_empty() {
                return Err(SimError::InvalidTenant("a group needs a display_name".into()));
            }
            group.display_name = name;
        }
        if let Some(description) = update.description {
            group.description = description;
        }
        if let Some(security) = update.security_enabled {
            group.security_enabled = security;
        }
        Ok(())
    }

    /// Deletes a group, removing it from parents, app assignments and SCIM assignments.
    ///
    /// # Errors
    /// [`SimError::NotFound`] for an unknown group.
    pub fn delete_group(&mut self, id: Uuid) -> Result<(), SimError> {
        self.groups.remove(&id).ok_or_else(|| SimError::NotFound(format!("group {id}")))?;
        for g in self.groups.values_mut() {
            g.member_groups.remove(&id);
        }
        for a in self.apps.values_mut() {
            a.assigned_groups.remove(&id);
        }
        self.scim.groups.remove(&id);
        Ok(())
    }

    /// Adds a user or a group (nesting) as a direct member of a group. Idempotent.
    ///
    /// # Errors
    /// [`SimError::NotFound`] for unknown objects; [`SimError::InvalidTenant`] when a group
    /// would contain itself.
    pub fn add_member(&mut self, group: Uuid, member: Uuid) -> Result<(), SimError> {
        let is_user = self.users.contains_key(&member);
        let is_group = self.groups.contains_key(&member);
        if group == member {
            return Err(SimError::InvalidTenant(format!("group {group} cannot contain itself")));
        }
        let g = self.groups.get_mut(&group).ok_or_else(|| SimError::NotFound(format!("group {group}")))?;
        if is_user {
            g.member_users.insert(member);
        } else if is_group {
            g.member_groups.insert(member);
        } else {
            return Err(SimError::NotFound(format!("member {member}")));
        }
        Ok(())
    }

    /// Removes a direct member from a group.
    ///
    /// # Errors
    /// [`SimError::NotFound`] when the group is unknown or the object is not a member.
    pub fn remove_member(&mut self, group: Uuid, member: Uuid) -> Result<(), SimError> {
        let g = self.groups.get_mut(&group).ok_or_else(|| SimError::NotFound(format!("group {group}")))?;
        if g.member_users.remove(&member) || g.member_groups.remove(&member) {
            Ok(())
        } else {
            Err(SimError::NotFound(format!("{member} is not a member of {group}")))
        }
    }

    /// Assigns a user or group to the SCIM provisioning app. Idempotent.
    ///
    /// # Errors
    /// [`SimError::NotFound`] for an unknown object.
    pub fn assign_scim(&mut self, id: Uuid) -> Result<(), SimError> {
        if self.users.contains_key(&id) {
            self.scim.users.insert(id);
        } else if self.groups.contains_key(&id) {
            self.scim.groups.insert(id);
        } else {
            return Err(SimError::NotFound(format!("user or group {id}")));
        }
        Ok(())
    }

    /// Removes a user or group from the SCIM provisioning app's assignments.
    ///
    /// # Errors
    /// [`SimError::NotFound`] when the object is not assigned.
    pub fn unassign_scim(&mut self, id: Uuid) -> Result<(), SimError> {
        if self.scim.users.remove(&id) || self.scim.groups.remove(&id) {
            Ok(())
        } else {
            Err(SimError::NotFound(format!("{id} is not assigned to the SCIM app")))
        }
    }

    /// Adds an app registration.
    ///
    /// # Errors
    /// [`SimError::InvalidTenant`] for duplicates or malformed redirect URIs;
    /// [`SimError::NotFound`] for unknown assigned groups.
    pub fn add_app(&mut self, spec: AppSpec) -> Result<Uuid, SimError> {
        let client_id = spec.client_id.unwrap_or_else(|| self.derive_id("app", &spec.display_name.to_lowercase()));
        if self.object_exists(client_id) {
            return Err(SimError::InvalidTenant(format!("duplicate client id {client_id}")));
        }
        validate_redirect_uris(&spec.redirect_uris)?;
        let mut secrets: Vec<ClientSecret> = Vec::new();
        for (i, s) in spec.secrets.into_iter().enumerate() {
            let id = s.id.unwrap_or_else(|| self.derive_id("secret", &format!("{client_id}/{i}")));
            if s.value.expose().is_empty() {
                return Err(SimError::InvalidTenant(format!("secret {id} of app {client_id} has an empty value")));
            }
            if s.value.expose().eq_ignore_ascii_case(&id.to_string()) {
                return Err(SimError::InvalidTenant(format!("secret {id}: the value must differ from the secret ID")));
            }
            if secrets.iter().any(|other| other.id == id) {
                return Err(SimError::InvalidTenant(format!("duplicate secret id {id}")));
            }
            secrets.push(ClientSecret {
                id,
                expires: s.expires.map(|d| d.0),
                display_name: s.display_name,
                value: s.value,
            });
        }
        let assigned_groups =
            spec.assigned_groups.iter().map(|g| self.resolve_group(g)).collect::<Result<BTreeSet<_>, _>>()?;
        self.apps.insert(
            client_id,
            App {
                client_id,
                display_name: spec.display_name,
                redirect_uris: spec.redirect_uris,
                secrets,
                admin_consent: spec.admin_consent,
                group_membership_claims: spec.group_membership_claims,
                optional_claims: spec.optional_claims.into_iter().collect(),
                graph_permissions: spec.graph_permissions,
                public_client: spec.public_client,
                assigned_groups,
            },
        );
        Ok(client_id)
    }

    /// Updates an app registration.
    ///
    /// # Errors
    /// [`SimError::NotFound`] for an unknown app; [`SimError::InvalidTenant`] for malformed
    /// redirect URIs.
    pub fn update_app(&mut self, client_id: Uuid, update: AppUpdate) -> Result<(), SimError> {
        if let Some(uris) = &update.redirect_uris {
            validate_redirect_uris(uris)?;
        }
        let app = self.apps.get_mut(&client_id).ok_or_else(|| SimError::NotFound(format!("app {client_id}")))?;
        if let Some(uris) = update.redirect_uris {
            app.redirect_uris = uris;
        }
        if let Some(consent) = update.admin_consent {
            app.admin_consent = consent;
        }
        if let Some(claims) = update.group_membership_claims {
            app.group_membership_claims = claims;
        }
        if let Some(optional) = update.optional_claims {
            app.optional_claims = optional.into_iter().collect();
        }
        if let Some(permissions) = update.graph_permissions {
            app.graph_permissions = permissions;
        }
        Ok(())
    }

    /// Adds a client secret with a fresh ID and value, returned once as Entra shows them.
    ///
    /// # Errors
    /// [`SimError::NotFound`] for an unknown app.
    pub fn add_app_secret(
        &mut self,
        client_id: Uuid,
        expires: Option<OffsetDateTime>,
        display_name: Option<String>,
    ) -> Result<(Uuid, String), SimError> {
        let app = self.apps.get_mut(&client_id).ok_or_else(|| SimError::NotFound(format!("app {client_id}")))?;
        let id = Uuid::new_v4();
        let random = Uuid::new_v4().simple().to_string();
        // Entra secret values carry a three-character prefix, `8Q~`-style, then 37 more.
        let value = format!("{}8Q~{}", &random[..3], &random[3..]);
        app.secrets.push(ClientSecret { id, expires, display_name, value: Secret::new(value.clone()) });
        Ok((id, value))
    }
}

fn validate_redirect_uris(uris: &[String]) -> Result<(), SimError> {
    for uri in uris {
        url::Url::parse(uri).map_err(|e| SimError::InvalidTenant(format!("redirect URI {uri:?}: {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
[tenant]
id = "11111111-1111-4111-8111-111111111111"

[[groups]]
display_name = "Engineering"
member_groups = ["Platform"]

[[groups]]
display_name = "Platform"

[[groups]]
display_name = "Everyone"
member_groups = ["Engineering"]

[[users]]
upn = "alice@contoso.onmicrosoft.com"
display_name = "Alice"
groups = ["Platform"]
manager = "bob@contoso.onmicrosoft.com"
extra_groups = 3

[[users]]
upn = "bob@contoso.onmicrosoft.com"
display_name = "Bob"

[[apps]]
display_name = "App"
redirect_uris = ["http://localhost/cb"]
[[apps.secrets]]
value = "abc8Q~secret"
expires = 2030-01-01T00:00:00Z
"#;

    #[test]
    fn nesting_is_transitive_but_not_direct() {
        let t = Tenant::from_toml_str(SAMPLE).unwrap();
        let alice = t.user_by_upn("ALICE@contoso.onmicrosoft.com").unwrap();
        let direct: Vec<_> = t.direct_groups(alice.id).iter().map(|g| g.display_name.clone()).collect();
        assert_eq!(direct.len(), 4, "{direct:?}");
        assert!(direct.contains(&"Platform".to_string()));
        assert!(!direct.contains(&"Engineering".to_string()));
        let transitive: Vec<_> = t.transitive_groups(alice.id).iter().map(|g| g.display_name.clone()).collect();
        assert_eq!(transitive.len(), 6);
        assert!(transitive.contains(&"Everyone".to_string()));
        assert_eq!(alice.manager, t.user_by_upn("bob@contoso.onmicrosoft.com").map(|u| u.id));
    }

    #[test]
    fn ids_are_derived_stably() {
        let a = Tenant::from_toml_str(SAMPLE).unwrap();
        let b = Tenant::from_toml_str(SAMPLE).unwrap();
        let ids = |t: &Tenant| t.groups().map(|g| g.id).collect::<Vec<_>>();
        assert_eq!(ids(&a), ids(&b));
        let app = a.apps().next().unwrap();
        assert_eq!(app.secrets[0].expires.unwrap().year(), 2030);
        assert_eq!(app.secrets[0].hint(), "abc");
    }

    #[test]
    fn cycles_in_nesting_terminate() {
        let mut t = Tenant::from_toml_str(SAMPLE).unwrap();
        let eng = t.resolve_group("engineering").unwrap();
        let everyone = t.resolve_group("Everyone").unwrap();
        t.add_member(eng, everyone).unwrap();
        let alice = t.resolve_user("alice@contoso.onmicrosoft.com").unwrap();
        assert_eq!(t.transitive_groups(alice).len(), 6);
    }

    #[test]
    fn bad_references_and_duplicates_are_errors() {
        let bad = SAMPLE.replace("groups = [\"Platform\"]", "groups = [\"Nope\"]");
        assert!(matches!(Tenant::from_toml_str(&bad), Err(SimError::NotFound(_))));
        let dup = format!("{SAMPLE}\n[[users]]\nupn = \"Bob@contoso.onmicrosoft.com\"\ndisplay_name = \"B\"\n");
        assert!(matches!(Tenant::from_toml_str(&dup), Err(SimError::InvalidTenant(_))));
        let unknown = SAMPLE.replace("[tenant]", "[tenant]\ncolour = \"red\"");
        assert!(matches!(Tenant::from_toml_str(&unknown), Err(SimError::ParseTenant { .. })));
    }

    #[test]
    fn deleting_a_user_clears_references() {
        let mut t = Tenant::from_toml_str(SAMPLE).unwrap();
        let bob = t.resolve_user("bob@contoso.onmicrosoft.com").unwrap();
        t.assign_scim(bob).unwrap();
        t.delete_user(bob).unwrap();
        assert!(t.users().all(|u| u.manager.is_none()));
        assert!(t.scim_assignments().users.is_empty());
    }
}
