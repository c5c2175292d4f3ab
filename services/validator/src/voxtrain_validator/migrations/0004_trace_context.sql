-- The trace context of the message that queued the job (W3C traceparent/tracestate): the job loop's span
-- continues that trace, however much later it runs.
ALTER TABLE datasets ADD COLUMN IF NOT EXISTS trace_context jsonb;
