-- Access groups, policies (reusable or owned by one application) and their attachment to
-- applications in precedence order.
CREATE TABLE access_groups (
    id         TEXT PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL,
    rules      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE policies (
    id               TEXT PRIMARY KEY NOT NULL,
    name             TEXT NOT NULL,
    decision         TEXT NOT NULL,
    rules            TEXT NOT NULL,
    session_duration TEXT,
    reusable         BOOLEAN NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);

CREATE TABLE app_policies (
    app_id     TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    policy_id  TEXT NOT NULL REFERENCES policies (id) ON DELETE CASCADE,
    precedence BIGINT NOT NULL,
    PRIMARY KEY (app_id, policy_id),
    UNIQUE (app_id, precedence)
);
CREATE INDEX app_policies_policy ON app_policies (policy_id);
