-- A row that cannot be published (too large for Kafka, refused by the broker, failing again and again) is
-- parked: set aside with its reason so the rows behind it flow. `voxtrain outbox` lists parked rows.
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS parked_at   timestamptz;
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS park_reason text;
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS attempts    integer NOT NULL DEFAULT 0;
DROP INDEX IF EXISTS outbox_unsent;
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (seq) WHERE sent_at IS NULL AND parked_at IS NULL;
CREATE INDEX IF NOT EXISTS outbox_parked ON outbox (seq) WHERE parked_at IS NOT NULL AND sent_at IS NULL;
