-- SCIM provisioning: users and groups per identity provider, direct memberships, the
-- provisioning log, and nested-group drift seen at sign-in.
CREATE TABLE scim_users (
    id              TEXT PRIMARY KEY NOT NULL,
    idp_id          TEXT NOT NULL REFERENCES identity_providers (id) ON DELETE CASCADE,
    user_name       TEXT NOT NULL,
    user_name_lower TEXT NOT NULL,
    external_id     TEXT,
    display_name    TEXT,
    display_lower   TEXT,
    email_lower     TEXT,
    active          BOOLEAN NOT NULL,
    resource        TEXT NOT NULL,
    version         BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    UNIQUE (idp_id, user_name_lower)
);
CREATE INDEX scim_users_list ON scim_users (idp_id, created_at, id);
CREATE INDEX scim_users_external ON scim_users (idp_id, external_id);
CREATE INDEX scim_users_email ON scim_users (idp_id, email_lower);

CREATE TABLE scim_groups (
    id                 TEXT PRIMARY KEY NOT NULL,
    idp_id             TEXT NOT NULL REFERENCES identity_providers (id) ON DELETE CASCADE,
    display_name       TEXT NOT NULL,
    display_lower      TEXT NOT NULL,
    external_id        TEXT,
    resource           TEXT NOT NULL,
    version            BIGINT NOT NULL,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    UNIQUE (idp_id, display_lower)
);
CREATE INDEX scim_groups_list ON scim_groups (idp_id, created_at, id);
CREATE INDEX scim_groups_external ON scim_groups (idp_id, external_id);

CREATE TABLE scim_members (
    group_id TEXT NOT NULL REFERENCES scim_groups (id) ON DELETE CASCADE,
    user_id  TEXT NOT NULL REFERENCES scim_users (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX scim_members_user ON scim_members (user_id);

CREATE TABLE scim_log (
    id                  TEXT PRIMARY KEY NOT NULL,
    idp_id              TEXT NOT NULL,
    logged_at           BIGINT NOT NULL,
    request_method      TEXT NOT NULL,
    resource_type       TEXT NOT NULL,
    cf_resource_id      TEXT,
    idp_resource_id     TEXT,
    resource_user_email TEXT,
    resource_group_name TEXT,
    status              TEXT NOT NULL,
    error_description   TEXT,
    request_body        TEXT
);
CREATE INDEX scim_log_idp ON scim_log (idp_id, logged_at);

CREATE TABLE scim_drift (
    idp_id        TEXT NOT NULL REFERENCES identity_providers (id) ON DELETE CASCADE,
    scim_user_id  TEXT NOT NULL REFERENCES scim_users (id) ON DELETE CASCADE,
    group_id      TEXT NOT NULL REFERENCES scim_groups (id) ON DELETE CASCADE,
    detected_at   BIGINT NOT NULL,
    PRIMARY KEY (scim_user_id, group_id)
);
CREATE INDEX scim_drift_idp ON scim_drift (idp_id, detected_at);
