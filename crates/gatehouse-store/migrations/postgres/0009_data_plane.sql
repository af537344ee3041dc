-- The data plane: access decisions, the ingress configuration set through the API, and
-- per-application token revocations ("not before" instants).
CREATE TABLE access_logs (
    ray_id      TEXT PRIMARY KEY NOT NULL,
    created_at  BIGINT NOT NULL,
    app_id      TEXT,
    app_domain  TEXT NOT NULL,
    user_email  TEXT NOT NULL,
    user_id     TEXT,
    ip_address  TEXT NOT NULL,
    action      TEXT NOT NULL,
    allowed     BOOLEAN NOT NULL,
    decision    TEXT NOT NULL,
    policy_id   TEXT,
    reason      TEXT NOT NULL,
    connection  TEXT NOT NULL,
    request     TEXT NOT NULL,
    status      INTEGER NOT NULL,
    latency_us  BIGINT NOT NULL
);
CREATE INDEX access_logs_created ON access_logs (created_at);
CREATE INDEX access_logs_email ON access_logs (user_email);

CREATE TABLE ingress_config (
    id          SMALLINT PRIMARY KEY NOT NULL CHECK (id = 1),
    version     BIGINT NOT NULL,
    config      TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE app_token_revocations (
    app_id      TEXT PRIMARY KEY NOT NULL,
    revoked_at  BIGINT NOT NULL
);
