-- Service tokens (CF-Access-Client-Id / CF-Access-Client-Secret). Only secret hashes are
-- stored; after a rotation the previous secret stays valid until previous_expires_at.
CREATE TABLE service_tokens (
    id                   TEXT PRIMARY KEY NOT NULL,
    name                 TEXT NOT NULL,
    client_id            TEXT NOT NULL UNIQUE,
    secret_hash          TEXT NOT NULL,
    secret_version       BIGINT NOT NULL,
    previous_secret_hash TEXT,
    previous_expires_at  BIGINT,
    duration             TEXT NOT NULL,
    expires_at           BIGINT NOT NULL,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL,
    last_seen_at         BIGINT
);
