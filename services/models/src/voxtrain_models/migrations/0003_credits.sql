-- Credits (voxtrain_models.credits): each tenant's account (the sums of its entries, kept in the same
-- transaction as every entry; its row lock serialises the tenant's reservations) and the append-only ledger.
CREATE TABLE IF NOT EXISTS credit_accounts (
    tenant_id   text        PRIMARY KEY,
    available   bigint      NOT NULL DEFAULT 0 CHECK (available >= 0),
    held        bigint      NOT NULL DEFAULT 0 CHECK (held >= 0),
    spent       bigint      NOT NULL DEFAULT 0 CHECK (spent >= 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS credit_entries (
    id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id      text        NOT NULL REFERENCES credit_accounts(tenant_id),
    kind           text        NOT NULL CHECK (kind IN ('grant', 'reserve', 'charge', 'refund', 'expire')),
    amount         bigint      NOT NULL CHECK (amount > 0),
    balance_after  bigint      NOT NULL CHECK (balance_after >= 0),
    model_id       uuid,       -- no foreign key: the history outlives a deleted model
    run_id         uuid,
    actor          text        NOT NULL,
    reason         text        NOT NULL,
    -- at most once: 'reserve:<reservation>', 'settle:<reservation>' (a charge or a refund, never both),
    -- 'allowance:<tenant>'; NULL for operators' grants and expirations
    key            text        UNIQUE,
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS credit_entries_tenant ON credit_entries (tenant_id, id DESC);

-- Append-only: an entry is never changed or removed.
CREATE OR REPLACE FUNCTION credit_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'credit_entries is append-only (% refused)', TG_OP;
END $$;
DROP TRIGGER IF EXISTS credit_entries_append_only ON credit_entries;
CREATE TRIGGER credit_entries_append_only BEFORE UPDATE OR DELETE ON credit_entries
    FOR EACH ROW EXECUTE FUNCTION credit_entries_append_only();

-- The reservation a model at 2/3 holds (NULL otherwise), and what each dataset's validation measured.
ALTER TABLE models ADD COLUMN IF NOT EXISTS reservation_id uuid;
ALTER TABLE models ADD COLUMN IF NOT EXISTS reserved_credits bigint;
ALTER TABLE model_datasets ADD COLUMN IF NOT EXISTS audio_seconds double precision;
ALTER TABLE model_datasets ADD COLUMN IF NOT EXISTS words bigint;
