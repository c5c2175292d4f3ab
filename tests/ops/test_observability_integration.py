"""What operators watch: correlation ids across a hop, and the metrics each service adds on /metrics."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest
from prometheus_client import REGISTRY

from tests.support import TopicReader, auth_headers, eventually, running, settings_for, unique
from voxtrain_contracts.services import built_services
from voxtrain_models.bootstrap import build as build_models
from voxtrain_shared import events as ev
from voxtrain_shared import ops
from voxtrain_shared.db import create_pool
from voxtrain_shared.http import CORRELATION_HEADER
from voxtrain_shared.settings import ModelsSettings, TrainerSettings
from voxtrain_shared.topics import Topics
from voxtrain_shared.vocab import DatasetType, ErrorCode
from voxtrain_trainer import handlers as trainer
from voxtrain_trainer.domain import RetryPolicy
from voxtrain_validator import handlers as validator
from voxtrain_validator.domain import JobRules
from voxtrain_validator.rules.outcome import failed, passed
from voxtrain_validator.workers import JobLoop

pytestmark = pytest.mark.integration
ACME = auth_headers("acme")
NEW_METRICS = (
    "voxtrain_validations_total",
    "voxtrain_validation_seconds",
    "voxtrain_trainings_total",
    "voxtrain_training_seconds",
    "voxtrain_models",
    "voxtrain_upload_bytes_total",
    "voxtrain_upload_seconds",
)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_correlation_id_sent_over_http_is_the_events_correlation_id(stack) -> None:
    svc = build_models(settings_for(ModelsSettings, stack))
    cid = uuid.uuid4()
    async with running(svc) as client, TopicReader(stack.kafka_bootstrap, svc.topics.models) as reader:
        r = await client.post(
            "/v1/models", json={"name": "traced", "language": "en-US"}, headers={**ACME, CORRELATION_HEADER: str(cid)}
        )
        assert r.status_code == 201 and r.headers[CORRELATION_HEADER] == str(cid)
        records = await reader.read(1)
    created = ev.REGISTRY.parse(records[0].value)
    assert created.type == "ModelCreated" and str(created.model_id) == r.json()["id"]
    assert created.correlation_id == cid


async def test_models_per_status_are_refreshed_from_the_database(stack) -> None:
    svc = build_models(settings_for(ModelsSettings, stack), gauge_every=0.1)
    async with running(svc) as client:
        for name in ("one", "two"):
            assert (
                await client.post("/v1/models", json={"name": name, "language": "en-US"}, headers=ACME)
            ).status_code == 201

        async def counted() -> bool:
            text = (await client.get("/metrics")).text
            return (
                'voxtrain_models{status="NOT_RUNNING"} 2.0' in text and 'voxtrain_models{status="FAILED"} 0.0' in text
            )

        await eventually(counted, timeout=10)


async def test_every_service_serves_the_new_metrics() -> None:
    with built_services() as built:
        for b in built:
            transport = httpx.ASGITransport(app=b.service.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
                text = (await client.get("/metrics")).text
            for name in NEW_METRICS:
                assert f"# TYPE {name} " in text, f"{b.name} does not expose {name}"


async def test_validations_are_counted_and_timed_by_outcome(stack) -> None:
    schema = unique("validator")
    await ops.migrate_service(stack.postgres_dsn, "validator", schema)
    pool = await create_pool(stack.postgres_dsn, schema)
    verdicts = {}

    def validate(dataset, _siblings, _cancelled) -> dict:
        time.sleep(0.05)
        return verdicts[dataset.dataset_id].to_dict()

    uow = validator.unit_of_work(lambda: pool, schema, Topics(unique("ns")))
    rules = JobRules()
    jobs = JobLoop(uow, validate, rules, owner="test", concurrency=1)
    labels_ok = {"dataset_type": "TRANSCRIPT", "outcome": "passed", "code": ""}
    labels_bad = {"dataset_type": "AUDIO", "outcome": "failed", "code": "invalid_audio_format"}
    before = (
        sample("voxtrain_validations_total", **labels_ok),
        sample("voxtrain_validations_total", **labels_bad),
        sample("voxtrain_validation_seconds_count", dataset_type="TRANSCRIPT", outcome="passed"),
        sample("voxtrain_validation_seconds_sum", dataset_type="TRANSCRIPT", outcome="passed"),
    )
    try:
        for kind, verdict in (
            (DatasetType.TRANSCRIPT, passed({"lines": 3})),
            (DatasetType.AUDIO, failed(ErrorCode.INVALID_AUDIO_FORMAT, "not a WAV file")),
        ):
            ds = uuid.uuid4()
            verdicts[ds] = verdict
            env = ev.wrap(
                ev.DatasetUploaded(
                    dataset=ev.DatasetObject(
                        dataset_id=ds,
                        dataset_type=kind,
                        file_name="f",
                        bucket="b",
                        object_key=f"k/{ds}",
                        size=1,
                        sha256="a" * 64,
                    )
                ),
                tenant_id="acme",
                model_id=uuid.uuid4(),
            )
            assert await validator.record_upload(uow, env)
            claimed = await validator.claim_next(uow, rules, jobs.owner)
            assert isinstance(claimed, validator.Claimed)
            await jobs.work(claimed)
    finally:
        await pool.close()
    assert sample("voxtrain_validations_total", **labels_ok) == before[0] + 1
    assert sample("voxtrain_validations_total", **labels_bad) == before[1] + 1
    assert sample("voxtrain_validation_seconds_count", dataset_type="TRANSCRIPT", outcome="passed") == before[2] + 1
    assert sample("voxtrain_validation_seconds_sum", dataset_type="TRANSCRIPT", outcome="passed") >= before[3] + 0.05


async def test_trainings_are_counted_and_timed_by_outcome(stack) -> None:
    settings = settings_for(TrainerSettings, stack)
    schema = settings.postgres.schema_name
    await ops.migrate_service(stack.postgres_dsn, "trainer", schema)
    pool = await create_pool(stack.postgres_dsn, schema)
    uow = trainer.unit_of_work(lambda: pool, schema, settings.kafka.topics)
    policy = RetryPolicy(max_attempts=1)  # a lost run fails at once (no retry) here
    lost = {"outcome": "failed", "code": "worker_lost"}
    ok = {"outcome": "succeeded", "code": ""}
    before = (
        sample("voxtrain_trainings_total", **lost),
        sample("voxtrain_trainings_total", **ok),
        sample("voxtrain_training_seconds_count", outcome="failed"),
        sample("voxtrain_training_seconds_sum", outcome="failed"),
        sample("voxtrain_training_seconds_count", outcome="succeeded"),
    )
    requests = [
        ev.wrap(
            ev.TrainingRequested(run_id=uuid.uuid4(), language="en-US", datasets=[]),
            tenant_id="acme",
            model_id=uuid.uuid4(),
        )
        for _ in range(2)
    ]
    try:
        for env in requests:
            await trainer.record_request(uow, env)
        async with pool.acquire() as conn:
            # run 0: its replica died 120 s into the run; run 1: this replica runs it
            await conn.execute(
                "UPDATE runs SET status='running', owner='gone', started_at=now() - interval '120 s', "
                "heartbeat_at=now() - interval '1 hour', attempt=1 WHERE run_id=$1",
                requests[0].payload().run_id,
            )
        run = await trainer.claim_next(uow, "me", policy)
        assert run is not None and run.run_id == requests[1].payload().run_id
        assert len(await trainer.reap(uow, "me", [run.run_id], 60.0, policy)) == 1
        await asyncio.sleep(0.05)
        result = {"metrics": {"wer": 0.1}, "artifacts": {"lm": "s3://b/lm"}, "used": {}}
        assert await trainer.finish(uow, "me", run, 1, result, policy) is trainer.Outcome.SUCCEEDED
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT status FROM runs WHERE run_id=$1", run.run_id) == "succeeded"
    finally:
        await pool.close()
    assert sample("voxtrain_trainings_total", **lost) == before[0] + 1
    assert sample("voxtrain_trainings_total", **ok) == before[1] + 1
    assert sample("voxtrain_training_seconds_count", outcome="failed") == before[2] + 1
    assert sample("voxtrain_training_seconds_sum", outcome="failed") >= before[3] + 120
    assert sample("voxtrain_training_seconds_count", outcome="succeeded") == before[4] + 1
