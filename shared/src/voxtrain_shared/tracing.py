"""OpenTelemetry tracing: one setup per service, chosen by the standard ``OTEL_*`` variables, off by default.

:func:`setup` gives a service its :class:`Tracing`: a tracer provider of its own (so several services in one
process — the tests — keep their own ``service.name``), or nothing at all when tracing is off. Tracing is on
when ``OTEL_TRACES_EXPORTER`` names an exporter (``otlp``, ``console``) or an OTLP endpoint is set
(``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, exporter ``otlp``); it stays off with
``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none``. The OTLP exporter speaks HTTP/protobuf and reads
its endpoint, headers, timeout and compression from the standard variables; the sampler
(``OTEL_TRACES_SAMPLER``), the batch processor (``OTEL_BSP_*``) and the resource (``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``) are the SDK's.

Context crosses every hop in the W3C ``traceparent``/``tracestate`` form (``OTEL_PROPAGATORS`` may change it):
HTTP headers (FastAPI server spans, httpx client spans), Kafka headers — written to the outbox row with the
event (:func:`carrier`) and sent by the relay — and the job rows of the validator and the trainer, whose work
starts later than the message that asked for it (:func:`continued`). With tracing off nothing is recorded or
exported, but a context that arrives is passed on unchanged, so one service without tracing does not cut a
trace in two.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import baggage, context, propagate, trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter

__all__ = ["Tracing", "TracingConfigError", "attached", "carrier", "continued", "extract", "off", "setup"]

#: Paths whose requests get no server span (probes and scrapes would drown the traces).
UNTRACED_PATHS = "health/live,health/ready,metrics"
_TRUE = ("true", "1", "yes", "on")


class TracingConfigError(ValueError):
    """An ``OTEL_*`` variable names something this build cannot do (the message says what to set instead)."""


class Tracing:
    """A service's tracer and the provider behind it (None when tracing is off)."""

    def __init__(self, provider: TracerProvider | None) -> None:
        self.provider = provider
        self.tracer: trace.Tracer = provider.get_tracer("voxtrain") if provider is not None else trace.NoOpTracer()

    @property
    def enabled(self) -> bool:
        return self.provider is not None

    def instrument_app(self, app: Any) -> None:
        """Server spans for every request of a FastAPI ``app`` (health and metrics apart); nothing when off."""
        if self.provider is None:
            return
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=self.provider,
            excluded_urls=UNTRACED_PATHS,
            exclude_spans=["receive", "send"],  # one span per request, not one per body chunk
        )

    def instrument_client(self, client: Any) -> None:
        """Client spans for an httpx client, and the context in its requests' headers; nothing when off."""
        if self.provider is None:
            return
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

        HTTPXClientInstrumentor.instrument_client(client, tracer_provider=self.provider)

    def flush(self, timeout_millis: int = 5000) -> None:
        """Export what is buffered now (a service calls it when it stops)."""
        if self.provider is not None:
            self.provider.force_flush(timeout_millis)

    def shutdown(self) -> None:
        """Export what is buffered and stop exporting for good."""
        if self.provider is not None:
            self.provider.shutdown()


def off() -> Tracing:
    """Tracing switched off: no provider, a no-op tracer that still passes an incoming context on."""
    return Tracing(None)


def _exporter_name(environ: Mapping[str, str]) -> str:
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() in _TRUE:
        return "none"
    names = [n.strip().lower() for n in environ.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()]
    if not names:
        endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        return "otlp" if endpoint else "none"
    if len(names) > 1:
        raise TracingConfigError(f"OTEL_TRACES_EXPORTER={','.join(names)}: set one exporter (otlp, console or none)")
    return names[0]


def _exporter(name: str, environ: Mapping[str, str]) -> SpanExporter:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if name != "otlp":
        raise TracingConfigError(f"OTEL_TRACES_EXPORTER={name} is not supported: set otlp, console or none")
    protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
    )
    if protocol.strip() != "http/protobuf":
        raise TracingConfigError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol} is not supported: voxtrain exports OTLP over HTTP "
            "(set http/protobuf and the collector's HTTP endpoint, usually port 4318)"
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()  # endpoint, headers, timeout, compression: the OTEL_EXPORTER_OTLP_* variables


def setup(
    service: str,
    *,
    app: Any = None,
    clients: Iterable[Any] = (),
    exporter: SpanExporter | None = None,
    environ: Mapping[str, str] | None = None,
) -> Tracing:
    """The tracing of ``service`` (``service.name`` is ``voxtrain-<service>`` unless ``OTEL_SERVICE_NAME``
    says otherwise), configured from ``environ`` (the process environment by default); the FastAPI ``app`` and
    the httpx ``clients`` given are instrumented with it.

    ``exporter`` (tests) replaces what the variables choose and is called synchronously for every span.
    Raises :class:`TracingConfigError` for an exporter or protocol this build does not have.
    """
    env = os.environ if environ is None else environ
    if exporter is None:
        name = _exporter_name(env)
        if name == "none":
            return off()
        processor: SimpleSpanProcessor | BatchSpanProcessor = BatchSpanProcessor(_exporter(name, env))
    else:
        processor = SimpleSpanProcessor(exporter)
    attributes = {} if env.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: f"voxtrain-{service}"}
    provider = TracerProvider(resource=Resource.create(attributes), shutdown_on_exit=False)
    provider.add_span_processor(processor)
    tracing = Tracing(provider)
    if app is not None:
        tracing.instrument_app(app)
    for client in clients:
        tracing.instrument_client(client)
    return tracing


def carrier() -> dict[str, str]:
    """The current trace context as headers (``traceparent``, ``tracestate``); empty when there is none."""
    headers: dict[str, str] = {}
    if trace.get_current_span().get_span_context().is_valid or baggage.get_all():
        propagate.inject(headers)
    return headers


def extract(headers: Mapping[str, str] | None) -> context.Context:
    """The trace context that ``headers`` carry (an empty context when they carry none)."""
    return propagate.extract(dict(headers or {}))


@contextmanager
def continued(
    tracing: Tracing,
    name: str,
    headers: Mapping[str, str] | None,
    *,
    kind: trace.SpanKind = trace.SpanKind.INTERNAL,
    attributes: Mapping[str, str | int | float | bool] | None = None,
) -> Iterator[trace.Span]:
    """A current span named ``name`` continuing the trace ``headers`` carry (stored with a message or a job
    row); a new trace when they carry none. An exception escaping the block is recorded on the span.

    With tracing off the span is the context ``headers`` carry, current for the block (passed on as it came),
    or none at all."""
    if not tracing.enabled:
        if not headers:
            yield trace.INVALID_SPAN
            return
        with attached(headers):
            yield trace.get_current_span()
        return
    with tracing.tracer.start_as_current_span(
        name, context=extract(headers), kind=kind, attributes=dict(attributes or {})
    ) as span:
        yield span


@contextmanager
def attached(headers: Mapping[str, str] | Iterable[tuple[str, str]] | None) -> Iterator[None]:
    """Make the trace context ``headers`` carry the current one for the block, without a span of its own (what
    is emitted inside continues that trace)."""
    token = context.attach(extract(dict(headers or {})))
    try:
        yield
    finally:
        context.detach(token)
