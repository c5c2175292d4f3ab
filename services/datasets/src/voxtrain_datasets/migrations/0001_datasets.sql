-- The datasets service's own schema (search_path is set by the migrations runner).

-- Projection of model status, fed by ModelCreated / ModelDeleted / TrainingStatusChanged.
-- A deleted model stays as a tombstone so late status events cannot bring it back.
CREATE TABLE IF NOT EXISTS models (
    model_id     uuid        PRIMARY KEY,
    tenant_id    text        NOT NULL,
    status       smallint    NOT NULL CHECK (status BETWEEN 1 AND 5),
    deleted      boolean     NOT NULL DEFAULT false,
    status_at    timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- One row per uploaded file. file_name is the safe display name; original_name is the name as
-- sent with control/invisible characters escaped. Object keys are built from ids only.
CREATE TABLE IF NOT EXISTS datasets (
    dataset_id     uuid        PRIMARY KEY,
    tenant_id      text        NOT NULL,
    model_id       uuid        NOT NULL,
    dataset_type   smallint    NOT NULL CHECK (dataset_type BETWEEN 1 AND 4),
    file_name      text        NOT NULL,
    original_name  text        NOT NULL,
    size           bigint      NOT NULL CHECK (size >= 0),
    sha256         text        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    content_type   text        NOT NULL,
    bucket         text        NOT NULL,
    object_key     text        NOT NULL UNIQUE,
    source         text        NOT NULL CHECK (source IN ('form', 'direct')),
    status         text        NOT NULL CHECK (status IN ('uploaded', 'validating', 'valid', 'invalid')),
    validation     jsonb,
    validated_at   timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS datasets_by_model ON datasets (tenant_id, model_id, created_at);

-- Resumable direct-to-storage uploads (S3 multipart with presigned part URLs).
CREATE TABLE IF NOT EXISTS upload_sessions (
    session_id     uuid        PRIMARY KEY,
    tenant_id      text        NOT NULL,
    model_id       uuid        NOT NULL,
    dataset_id     uuid        NOT NULL UNIQUE,
    dataset_type   smallint    NOT NULL CHECK (dataset_type BETWEEN 1 AND 4),
    file_name      text        NOT NULL,
    original_name  text        NOT NULL,
    content_type   text        NOT NULL,
    object_key     text        NOT NULL UNIQUE,
    s3_upload_id   text        NOT NULL,
    size           bigint      NOT NULL CHECK (size > 0),
    part_size      bigint      NOT NULL CHECK (part_size > 0),
    part_count     integer     NOT NULL CHECK (part_count BETWEEN 1 AND 10000),
    state          text        NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'completing', 'completed')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS upload_sessions_by_model ON upload_sessions (tenant_id, model_id);
CREATE INDEX IF NOT EXISTS upload_sessions_expiry ON upload_sessions (expires_at) WHERE state <> 'completed';

-- Objects that may exist in storage without a dataset record: written before a streamed file's
-- first byte is stored (write-ahead), removed in the transaction that records the dataset, and
-- marked abandoned when an upload fails or a dataset/model is deleted. The sweeper removes the
-- object (and any unfinished multipart upload of its key) for abandoned rows and for rows older
-- than the upload-session TTL (a process that died mid-upload).
CREATE TABLE IF NOT EXISTS pending_objects (
    object_key     text        PRIMARY KEY,
    created_at     timestamptz NOT NULL DEFAULT now(),
    abandoned_at   timestamptz
);
CREATE INDEX IF NOT EXISTS pending_objects_abandoned ON pending_objects (abandoned_at) WHERE abandoned_at IS NOT NULL;
