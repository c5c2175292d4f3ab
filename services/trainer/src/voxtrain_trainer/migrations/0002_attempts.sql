-- Attempts of a run (a lost worker is retried) and when a requeued run may start again.
ALTER TABLE runs ADD COLUMN IF NOT EXISTS attempt integer NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS not_before timestamptz;
