//! What provisioning does to people already signed in, per the IdP's `scim_config`:
//!
//! - `user_deprovision`: a user deactivated (`active: false`) or deleted loses every session
//!   — through the store's revocation, which every instance's data plane hears (in process,
//!   and through PostgreSQL `NOTIFY`), so the very next request is refused; with
//!   `seat_deprovision` the seat is freed too. The sign-in callback refuses a deactivated
//!   user (see `ScimStore::scim_sign_in`).
//! - `identity_update_behavior`: `automatic` writes SCIM group changes into the registry
//!   identity the data plane evaluates (and announces the change so caches drop it);
//!   `reauth` (and the legacy `group_member_deprovision`) revokes the member's sessions;
//!   `no_action` waits for the next sign-in.
//!
//! Effects run after the SCIM write committed and are idempotent, so a retried request
//! (Entra retries failures for weeks) completes what a failed attempt left undone.

use gatehouse_core::idp::{IdentityProvider, IdentityUpdateBehavior};
use gatehouse_store::{ScimGroupRecord, ScimStore, ScimUserRecord, SessionStore, Store, StoreError};
use serde_json::{Value, json};

/// A user is inactive or gone: revoke (and free seats) when the IdP says so.
pub(crate) async fn user_inactive(
    store: &Store,
    idp: &IdentityProvider,
    user: &ScimUserRecord,
) -> Result<(), StoreError> {
    if !idp.scim.user_deprovision {
        return Ok(());
    }
    let now = gatehouse_core::now_millis();
    for linked in store.scim_linked_users(user).await? {
        let revoked = store.revoke_user_sessions(linked.id, now).await?;
        if idp.scim.seat_deprovision && linked.access_seat {
            store.set_access_seat(linked.id, false, now).await?;
        }
        tracing::info!(idp = %idp.id, user = %linked.id, revoked, "SCIM deprovisioned a user");
    }
    Ok(())
}

/// The id a group carries in identities: its `externalId` (Entra's object id, as in tokens),
/// else its SCIM id.
fn identity_group_id(g: &ScimGroupRecord) -> String {
    g.external_id.clone().unwrap_or_else(|| g.id.clone()).to_lowercase()
}

/// Group membership changed for `added` and `removed` (SCIM user ids).
pub(crate) async fn membership_changed(
    store: &Store,
    idp: &IdentityProvider,
    group: &ScimGroupRecord,
    added: &[String],
    removed: &[String],
) -> Result<(), StoreError> {
    if added.is_empty() && removed.is_empty() {
        return Ok(());
    }
    if behaviour(idp) == IdentityUpdateBehavior::NoAction || !store.scim_idp_has_sign_ins(idp.id).await? {
        // Nobody signed in through this IdP yet (the initial sync): no identity to update.
        return Ok(());
    }
    for (ids, joined) in [(added, true), (removed, false)] {
        for id in ids {
            let Some(user) = store.scim_get_user(idp.id, id).await? else { continue };
            member_changed(store, idp, group, &user, joined).await?;
        }
    }
    Ok(())
}

/// One user joined or left a group (the user record may already be deleted).
pub(crate) async fn member_changed(
    store: &Store,
    idp: &IdentityProvider,
    group: &ScimGroupRecord,
    user: &ScimUserRecord,
    joined: bool,
) -> Result<(), StoreError> {
    let behaviour = behaviour(idp);
    if behaviour == IdentityUpdateBehavior::NoAction {
        return Ok(());
    }
    let now = gatehouse_core::now_millis();
    let gid = identity_group_id(group);
    for linked in store.scim_linked_users(user).await? {
        match behaviour {
            IdentityUpdateBehavior::Reauth => {
                store.revoke_user_sessions(linked.id, now).await?;
            }
            IdentityUpdateBehavior::Automatic => {
                let mut identity = linked.identity.clone();
                if set_group(&mut identity, &gid, &group.display_name, joined) {
                    store.set_user_identity(linked.id, &identity, now).await?;
                }
            }
            IdentityUpdateBehavior::NoAction => {}
        }
    }
    Ok(())
}

fn behaviour(idp: &IdentityProvider) -> IdentityUpdateBehavior {
    if idp.scim.group_member_deprovision { IdentityUpdateBehavior::Reauth } else { idp.scim.identity_update_behavior }
}

/// A group was renamed: with `automatic`, identities that carry it show the new name.
pub(crate) async fn group_renamed(
    store: &Store,
    idp: &IdentityProvider,
    group: &ScimGroupRecord,
    members: &[String],
) -> Result<(), StoreError> {
    if behaviour(idp) != IdentityUpdateBehavior::Automatic {
        return Ok(());
    }
    let gid = identity_group_id(group);
    let now = gatehouse_core::now_millis();
    for id in members {
        let Some(user) = store.scim_get_user(idp.id, id).await? else { continue };
        for linked in store.scim_linked_users(&user).await? {
            let mut identity = linked.identity.clone();
            if set_group(&mut identity, &gid, &group.display_name, true) {
                store.set_user_identity(linked.id, &identity, now).await?;
            }
        }
    }
    Ok(())
}

/// Adds (with its name) or removes a group in an identity's `groups`; whether it changed.
fn set_group(identity: &mut Value, id: &str, name: &str, member: bool) -> bool {
    if !identity.is_object() {
        *identity = json!({});
    }
    let Some(obj) = identity.as_object_mut() else { return false };
    let groups = obj.entry("groups").or_insert_with(|| json!([]));
    if !groups.is_array() {
        *groups = json!([]);
    }
    let Some(list) = groups.as_array_mut() else { return false };
    let matches = |g: &Value| g["id"].as_str().is_some_and(|g| g.eq_ignore_ascii_case(id));
    let before = list.clone();
    if member {
        match list.iter_mut().find(|g| matches(g)) {
            Some(g) => g["name"] = Value::String(name.to_owned()),
            None => list.push(json!({"id": id, "name": name})),
        }
    } else {
        list.retain(|g| !matches(g));
    }
    *list != before
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_added_renamed_and_removed_once() {
        let mut id = json!({"email": "a@b", "groups": [{"id": "G1", "name": null}]});
        assert!(set_group(&mut id, "g1", "Eng", true));
        assert!(!set_group(&mut id, "g1", "Eng", true));
        assert!(set_group(&mut id, "g2", "Ops", true));
        assert_eq!(id["groups"], json!([{"id": "G1", "name": "Eng"}, {"id": "g2", "name": "Ops"}]));
        assert!(set_group(&mut id, "G2", "", false));
        assert!(!set_group(&mut id, "g3", "", false));
        assert_eq!(id["groups"], json!([{"id": "G1", "name": "Eng"}]));
        let mut empty = json!(null);
        assert!(set_group(&mut empty, "x", "X", true));
    }
}
