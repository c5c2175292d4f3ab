-- Leases with fencing: a claim records its holder and a fresh token; only that holder renews or finishes it.
-- last_error: why the previous claim ended without a verdict (named in the message when the job is given up).
ALTER TABLE datasets ADD COLUMN IF NOT EXISTS lease_owner text;
ALTER TABLE datasets ADD COLUMN IF NOT EXISTS lease_token uuid;
ALTER TABLE datasets ADD COLUMN IF NOT EXISTS last_error text;
