-- Self-hosted applications. Destinations are kept in their own table so that two
-- applications can never claim the same host and path.
CREATE TABLE apps (
    id         TEXT PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL,
    domain     TEXT NOT NULL,
    aud        TEXT NOT NULL UNIQUE,
    settings   TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX apps_created ON apps (created_at, id);

CREATE TABLE app_destinations (
    destination TEXT PRIMARY KEY NOT NULL,
    app_id      TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    position    INTEGER NOT NULL
);
CREATE INDEX app_destinations_app ON app_destinations (app_id);
