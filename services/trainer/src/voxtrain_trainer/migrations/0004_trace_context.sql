-- The trace context of the TrainingRequested that queued the run (W3C traceparent/tracestate): the supervisor's
-- span of each attempt continues that trace, however much later it starts.
ALTER TABLE runs ADD COLUMN IF NOT EXISTS trace_context jsonb;
