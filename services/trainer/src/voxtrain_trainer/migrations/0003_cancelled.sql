-- Cancelled runs: a run's model was cancelled (TrainingCancelled). The run ends 'cancelled' without a terminal
-- event; a cancel that arrives before its TrainingRequested is remembered here, so the run never starts.
ALTER TABLE runs DROP CONSTRAINT IF EXISTS runs_status_check;
ALTER TABLE runs ADD CONSTRAINT runs_status_check
    CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled'));
CREATE TABLE IF NOT EXISTS cancelled_runs (
    run_id        uuid PRIMARY KEY,
    tenant_id     text        NOT NULL,
    model_id      uuid,
    cancelled_by  text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
