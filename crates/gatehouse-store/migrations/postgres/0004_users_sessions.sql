-- The user registry, sign-in sessions and pending sign-ins.
CREATE TABLE users (
    id              TEXT PRIMARY KEY NOT NULL,
    idp_id          TEXT NOT NULL,
    subject         TEXT NOT NULL,
    email           TEXT NOT NULL,
    name            TEXT NOT NULL,
    identity        TEXT NOT NULL,
    access_seat     BOOLEAN NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    last_login_at   BIGINT,
    UNIQUE (idp_id, subject)
);
CREATE INDEX users_email ON users (email);

CREATE TABLE sessions (
    nonce      TEXT PRIMARY KEY NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL,
    app_id     TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_revoked ON sessions (revoked_at);

CREATE TABLE pending_signins (
    state      TEXT PRIMARY KEY NOT NULL,
    data       TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
