-- Dashboard sign-in sessions. The cookie carries a random id; only its SHA-256 is stored,
-- so a copy of the database cannot be turned into a signed-in browser.
CREATE TABLE dashboard_sessions (
    id_hash    TEXT PRIMARY KEY NOT NULL,
    token_id   TEXT NOT NULL,
    read_only  BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX dashboard_sessions_expires ON dashboard_sessions (expires_at);
