-- Every dataset the validator has heard of (for manifest references) and its validation job.
CREATE TABLE IF NOT EXISTS datasets (
    dataset_id       uuid PRIMARY KEY,
    tenant_id        text        NOT NULL,
    model_id         uuid        NOT NULL,
    type             smallint    NOT NULL,
    file_name        text        NOT NULL,
    bucket           text        NOT NULL,
    object_key       text        NOT NULL,
    size             bigint      NOT NULL,
    status           text        NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'running', 'passed', 'failed', 'dead')),
    attempts         int         NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    lease_until      timestamptz,
    envelope         bytea       NOT NULL,
    result           jsonb,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS datasets_model ON datasets (tenant_id, model_id);
CREATE INDEX IF NOT EXISTS datasets_queue ON datasets (next_attempt_at) WHERE status IN ('pending', 'running');
