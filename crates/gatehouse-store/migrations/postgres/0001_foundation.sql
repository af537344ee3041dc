-- Foundation: installation metadata, organisation, identity providers, admin API tokens.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

CREATE TABLE organization (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    data TEXT NOT NULL
);

CREATE TABLE identity_providers (
    id               TEXT PRIMARY KEY NOT NULL,
    name             TEXT NOT NULL,
    kind             TEXT NOT NULL,
    config           TEXT NOT NULL,
    client_secret    BYTEA NOT NULL,
    scim_enabled     BOOLEAN NOT NULL,
    scim_config      TEXT NOT NULL,
    scim_secret_hash TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX identity_providers_created ON identity_providers (created_at, id);

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY NOT NULL,
    name         TEXT NOT NULL,
    secret_hash  TEXT NOT NULL UNIQUE,
    read_only    BOOLEAN NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT
);
