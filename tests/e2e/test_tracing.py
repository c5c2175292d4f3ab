"""One trace from an upload to a trained model: the console gateway, models, datasets, validator and trainer on
real ports, real Kafka, PostgreSQL and MinIO, exporting over OTLP/HTTP (chosen by the OTEL_* variables only) to
a collector in this process. The caller's traceparent starts the trace; it must come back as one connected tree
with spans of every service — across HTTP, the outboxes, Kafka, the validator's job and the trainer's run."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.console.system import running_system
from tests.otlp import Collector, ReceivedSpan
from tests.support import auth_headers, eventually
from tests.trainer.medical_domain import TRAINING_TEXT

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.timeout(600)]
TRACE_ID = "5b8efff798038103d269b633813fc60c"
CLIENT_SPAN = "eee19b7ec3c1b174"
SERVER, CLIENT, PRODUCER = 2, 3, 4  # OTLP span kinds
SERVICES = {"voxtrain-console", "voxtrain-models", "voxtrain-datasets", "voxtrain-validator", "voxtrain-trainer"}


def _consumed(spans: list[ReceivedSpan], service: str) -> set[str]:
    return {
        str(s.attributes.get("voxtrain.event_type"))
        for s in spans
        if s.service == service and s.name.endswith(" process")
    }


async def test_an_upload_and_its_training_are_one_trace_across_every_service(
    stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    acme = auth_headers("acme")
    with Collector() as collector:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint)
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "200")
        async with (
            running_system(stack, tmp_path) as system,
            httpx.AsyncClient(base_url=system.console_url, timeout=60) as api,
        ):
            r = await api.post("/v1/models", json={"name": "cardiology", "language": "en-US"}, headers=acme)
            assert r.status_code == 201, r.text
            model_id = r.json()["id"]
            r = await api.post(
                f"/v1/models/{model_id}/datasets",
                files=[("files", ("notes.txt", TRAINING_TEXT.encode(), "text/plain"))],
                headers={**acme, "traceparent": f"00-{TRACE_ID}-{CLIENT_SPAN}-01"},
            )
            assert r.status_code == 201, r.text

            async def trained() -> bool:
                body = (await api.get(f"/v1/models/{model_id}", headers=acme)).json()
                assert body["status"]["code"] != 5, body
                return bool(body["status"]["code"] == 4)

            await eventually(trained, timeout=400, interval=1.0)

            def complete() -> list[ReceivedSpan]:
                spans = collector.trace(TRACE_ID)
                done = {s.service for s in spans} >= SERVICES and "TrainingSucceeded" in _consumed(
                    spans, "voxtrain-models"
                )
                return spans if done else []

            async def exported() -> list[ReceivedSpan]:
                return complete()

            await eventually(exported, timeout=30, interval=0.3)
            await asyncio.sleep(1.0)  # the last batches (the status change to 4) settle
            spans = collector.trace(TRACE_ID)

    names = {(s.service, s.name) for s in spans}
    (root,) = [s for s in spans if s.parent_span_id == CLIENT_SPAN]
    assert (root.service, root.kind) == ("voxtrain-console", SERVER), root  # the gateway continues the caller
    assert any(s.service == "voxtrain-console" and s.kind == CLIENT for s in spans), names  # its call to datasets
    assert ("voxtrain-datasets", "POST /v1/models/{model_id}/datasets") in names
    assert "DatasetUploaded" in _consumed(spans, "voxtrain-validator")
    assert ("voxtrain-validator", "validate dataset") in names
    assert {"DatasetUploaded", "ValidationPassed", "TrainingStarted", "TrainingSucceeded"} <= _consumed(
        spans, "voxtrain-models"
    )
    assert "TrainingRequested" in _consumed(spans, "voxtrain-trainer")
    assert ("voxtrain-trainer", "training attempt") in names
    published = {str(s.attributes.get("voxtrain.event_type")) for s in spans if s.kind == PRODUCER}
    assert {"DatasetUploaded", "ValidationPassed", "TrainingRequested", "TrainingSucceeded"} <= published
    assert "TrainingStatusChanged" in published  # 1→2, 2→3 and 3→4 all belong to the upload's trace

    # one connected tree: every span's parent is in the trace but the root's, which is the caller's span
    ids = {s.span_id for s in spans}
    orphans = [(s.service, s.name, s.parent_span_id) for s in spans if s.parent_span_id not in ids]
    assert orphans == [("voxtrain-console", root.name, CLIENT_SPAN)], orphans
