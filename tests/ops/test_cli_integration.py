"""The ``voxtrain`` operations commands against real PostgreSQL and Kafka, on data the services made."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest

import voxtrain_trainer
from tests.support import (
    PRIVATE_KEY,
    VERIFY_AUTH,
    TopicReader,
    auth_headers,
    eventually,
    publish,
    running,
    serving,
    settings_for,
    unique,
)
from voxtrain_identity.bootstrap import build as build_identity
from voxtrain_models.bootstrap import build as build_models
from voxtrain_shared import events as ev
from voxtrain_shared import ops, outbox
from voxtrain_shared.auth import InvalidToken
from voxtrain_shared.db import migrate
from voxtrain_shared.kafka import PermanentError, ensure_topics, make_broker, subscribe
from voxtrain_shared.settings import IdentitySettings, KafkaSettings, ModelsSettings
from voxtrain_shared.topics import Topics, dead_letter
from voxtrain_shared.vocab import DatasetType
from voxtrain_trainer.domain import Run
from voxtrain_trainer.repository import TrainerRepository

pytestmark = pytest.mark.integration
ACME = auth_headers("acme")


@pytest.fixture
async def models_svc(stack):
    service = build_models(settings_for(ModelsSettings, stack))
    async with running(service) as client:
        service.client = client
        yield service


async def create_model(svc, name: str, **headers: str) -> dict:
    r = await svc.client.post("/v1/models", json={"name": name, "language": "en-US"}, headers={**ACME, **headers})
    assert r.status_code == 201, r.text
    return r.json()


def uploaded(model_id: uuid.UUID, tenant: str = "acme") -> ev.Envelope:
    ds = uuid.uuid4()
    obj = ev.DatasetObject(
        dataset_id=ds,
        dataset_type=DatasetType.TRANSCRIPT,
        file_name="notes.txt",
        bucket="b",
        object_key=f"tenants/{tenant}/models/{model_id}/datasets/{ds}/data",
        size=10,
        sha256="a" * 64,
    )
    return ev.wrap(ev.DatasetUploaded(dataset=obj), tenant_id=tenant, model_id=model_id)


async def status_of(svc, model_id: str) -> int:
    return (await svc.client.get(f"/v1/models/{model_id}", headers=ACME)).json()["status"]["code"]


# ---------------------------------------------------------------- migrate


async def test_migrate_applies_a_services_migrations_once_and_exits(cli, stack) -> None:
    schema = unique("mig")
    first = await cli("migrate", "trainer", "--schema", schema)
    assert first.exit_code == 0, first.output
    # the shared outbox/inbox files first (prefixed), then the trainer's own, each in order
    shared = sorted(f"shared_{f.name}" for f in (Path(outbox.__file__).parent / "migrations").glob("*.sql"))
    own = sorted(f.name for f in (Path(voxtrain_trainer.__file__).parent / "migrations").glob("*.sql"))
    applied = ", ".join(shared + own)
    assert "0001_runs.sql" in own and "shared_0001_outbox_inbox.sql" in shared
    assert f"schema {schema} is up to date; applied {applied}" in first.stdout
    again = await cli("migrate", "trainer", "--schema", schema)
    assert again.exit_code == 0 and "nothing to apply" in again.stdout
    conn = await asyncpg.connect(stack.postgres_dsn)
    try:
        assert await conn.fetchval(f"SELECT count(*) FROM {schema}.runs") == 0
        assert await conn.fetchval(f"SELECT count(*) FROM {schema}.schema_migrations") == len(shared + own)
    finally:
        await conn.close()
    from_env = unique("mig")  # the Jobs give the schema as the services read it: VOXTRAIN_POSTGRES__SCHEMA
    result = await cli("migrate", "models", env={"VOXTRAIN_POSTGRES__SCHEMA": from_env})
    assert result.exit_code == 0 and f"schema {from_env} is up to date" in result.stdout
    bad = await cli("migrate", "payments")
    assert bad.exit_code == 2 and "unknown service 'payments'" in bad.stderr
    missing = await cli("migrate", "models", env={"VOXTRAIN_POSTGRES__DSN": ""})
    assert missing.exit_code == 2 and "VOXTRAIN_POSTGRES__DSN" in missing.stderr


async def test_the_installed_voxtrain_command_migrates(stack) -> None:
    """The console script itself, as a Job's container runs it."""
    schema = unique("mig")
    exe = Path(sys.executable).with_name("voxtrain")
    env = {**os.environ, "VOXTRAIN_POSTGRES__DSN": stack.postgres_dsn, "VOXTRAIN_POSTGRES__SCHEMA": schema}
    done = await asyncio.to_thread(
        subprocess.run, [str(exe), "migrate", "validator"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert f"validator: schema {schema} is up to date; applied" in done.stdout


# ---------------------------------------------------------------- models and runs


async def test_models_lists_every_tenants_models_by_status(cli, models_svc, stack) -> None:
    ready = await create_model(models_svc, "ready")
    idle = await create_model(models_svc, "idle")
    await publish(stack.kafka_bootstrap, models_svc.topics.datasets, uploaded(uuid.UUID(ready["id"])))
    await eventually(lambda: _is(models_svc, ready["id"], 2))
    schema = models_svc.schema
    rows = await cli.json("models", "--schema", schema, "--status", "2")
    assert [(r["id"], r["tenant"], r["status"], r["status_name"]) for r in rows] == [
        (ready["id"], "acme", 2, "READY_TO_RUN")
    ]
    assert [r["id"] for r in await cli.json("models", "--schema", schema)] == [ready["id"], idle["id"]]
    assert await cli.json("models", "--schema", schema, "--tenant", "other") == []
    table = await cli("models", "--schema", schema, "--status", "1")
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["ID", "TENANT", "NAME", "STATUS", "STATUS_NAME", "RUN_ID", "ERROR", "UPDATED_AT"]
    assert len(lines) == 2 and idle["id"] in lines[1] and "NOT_RUNNING" in lines[1]
    assert (await cli("models", "--schema", schema, "--status", "7")).exit_code == 2
    wrong = await cli("models", "--schema", unique("nothing"))
    assert wrong.exit_code == 2 and "has no models table" in wrong.stderr


async def _is(svc, model_id: str, code: int) -> bool:
    return await status_of(svc, model_id) == code


async def test_runs_lists_training_runs_by_status(cli, stack) -> None:
    schema = unique("trainer")
    await ops.migrate_service(stack.postgres_dsn, "trainer", schema)
    requests = [
        ev.wrap(
            ev.TrainingRequested(run_id=uuid.uuid4(), language="en-US", datasets=[]),
            tenant_id="acme",
            model_id=uuid.uuid4(),
        )
        for _ in range(2)
    ]
    conn = await asyncpg.connect(stack.postgres_dsn, server_settings={"search_path": schema})
    try:
        for env in requests:
            async with conn.transaction():
                await TrainerRepository(conn).insert(Run.requested(env))
        running_id = requests[1].payload().run_id
        await conn.execute(
            f"UPDATE {schema}.runs SET status='running', owner='trainer-0', started_at=now(), "
            f'progress=\'{{"stage": "estimate_lm", "percent": 40.0}}\' WHERE run_id=$1',
            running_id,
        )
    finally:
        await conn.close()
    queued = await cli.json("runs", "--schema", schema, "--status", "queued")
    assert [r["run_id"] for r in queued] == [str(requests[0].payload().run_id)]
    active = await cli.json("runs", "--schema", schema, "--status", "running")
    assert [(r["run_id"], r["stage"], r["percent"], r["owner"]) for r in active] == [
        (str(running_id), "estimate_lm", 40.0, "trainer-0")
    ]
    assert len(await cli.json("runs", "--schema", schema)) == 2
    table = (await cli("runs", "--schema", schema, "--status", "running")).stdout
    assert "estimate_lm" in table and "trainer-0" in table
    bad = await cli("runs", "--schema", schema, "--status", "done")
    assert bad.exit_code == 2 and "unknown run status" in bad.stderr


# ---------------------------------------------------------------- history


async def test_history_reads_the_outboxes_in_time_order_or_the_topics(cli, models_svc, stack) -> None:
    cid = uuid.uuid4()
    m = await create_model(models_svc, "history", **{"X-Correlation-ID": str(cid)})
    mid = uuid.UUID(m["id"])
    patched = await models_svc.client.patch(f"/v1/models/{mid}", json={"description": "CT"}, headers=ACME)
    assert patched.status_code == 200
    up = uploaded(mid)
    await publish(stack.kafka_bootstrap, models_svc.topics.datasets, up)
    await eventually(lambda: _is(models_svc, m["id"], 2))
    # a second service's outbox: an event written there, not relayed yet
    other = unique("ds")
    conn = await asyncpg.connect(stack.postgres_dsn)
    try:
        await migrate(conn, other, None)
        later = ev.wrap(
            ev.DatasetDeleted(dataset_id=uuid.uuid4(), dataset_type=DatasetType.TRANSCRIPT),
            tenant_id="acme",
            model_id=mid,
        )
        async with conn.transaction():
            await outbox.add(conn, other, models_svc.topics, later)
    finally:
        await conn.close()

    rows = await cli.json("history", str(mid), "--schemas", f"{models_svc.schema},{other}")
    assert [(r["type"], r["source"]) for r in rows] == [
        ("ModelCreated", models_svc.schema),
        ("ModelUpdated", models_svc.schema),
        ("TrainingStatusChanged", models_svc.schema),
        ("CreditsReserved", models_svc.schema),  # auto-train reserved the training's price
        ("DatasetDeleted", other),
    ]
    assert rows[0]["correlation_id"] == str(cid)
    assert rows[2]["causation_id"] == str(up.id) and rows[2]["summary"].startswith("1 -> 2 (READY_TO_RUN)")
    assert rows[3]["summary"].startswith("1 credits (balance 9999) by acme")
    assert rows[-1]["sent"] is False
    table = (await cli("history", str(mid), "--schemas", f"{models_svc.schema},{other}")).stdout
    assert "TrainingStatusChanged" in table and "OCCURRED_AT" in table

    async def relayed() -> bool:
        rows = await cli.json("history", str(mid), "--schemas", models_svc.schema)
        return all(r["sent"] for r in rows)

    await eventually(relayed)
    env = {"VOXTRAIN_KAFKA__TOPIC_NAMESPACE": models_svc.topics.namespace}
    on_kafka = await cli.json("history", str(mid), "--kafka", env=env)
    assert [r["type"] for r in on_kafka] == [
        "ModelCreated",
        "ModelUpdated",
        "DatasetUploaded",
        "TrainingStatusChanged",
        "CreditsReserved",
    ]
    assert on_kafka[2]["event_id"] == str(up.id) and on_kafka[2]["source"] == "kafka"
    assert await cli.json("history", str(uuid.uuid4()), "--schemas", models_svc.schema) == []


# ---------------------------------------------------------------- outbox


async def test_outbox_reports_backlog_and_age_per_schema(cli, stack) -> None:
    schema, absent = unique("obx"), unique("absent")
    topics = Topics(unique("ns"))
    conn = await asyncpg.connect(stack.postgres_dsn)
    try:
        await migrate(conn, schema, None)
        for _ in range(2):
            async with conn.transaction():
                env = ev.wrap(ev.ModelDeleted(), tenant_id="acme", model_id=uuid.uuid4())
                await outbox.add(conn, schema, topics, env)
        await asyncio.sleep(0.2)
        rows = await cli.json("outbox", "--schemas", f"{schema},{absent}")
        assert rows[0]["schema"] == schema and rows[0]["present"] is True and rows[0]["unsent"] == 2
        assert rows[0]["oldest_age_seconds"] >= 0.2 and rows[0]["last_sent_at"] is None
        assert rows[1] == {
            "schema": absent,
            "present": False,
            "unsent": None,
            "oldest_age_seconds": None,
            "last_sent_at": None,
            "parked": None,
            "last_park_reason": None,
        }
        assert rows[0]["parked"] == 0
        await conn.execute(
            f"UPDATE {schema}.outbox SET parked_at = now(), park_reason = 'too big' "
            f"WHERE seq = (SELECT min(seq) FROM {schema}.outbox)"
        )
        rows = await cli.json("outbox", "--schemas", schema)
        assert rows[0]["unsent"] == 1 and rows[0]["parked"] == 1 and rows[0]["last_park_reason"] == "too big"
        await conn.execute(f"UPDATE {schema}.outbox SET sent_at = now() WHERE parked_at IS NULL")
        rows = await cli.json("outbox", "--schemas", schema)
        assert rows[0]["unsent"] == 0 and rows[0]["oldest_age_seconds"] == 0 and rows[0]["last_sent_at"]
        table = (await cli("outbox", "--schemas", schema)).stdout.splitlines()
        assert table[0].split() == [
            "SCHEMA",
            "PRESENT",
            "UNSENT",
            "OLDEST_AGE_SECONDS",
            "LAST_SENT_AT",
            "PARKED",
            "LAST_PARK_REASON",
        ]
    finally:
        await conn.close()


# ---------------------------------------------------------------- dead letters


async def test_dlt_list_and_replay_send_dead_letters_back_once(cli, stack) -> None:
    topic = unique("t.dlt")
    await ensure_topics(stack.kafka_bootstrap, [topic], partitions=3)
    broker = make_broker(KafkaSettings(bootstrap_servers=stack.kafka_bootstrap), client_id="test")

    async def refuse(env: ev.Envelope) -> None:
        raise PermanentError(f"cannot handle {env.type}")

    subscribe(broker, topic, group_id=unique("g"), handler=refuse, max_retries=0)
    sent = [ev.wrap(ev.ModelDeleted(), tenant_id="acme", model_id=uuid.uuid4()) for _ in range(3)]
    await broker.start()
    try:
        await publish(stack.kafka_bootstrap, topic, *sent, headers={"x-trace": "t-1"})
        async with TopicReader(stack.kafka_bootstrap, dead_letter(topic)) as dlt:
            await dlt.read(3)
    finally:
        await broker.stop()

    listed = await cli.json("dlt", "list", topic)
    assert sorted(r["event_id"] for r in listed) == sorted(str(e.id) for e in sent)
    assert all(
        r["target"] == topic
        and r["replayed"] is False
        and "cannot handle ModelDeleted" in r["reason"]
        and r["attempts"] == "1"
        for r in listed
    )
    assert (await cli.json("dlt", "list", dead_letter(topic))) == listed  # the .dlt name works too

    dry = await cli.json("dlt", "replay", topic, "--dry-run")
    assert [r["action"] for r in dry] == ["would replay"] * 3
    one = await cli.json("dlt", "replay", topic, "--limit", "1")
    rest = await cli.json("dlt", "replay", topic)
    assert [r["action"] for r in one + rest] == ["replayed"] * 3
    assert sorted(r["event_id"] for r in one + rest) == sorted(str(e.id) for e in sent)
    assert (await cli("dlt", "replay", topic)).stdout.strip() == "nothing to replay"
    assert all(r["replayed"] for r in await cli.json("dlt", "list", topic))

    async with TopicReader(stack.kafka_bootstrap, topic) as reader:
        records = await reader.read(6)
        await reader.settle(1.0)
    assert len(reader.records) == 6, "the dry run sent nothing and nothing was sent twice"
    replays = [r for r in records if dict(r.headers).get("x-replayed-from")]
    by_id = {str(e.id): e for e in sent}
    assert len(replays) == 3
    for r in replays:
        headers = dict(r.headers)
        original = by_id[str(ev.REGISTRY.parse(r.value).id)]
        assert r.value == original.to_bytes() and r.key == original.key()
        assert headers["x-trace"] == b"t-1" and not any(
            k.startswith("x-dead-letter") or k.startswith("x-original") or k in ("x-attempts", "x-consumer-group")
            for k in headers
        )
        assert headers["x-replayed-from"].decode().startswith(dead_letter(topic) + ":")


async def test_dlt_of_an_empty_or_missing_topic(cli) -> None:
    topic = unique("t.none")
    result = await cli("dlt", "list", topic)
    assert result.exit_code == 0 and result.stdout.strip() == f"{topic}.dlt is empty"
    assert await cli.json("dlt", "replay", topic) == []
    down = await cli("dlt", "list", topic, env={"VOXTRAIN_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1"})
    assert down.exit_code == 2 and "does not answer" in down.stderr


# ---------------------------------------------------------------- supervision: overdue models and re-drive


async def test_overdue_lists_and_redrives_through_the_models_service(cli, stack) -> None:
    quick = {"VOXTRAIN_SUPERVISION__EVERY_SECONDS": "3600", "VOXTRAIN_SUPERVISION__VALIDATION_SECONDS": "0.5"}
    svc = build_models(settings_for(ModelsSettings, stack, **quick))
    async with running(svc) as client, serving(svc.app) as url:
        svc.client = client
        waiting = await create_model(svc, "waiting")
        await publish(stack.kafka_bootstrap, svc.topics.datasets, uploaded(uuid.UUID(waiting["id"])))
        await eventually(lambda: _is(svc, waiting["id"], 2))
        env = {"VOXTRAIN_MODELS_URL": url, "VOXTRAIN_AUTH__PRIVATE_KEY": PRIVATE_KEY}

        async def listed():
            rows = await cli.json("models", "--overdue", env=env)
            return [r for r in rows if r["id"] == waiting["id"]]

        (row,) = await eventually(listed)
        assert row["tenant_id"] == "acme" and row["phase"] == "validating" and row["status"] == 2
        table = await cli("models", "--overdue", env=env)
        assert table.stdout.splitlines()[0].split() == [c.upper() for c in ops.OVERDUE_COLUMNS]
        (done,) = await cli.json("redrive", waiting["id"], env=env)
        assert done["redrives"] == 1 and done["id"] == waiting["id"]
        (still,) = await listed()  # asked again, no answer yet: still overdue
        assert still["redrives"] == 1
        idle = await create_model(svc, "idle")
        refused = await cli("redrive", idle["id"], env=env)
        assert refused.exit_code == 2 and "invalid_status" in refused.stderr
        unreachable = await cli("models", "--overdue", env={**env, "VOXTRAIN_MODELS_URL": "http://127.0.0.1:9"})
        assert unreachable.exit_code == 2 and "cannot reach the models service" in unreachable.stderr
        no_secret = await cli("redrive", idle["id"], env={"VOXTRAIN_MODELS_URL": env["VOXTRAIN_MODELS_URL"]})
        assert no_secret.exit_code == 2 and "VOXTRAIN_AUTH__PRIVATE_KEY" in no_secret.stderr


# ---------------------------------------------------------------- credits


async def test_an_operator_grants_expires_and_shows_credits_through_the_models_service(cli, stack) -> None:
    svc = build_models(settings_for(ModelsSettings, stack, VOXTRAIN_CREDITS__FREE_ALLOWANCE="20"))
    async with running(svc) as client, serving(svc.app) as url:
        env = {"VOXTRAIN_MODELS_URL": url, "VOXTRAIN_AUTH__PRIVATE_KEY": PRIVATE_KEY, "USER": "bob"}
        granted = await cli.json("credits", "grant", "acme", "250", "--reason", "pilot project", env=env)
        assert (granted["tenant_id"], granted["balance"]) == ("acme", 270)  # first seen: allowance, then the grant
        grant, allowance = granted["entries"]
        assert (grant["kind"], grant["amount"], grant["balance_after"]) == ("grant", 250, 270)
        assert grant["reason"] == "pilot project" and grant["actor"].startswith("operator")
        assert (allowance["kind"], allowance["amount"], allowance["actor"]) == ("grant", 20, "voxtrain")
        expired = await cli.json("credits", "expire", "acme", "70", "--reason", "trial ended", env=env)
        assert expired["balance"] == 200 and expired["entries"][0]["kind"] == "expire"
        refused = await cli("credits", "expire", "acme", "201", "--reason", "too much", env=env)
        assert refused.exit_code == 2 and "insufficient_credits" in refused.stderr and "balance" in refused.stderr
        no_reason = await cli("credits", "grant", "acme", "5", env=env)
        assert no_reason.exit_code == 2 and "--reason" in no_reason.output
        table = await cli("credits", "show", "acme", env=env)
        assert table.exit_code == 0 and table.stdout.startswith("tenant acme: balance 200 credits")
        assert [c.upper() for c in ops.CREDIT_COLUMNS] == table.stdout.splitlines()[1].split()
        # the tenant sees the operator's entries in its own history
        mine = (await client.get("/v1/credits", headers=ACME)).json()
        assert [(e["kind"], e["amount"]) for e in mine["entries"]] == [("expire", 70), ("grant", 250), ("grant", 20)]
        other = await cli.json("credits", "show", "other", env=env)
        assert other["balance"] == 20 and [e["kind"] for e in other["entries"]] == ["grant"]
        bad = await cli("credits", "show", "Not A Tenant", env=env)
        assert bad.exit_code == 2 and "not a tenant id" in bad.stderr


async def test_an_operator_makes_lists_and_revokes_a_tenants_api_keys(cli, stack) -> None:
    svc = build_identity(settings_for(IdentitySettings, stack, VOXTRAIN_AUTH__PRIVATE_KEY=PRIVATE_KEY))
    tenant = unique("t").lower()
    async with running(svc) as client, serving(svc.app) as url:
        svc.client = client
        env = {"VOXTRAIN_IDENTITY_URL": url, "VOXTRAIN_AUTH__PRIVATE_KEY": PRIVATE_KEY}
        made = await cli("api-keys", "create", tenant, "--scopes", "read,train", "--label", "first", env=env)
        assert made.exit_code == 0, made.output
        key = made.stdout.strip()
        assert key.startswith("vtk_") and "shown this once" in made.stderr
        r = await svc.client.post("/v1/auth/token", json={"api_key": key})
        assert r.status_code == 200 and r.json()["scope"] == "read train" and r.json()["tenant_id"] == tenant
        (row,) = await cli.json("api-keys", "list", tenant, env=env)
        assert row["label"] == "first" and row["created_by"] == "operator" and "key" not in row
        table = await cli("api-keys", "list", tenant, env=env)
        assert table.stdout.splitlines()[0].split() == [c.upper() for c in ops.API_KEY_COLUMNS]
        assert key not in table.stdout
        revoked = await cli("api-keys", "revoke", tenant, row["id"], env=env)
        assert revoked.exit_code == 0, revoked.output
        assert (await svc.client.post("/v1/auth/token", json={"api_key": key})).status_code == 401
        bad = await cli("api-keys", "create", tenant, "--scopes", "read,admin", env=env)
        assert bad.exit_code == 2 and "scopes are read, write, train" in bad.stderr
        other = await cli("api-keys", "revoke", unique("t").lower(), row["id"], env=env)
        assert other.exit_code == 2 and "not_found" in other.stderr


def test_token_prints_a_token_the_services_verify_and_keypair_makes_keys() -> None:
    from typer.testing import CliRunner

    from voxtrain_shared.auth import verify_token
    from voxtrain_shared.cli import app

    runner = CliRunner()
    out = runner.invoke(app, ["token", "acme", "--scopes", "read"], env={"VOXTRAIN_AUTH__PRIVATE_KEY": PRIVATE_KEY})
    assert out.exit_code == 0, out.output
    principal = verify_token(VERIFY_AUTH, out.stdout.strip())
    assert principal.tenant_id == "acme" and sorted(principal.scopes) == ["read"]
    pair = dict(line.split("=", 1) for line in runner.invoke(app, ["keypair"]).stdout.split())
    assert set(pair) == {"VOXTRAIN_AUTH__PRIVATE_KEY", "VOXTRAIN_AUTH__PUBLIC_KEY"}
    out = runner.invoke(app, ["token", "acme"], env={"VOXTRAIN_AUTH__PRIVATE_KEY": pair["VOXTRAIN_AUTH__PRIVATE_KEY"]})
    with pytest.raises(InvalidToken):
        verify_token(VERIFY_AUTH, out.stdout.strip())  # another pair's token: the test services refuse it
    missing = runner.invoke(app, ["token", "acme"], env={"VOXTRAIN_AUTH__PRIVATE_KEY": None})
    assert missing.exit_code == 2 and "VOXTRAIN_AUTH__PRIVATE_KEY" in missing.stderr
