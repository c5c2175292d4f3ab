-- The trace context (W3C traceparent/tracestate headers) current when the event was written; the relay sends it
-- as Kafka headers, so the consumer's span continues the trace of the request or message that caused the event.
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS trace_context jsonb;
