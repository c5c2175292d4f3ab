-- Streamed (form) uploads in progress, one row each, so a tenant's cap on concurrent uploads holds across
-- replicas. A slot is a lease: the request renews it while it streams and deletes it when it ends; a
-- replica that dies leaves rows that lapse at expires_at (and are deleted at the tenant's next check).
CREATE TABLE IF NOT EXISTS upload_slots (
    slot_id      uuid        PRIMARY KEY,
    tenant_id    text        NOT NULL,
    model_id     uuid        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS upload_slots_by_tenant ON upload_slots (tenant_id, expires_at);
-- Counting a tenant's open resumable sessions.
CREATE INDEX IF NOT EXISTS upload_sessions_open_by_tenant ON upload_sessions (tenant_id, expires_at)
    WHERE state <> 'completed';
