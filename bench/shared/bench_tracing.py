"""What tracing costs per message, off (the default) and on, against work every message already does.

    uv run python bench/shared/bench_tracing.py            # 200,000 rounds
    uv run python bench/shared/bench_tracing.py --quick    # 20,000 rounds

Per message, tracing adds: around the consumer's handler, ``continued(...)`` from the record's headers; when
the handler emits, ``carrier()`` for the outbox row; around the relay's publish, ``continued(...)`` from the
stored row and ``carrier()`` for the Kafka headers; ``add_trace_ids`` on every log line. This benchmark runs
exactly those calls for one message: with tracing off everywhere (no context anywhere: the default), with tracing
off in this service while a ``traceparent`` arrives (passed through), and with tracing on
(a real SDK provider and batch processor whose exporter drops the spans, so export I/O is not measured), and
as the baseline what the consumer does anyway for the same message: ``wire.decode`` of its envelope and
``wire.decode_headers``. Printed: microseconds per message and the ratio to the baseline, best of 5.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Callable, Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from voxtrain_shared import events as ev
from voxtrain_shared import tracing, wire
from voxtrain_shared.logs import add_trace_ids

HEADERS = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}


class Dropping(SpanExporter):
    """Takes every batch and throws it away."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def per_message(t: tracing.Tracing, headers: dict[str, str]) -> Callable[[], None]:
    def one() -> None:
        with tracing.continued(t, "topic process", headers):
            add_trace_ids(None, "info", {"event": "handled"})
            stored = tracing.carrier()  # the outbox row
        with tracing.continued(t, "topic publish", stored):
            tracing.carrier()  # the Kafka headers

    return one


def baseline() -> Callable[[], None]:
    env = ev.wrap(
        ev.ModelUpdated(name="cardiology", auto_train=True, changed=["name"]), tenant_id="acme", model_id=uuid.uuid4()
    ).to_bytes()
    raw_headers = [
        (k, v.encode()) for k, v in {"event_type": "ModelUpdated", "event_id": str(uuid.uuid4()), **HEADERS}.items()
    ]

    def one() -> None:
        wire.decode(env)
        wire.decode_headers(raw_headers)

    return one


def best_us(fn: Callable[[], None], rounds: int) -> float:
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(rounds):
            fn()
        best = min(best, time.perf_counter() - start)
    return best / rounds * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20,000 rounds instead of 200,000")
    parser.add_argument("--rounds", type=int, help="messages per measurement")
    args = parser.parse_args()
    rounds = args.rounds or (20_000 if args.quick else 200_000)
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(shutdown_on_exit=False)
    # exported often and queued deep enough that no span is dropped for a full queue (that would flatter "on")
    provider.add_span_processor(BatchSpanProcessor(Dropping(), max_queue_size=1 << 17, schedule_delay_millis=20))
    on = tracing.Tracing(provider)
    base = best_us(baseline(), rounds)
    rows = [("baseline: decode the envelope and headers", base)]
    off = tracing.setup("bench", environ={})
    rows.append(("tracing off everywhere (the default)", best_us(per_message(off, {}), rounds)))
    rows.append(("tracing off here, a context passed through", best_us(per_message(off, HEADERS), rounds)))
    rows.append(("tracing on (spans built, batched, dropped)", best_us(per_message(on, HEADERS), rounds)))
    provider.shutdown()
    print(f"{rounds} messages, best of 5")
    for name, us in rows:
        print(f"  {name:<46} {us:8.2f} µs/message   {us / base:6.2f}× baseline")


if __name__ == "__main__":
    main()
