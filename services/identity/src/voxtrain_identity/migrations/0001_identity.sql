-- A tenant's API keys. Only a SHA-256 hash of the secret part is kept (the secret is 256 random bits, so a
-- fast hash is enough: nothing to brute-force); the whole key is shown once, when it is created.
CREATE TABLE IF NOT EXISTS api_keys (
    id            uuid PRIMARY KEY,
    tenant_id     text        NOT NULL,
    label         text        NOT NULL,
    scopes        text[]      NOT NULL,
    secret_hash   text        NOT NULL,
    hint          text        NOT NULL,
    created_by    text        NOT NULL,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz,
    revoked_at    timestamptz,
    last_used_at  timestamptz
);
CREATE INDEX IF NOT EXISTS api_keys_tenant ON api_keys (tenant_id, created_at);
