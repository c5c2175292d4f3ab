-- A tenant's endpoints. The signing secret is kept (it is needed to sign every delivery) and shown to
-- the tenant only when it is created or rotated.
CREATE TABLE IF NOT EXISTS endpoints (
    id               uuid PRIMARY KEY,
    tenant_id        text        NOT NULL,
    url              text        NOT NULL,
    description      text,
    events           text[]      NOT NULL,
    secret           text        NOT NULL,
    enabled          boolean     NOT NULL DEFAULT true,
    disabled_reason  text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS endpoints_tenant ON endpoints (tenant_id);

-- One event to one endpoint. ``seq`` orders a model's deliveries: only the oldest pending delivery of an
-- (endpoint, model) pair is sent, so a subscriber sees a model's transitions in order.
CREATE TABLE IF NOT EXISTS deliveries (
    seq              bigserial PRIMARY KEY,
    id               uuid        NOT NULL UNIQUE,
    endpoint_id      uuid        NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
    tenant_id        text        NOT NULL,
    model_id         uuid,
    event_id         uuid        NOT NULL,
    event_type       text        NOT NULL,
    body             bytea       NOT NULL,
    state            text        NOT NULL DEFAULT 'pending',  -- pending | delivered | failed
    attempts         integer     NOT NULL DEFAULT 0,
    first_at         timestamptz NOT NULL DEFAULT now(),
    next_at          timestamptz NOT NULL DEFAULT now(),
    last_status      integer,
    last_error       text,
    last_latency_ms  integer,
    finished_at      timestamptz,
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (next_at) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS deliveries_queue ON deliveries (endpoint_id, model_id, seq) WHERE state = 'pending';

-- Every attempt, for the delivery log.
CREATE TABLE IF NOT EXISTS attempts (
    seq          bigserial PRIMARY KEY,
    delivery_id  uuid        NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
    attempt      integer     NOT NULL,  -- the delivery's attempt count then (a redelivery starts again at 1)
    at           timestamptz NOT NULL DEFAULT now(),
    status_code  integer,
    latency_ms   integer     NOT NULL,
    error        text
);
CREATE INDEX IF NOT EXISTS attempts_delivery ON attempts (delivery_id, seq);
