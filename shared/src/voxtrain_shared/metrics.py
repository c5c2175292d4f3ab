"""Prometheus metrics every service exposes on ``/metrics``."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_CONSUMED = Counter("voxtrain_events_consumed_total", "Messages handled", ["topic", "outcome"])
EVENTS_PRODUCED = Counter("voxtrain_events_produced_total", "Messages published", ["topic"])
EVENTS_DEAD_LETTERED = Counter("voxtrain_events_dead_lettered_total", "Messages sent to a DLT", ["topic"])
HANDLER_SECONDS = Histogram("voxtrain_handler_seconds", "Message handler latency", ["topic"])
OUTBOX_BACKLOG = Gauge("voxtrain_outbox_backlog", "Events waiting in the outbox", ["schema"])
OUTBOX_OLDEST_AGE = Gauge("voxtrain_outbox_oldest_age_seconds", "Age of the oldest unsent event", ["schema"])
HTTP_REQUESTS = Counter("voxtrain_http_requests_total", "HTTP requests", ["method", "route", "status"])
