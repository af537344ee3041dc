-- Application-token signing keys. The private key is sealed with the installation key
-- (bound to the kid); retired keys stay published for a grace period.
CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY NOT NULL,
    private_key BLOB NOT NULL,
    public_jwk  TEXT NOT NULL,
    cert_pem    TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    retired_at  BIGINT
);
CREATE INDEX signing_keys_created ON signing_keys (created_at);
