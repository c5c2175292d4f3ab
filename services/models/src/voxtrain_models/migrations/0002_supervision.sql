-- Supervision of models at 2 and 3: since when the model has its status, the start of the current deadline window, the requests sent again in it,
-- and the attempt number of the latest TrainingRequested.
ALTER TABLE models ADD COLUMN IF NOT EXISTS watched_since timestamptz;
UPDATE models SET watched_since = updated_at WHERE watched_since IS NULL;
ALTER TABLE models ALTER COLUMN watched_since SET DEFAULT now();
ALTER TABLE models ALTER COLUMN watched_since SET NOT NULL;
ALTER TABLE models ADD COLUMN IF NOT EXISTS status_since timestamptz;
UPDATE models SET status_since = updated_at WHERE status_since IS NULL;
ALTER TABLE models ALTER COLUMN status_since SET DEFAULT now();
ALTER TABLE models ALTER COLUMN status_since SET NOT NULL;
ALTER TABLE models ADD COLUMN IF NOT EXISTS redrives integer NOT NULL DEFAULT 0;
ALTER TABLE models ADD COLUMN IF NOT EXISTS request_attempt integer NOT NULL DEFAULT 1;
CREATE INDEX IF NOT EXISTS models_supervised ON models (status, watched_since) WHERE status IN (2, 3);

-- Tombstones of deleted datasets: a late verdict or upload event for one of them changes nothing.
CREATE TABLE IF NOT EXISTS model_dataset_tombstones (
    model_id    uuid        NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    dataset_id  uuid        NOT NULL,
    deleted_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model_id, dataset_id)
);
