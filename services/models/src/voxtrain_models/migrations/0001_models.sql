CREATE TABLE IF NOT EXISTS models (
    id                  uuid PRIMARY KEY,
    tenant_id           text        NOT NULL,
    name                text        NOT NULL,
    language            text        NOT NULL,
    description         text,
    auto_train          boolean     NOT NULL DEFAULT true,
    status              smallint    NOT NULL DEFAULT 1 CHECK (status BETWEEN 1 AND 5),
    run_id              uuid,
    training_requested  boolean     NOT NULL DEFAULT false,
    last_error          jsonb,
    metrics             jsonb,
    progress            jsonb,
    finished_at         timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);
CREATE INDEX IF NOT EXISTS models_tenant_status ON models (tenant_id, status, created_at);

-- The dataset-validation projection per model, fed by DatasetUploaded/Deleted and Validation*.
CREATE TABLE IF NOT EXISTS model_datasets (
    model_id     uuid    NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    dataset_id   uuid    NOT NULL,
    type         smallint NOT NULL,
    file_name    text    NOT NULL,
    location     jsonb,
    validation   text    NOT NULL DEFAULT 'pending',
    error        jsonb,
    PRIMARY KEY (model_id, dataset_id)
);
