"""Prometheus metrics every service exposes on ``/metrics``."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_CONSUMED = Counter("voxtrain_events_consumed_total", "Messages handled", ["topic", "outcome"])
EVENTS_PRODUCED = Counter("voxtrain_events_produced_total", "Messages published", ["topic"])
EVENTS_DEAD_LETTERED = Counter("voxtrain_events_dead_lettered_total", "Messages sent to a DLT", ["topic"])
HANDLER_SECONDS = Histogram("voxtrain_handler_seconds", "Message handler latency", ["topic"])
OUTBOX_BACKLOG = Gauge("voxtrain_outbox_backlog", "Events waiting in the outbox", ["schema"])
OUTBOX_OLDEST_AGE = Gauge("voxtrain_outbox_oldest_age_seconds", "Age of the oldest unsent event", ["schema"])
OUTBOX_PARKED = Gauge("voxtrain_outbox_parked", "Outbox events parked because they cannot be published", ["schema"])
CONSUMER_LAG = Gauge(
    "voxtrain_consumer_lag", "Records on a topic not yet handled by a consumer group", ["topic", "group"]
)
BLOCKED = Gauge(
    "voxtrain_blocked", "1 while a component waits for a dependency to come back", ["component", "dependency"]
)
HTTP_REQUESTS = Counter("voxtrain_http_requests_total", "HTTP requests", ["method", "route", "status"])

# ---------------------------------------------------------------- per-service work (docs/operations.md)

_WORK_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
_TRAINING_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800)

#: validator: one per verdict (``outcome`` passed / failed) or storage retry (``retried``); ``code`` is the
#: ErrorCode of a failure, "" otherwise.
VALIDATIONS = Counter("voxtrain_validations_total", "Dataset validations finished", ["dataset_type", "outcome", "code"])
VALIDATION_SECONDS = Histogram(
    "voxtrain_validation_seconds",
    "Time to check one dataset's content",
    ["dataset_type", "outcome"],
    buckets=_WORK_BUCKETS,
)
#: trainer: one per finished run (``outcome`` succeeded / failed; ``code`` e.g. worker_lost, training_timeout).
TRAININGS = Counter("voxtrain_trainings_total", "Training runs finished", ["outcome", "code"])
TRAINING_SECONDS = Histogram(
    "voxtrain_training_seconds", "Wall time of a training run, start to finish", ["outcome"], buckets=_TRAINING_BUCKETS
)
#: models: how many models are in each status, refreshed from the database every few seconds.
#: Every replica reports the same numbers: aggregate with max(), not sum().
MODELS_BY_STATUS = Gauge("voxtrain_models", "Models per status (all tenants)", ["status"])
MODEL_STATUS_SECONDS = Histogram(
    "voxtrain_model_status_seconds",
    "Time a model spent in Ready to Run or Running, observed when it leaves",
    ["status"],
    buckets=(1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 24 * 3600),
)
MODELS_OVERDUE = Gauge(
    "voxtrain_models_overdue", "Models at 2/3 past their supervision deadline (all tenants)", ["status"]
)
#: datasets: bytes received and time per upload (``mode``: stream or multipart).
UPLOAD_BYTES = Counter("voxtrain_upload_bytes_total", "Dataset bytes uploaded", ["mode"])
UPLOAD_SECONDS = Histogram(
    "voxtrain_upload_seconds", "Time to receive one dataset upload", ["mode"], buckets=_WORK_BUCKETS
)
