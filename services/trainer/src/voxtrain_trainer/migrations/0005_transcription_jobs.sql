-- Asynchronous transcription of long audio: the upload waits in object storage (object_key) while a worker of
-- some replica holds the job's lease (owner, lease_until); a job whose lease ran out is taken up again.
CREATE TABLE IF NOT EXISTS transcription_jobs (
    job_id        uuid PRIMARY KEY,
    tenant_id     text NOT NULL,
    model         text NOT NULL,
    run_id        uuid,
    artifacts     jsonb,
    file_name     text NOT NULL,
    object_key    text NOT NULL,
    audio_seconds double precision NOT NULL,
    status        text NOT NULL DEFAULT 'queued',
    done_seconds  double precision NOT NULL DEFAULT 0,
    attempt       integer NOT NULL DEFAULT 0,
    owner         text,
    lease_until   timestamptz,
    result        jsonb,
    error         jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz
);
CREATE INDEX IF NOT EXISTS transcription_jobs_open ON transcription_jobs (created_at)
    WHERE status IN ('queued', 'running');
