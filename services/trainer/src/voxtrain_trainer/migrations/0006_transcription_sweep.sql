-- Sweeping transcription uploads: a job is recorded (status 'uploading') before its upload is stored, so an
-- upload whose request died midway is found and removed; input_removed says its object is gone; finished jobs
-- are deleted after the retention period.
ALTER TABLE transcription_jobs ADD COLUMN IF NOT EXISTS input_removed boolean NOT NULL DEFAULT false;
CREATE INDEX IF NOT EXISTS transcription_jobs_uploading ON transcription_jobs (created_at)
    WHERE status = 'uploading';
CREATE INDEX IF NOT EXISTS transcription_jobs_finished ON transcription_jobs (finished_at)
    WHERE status IN ('succeeded', 'failed');
