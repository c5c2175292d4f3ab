CREATE TABLE IF NOT EXISTS runs (
    run_id        uuid PRIMARY KEY,
    tenant_id     text        NOT NULL,
    model_id      uuid        NOT NULL,
    status        text        NOT NULL DEFAULT 'queued'
                  CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    request       bytea       NOT NULL,   -- the TrainingRequested envelope
    owner         text,                   -- replica running it
    heartbeat_at  timestamptz,
    started_at    timestamptz,
    finished_at   timestamptz,
    progress      jsonb,
    error         jsonb,
    metrics       jsonb,
    artifacts     jsonb,
    model_deleted boolean     NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS runs_queue ON runs (created_at) WHERE status IN ('queued', 'running');
CREATE INDEX IF NOT EXISTS runs_model ON runs (tenant_id, model_id, finished_at);
