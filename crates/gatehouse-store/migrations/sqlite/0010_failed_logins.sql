-- Failed sign-ins at the callback, with the reason, for the user registry's failed_logins.
-- `subject_key` is "<idp id>|<subject>" when the IdP identified the user, else "" (the IdP
-- refused before saying who it was). Rows are bounded: each goes at `expires_at`, and only
-- the newest rows per key are kept.
CREATE TABLE failed_logins (
    id          TEXT PRIMARY KEY NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    subject_key TEXT NOT NULL,
    idp_id      TEXT,
    user_id     TEXT,
    email       TEXT,
    app_id      TEXT,
    app_name    TEXT,
    aud         TEXT,
    reason_code TEXT NOT NULL,
    reason      TEXT NOT NULL,
    ip_address  TEXT NOT NULL,
    ray_id      TEXT NOT NULL
);
CREATE INDEX failed_logins_subject ON failed_logins (subject_key, created_at);
CREATE INDEX failed_logins_expires ON failed_logins (expires_at);
