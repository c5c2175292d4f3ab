"""Tracing without servers: the OTEL_* variables decide (off by default), context continues through a Kafka
consumer and a stored carrier, trace ids reach the logs; off, nothing is recorded and nothing is added."""

from __future__ import annotations

import json
from typing import Any
from uuid import uuid4

import httpx
import pytest
import structlog
from fastapi import FastAPI
from faststream.kafka import KafkaBroker, TestKafkaBroker
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from voxtrain_shared import events as ev
from voxtrain_shared import tracing
from voxtrain_shared.kafka import subscribe
from voxtrain_shared.logs import add_trace_ids, configure

TOPIC = "unit.traced"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


def _env() -> bytes:
    return ev.wrap(ev.ModelDeleted(), tenant_id="a", model_id=uuid4()).to_bytes()


def _app(t: tracing.Tracing) -> FastAPI:
    app = FastAPI()
    t.instrument_app(app)

    @app.get("/v1/ping")
    async def ping() -> dict[str, Any]:
        return {"carrier": tracing.carrier()}

    @app.get("/health/live")
    async def live() -> dict[str, Any]:
        return {"carrier": tracing.carrier()}

    return app


async def _get(app: FastAPI, path: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        r = await client.get(path, headers=headers or {})
    assert r.status_code == 200
    body: dict[str, Any] = r.json()
    return body


# ------------------------------------------------------------------ which exporter, from the variables


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"},
        {"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"},
        {"OTEL_SERVICE_NAME": "x", "OTEL_RESOURCE_ATTRIBUTES": "a=b"},  # naming alone turns nothing on
    ],
)
def test_tracing_is_off_unless_an_exporter_or_endpoint_is_set(environ: dict[str, str]) -> None:
    t = tracing.setup("models", environ=environ)
    assert not t.enabled and t.provider is None
    assert isinstance(t.tracer, trace.NoOpTracer)


@pytest.mark.parametrize(
    "environ",
    [
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"},
        {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"},
        {"OTEL_TRACES_EXPORTER": "otlp"},
        {"OTEL_TRACES_EXPORTER": "console"},
    ],
)
def test_an_exporter_or_an_endpoint_turns_tracing_on_with_the_service_name(environ: dict[str, str]) -> None:
    t = tracing.setup("models", environ=environ)
    try:
        assert t.enabled and t.provider is not None
        assert t.provider.resource.attributes["service.name"] == "voxtrain-models"
    finally:
        t.shutdown()


def test_otel_service_name_wins_over_the_default_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "models-eu-1")  # the SDK's resource detector reads the process env
    t = tracing.setup("models", environ={"OTEL_SERVICE_NAME": "models-eu-1", "OTEL_TRACES_EXPORTER": "console"})
    try:
        assert t.provider is not None and t.provider.resource.attributes["service.name"] == "models-eu-1"
    finally:
        t.shutdown()


@pytest.mark.parametrize(
    "environ, named",
    [
        ({"OTEL_TRACES_EXPORTER": "jaeger"}, "OTEL_TRACES_EXPORTER=jaeger"),
        ({"OTEL_TRACES_EXPORTER": "otlp,console"}, "set one exporter"),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "http/protobuf"),
    ],
)
def test_an_exporter_this_build_cannot_use_is_refused_with_what_to_set(environ: dict[str, str], named: str) -> None:
    with pytest.raises(tracing.TracingConfigError, match=named):
        tracing.setup("models", environ=environ)


# ------------------------------------------------------------------ HTTP


async def test_on_a_request_gets_a_server_span_that_continues_the_callers_trace() -> None:
    spans = InMemorySpanExporter()
    t = tracing.setup("models", exporter=spans)
    body = await _get(_app(t), "/v1/ping", {"traceparent": TRACEPARENT})
    server = [s for s in spans.get_finished_spans() if s.kind is trace.SpanKind.SERVER]
    assert len(server) == 1 and server[0].name == "GET /v1/ping"
    assert trace.format_trace_id(server[0].context.trace_id) == TRACE_ID
    assert server[0].parent is not None and trace.format_span_id(server[0].parent.span_id) == PARENT_ID
    # what the handler would write to the outbox names the server span
    assert body["carrier"]["traceparent"] == f"00-{TRACE_ID}-{trace.format_span_id(server[0].context.span_id)}-01"
    await _get(_app(t), "/health/live")
    assert len(spans.get_finished_spans()) == 1  # one span per request (no per-chunk spans); probes are untraced


async def test_off_a_request_records_nothing_and_leaves_nothing_to_store() -> None:
    off = tracing.setup("models", environ={})
    assert (await _get(_app(off), "/v1/ping"))["carrier"] == {}  # no context: nothing to store, no headers
    assert (await _get(_app(off), "/v1/ping", {"traceparent": TRACEPARENT}))["carrier"] == {}  # no middleware at all


# ------------------------------------------------------------------ Kafka and stored carriers


async def _consume(t: tracing.Tracing, headers: dict[str, str]) -> list[dict[str, str]]:
    seen: list[dict[str, str]] = []

    async def handler(env: ev.Envelope) -> None:
        seen.append(tracing.carrier())

    broker = KafkaBroker()
    subscribe(broker, TOPIC, group_id="g", handler=handler, tracing=t)
    async with TestKafkaBroker(broker) as br:
        await br.publish(_env(), topic=TOPIC, headers=headers)
    return seen


async def test_on_a_consumer_handles_each_message_in_a_span_continuing_its_headers() -> None:
    spans = InMemorySpanExporter()
    seen = await _consume(tracing.setup("validator", exporter=spans), {"traceparent": TRACEPARENT})
    (span,) = spans.get_finished_spans()
    assert span.kind is trace.SpanKind.CONSUMER and span.name == f"{TOPIC} process"
    assert trace.format_trace_id(span.context.trace_id) == TRACE_ID
    assert span.parent is not None and trace.format_span_id(span.parent.span_id) == PARENT_ID
    assert span.attributes is not None and span.attributes["voxtrain.event_type"] == "ModelDeleted"
    assert seen == [{"traceparent": f"00-{TRACE_ID}-{trace.format_span_id(span.context.span_id)}-01"}]


async def test_on_a_message_without_context_starts_a_trace_of_its_own() -> None:
    spans = InMemorySpanExporter()
    seen = await _consume(tracing.setup("validator", exporter=spans), {})
    (span,) = spans.get_finished_spans()
    assert span.parent is None and seen[0]["traceparent"].split("-")[1] == trace.format_trace_id(span.context.trace_id)


async def test_off_a_consumer_records_nothing_adds_no_headers_and_passes_a_context_through() -> None:
    assert await _consume(tracing.off(), {}) == [{}]  # no context: the outbox row stores none, the relay adds none
    # a context that arrives goes on as it came (one service without tracing does not cut a trace)
    assert await _consume(tracing.off(), {"traceparent": TRACEPARENT}) == [{"traceparent": TRACEPARENT}]


async def test_garbage_in_a_traceparent_header_is_harmless() -> None:
    spans = InMemorySpanExporter()
    seen = await _consume(tracing.setup("validator", exporter=spans), {"traceparent": "zz-not-a-trace"})
    (span,) = spans.get_finished_spans()
    assert span.parent is None and seen[0]["traceparent"]
    assert await _consume(tracing.off(), {"traceparent": "zz-not-a-trace"}) == [{}]


def test_continued_and_attached_pick_up_a_stored_carrier() -> None:
    spans = InMemorySpanExporter()
    t = tracing.setup("trainer", exporter=spans)
    with tracing.continued(t, "training attempt", {"traceparent": TRACEPARENT}):
        inner = tracing.carrier()
    (span,) = spans.get_finished_spans()
    assert trace.format_trace_id(span.context.trace_id) == TRACE_ID and inner["traceparent"].startswith(
        f"00-{TRACE_ID}"
    )
    with tracing.attached((("traceparent", TRACEPARENT),)):
        assert tracing.carrier() == {"traceparent": TRACEPARENT}
    assert tracing.carrier() == {}


# ------------------------------------------------------------------ logs


def test_log_lines_inside_a_span_carry_its_trace_and_span_ids() -> None:
    spans = InMemorySpanExporter()
    t = tracing.setup("models", exporter=spans)
    assert add_trace_ids(None, "info", {"event": "x"}) == {"event": "x"}
    with tracing.continued(t, "work", {"traceparent": TRACEPARENT}) as span:
        line = add_trace_ids(None, "info", {"event": "x"})
    assert line["trace_id"] == TRACE_ID
    assert line["span_id"] == trace.format_span_id(span.get_span_context().span_id)


def test_the_json_log_lines_of_a_configured_service_carry_the_trace_id() -> None:
    configure("models", json=True)  # what every service does at start (output stays pytest's)
    pipeline = structlog.get_config()["processors"]

    def render(event: str) -> dict[str, Any]:
        line: Any = {"event": event}
        for processor in pipeline:
            line = processor(None, "info", line)
        rendered: dict[str, Any] = json.loads(line)
        return rendered

    spans = InMemorySpanExporter()
    with tracing.continued(tracing.setup("models", exporter=spans), "work", {"traceparent": TRACEPARENT}):
        inside = render("inside")
    outside = render("outside")
    assert inside["trace_id"] == TRACE_ID and len(inside["span_id"]) == 16 and inside["service"] == "models"
    assert "trace_id" not in outside and "span_id" not in outside
