"""Credits against real PostgreSQL and Kafka: reserve, charge and refund exactly once through redelivered messages
and a restart of the models service; 402 changes nothing; each tenant sees only its own ledger."""

import asyncio
import uuid

import asyncpg
import pytest

from tests.models.test_models_integration import ACME, OTHER
from tests.models.test_supervision_integration import OPERATOR
from tests.support import TopicReader, eventually, publish, running, settings_for
from voxtrain_models.bootstrap import build
from voxtrain_models.credits import EntryKind
from voxtrain_models.repository import ModelRepository
from voxtrain_shared import events as ev
from voxtrain_shared.settings import ModelsSettings
from voxtrain_shared.vocab import DatasetType

pytestmark = pytest.mark.integration
#: 5 credits per audio minute; a new tenant gets 100.
PRICES = {"VOXTRAIN_CREDITS__FREE_ALLOWANCE": "100", "VOXTRAIN_CREDITS__PER_AUDIO_MINUTE": "5"}
THREE_MINUTES = 3 * 60 * 32_000  # bytes of a 16 kHz mono 16-bit WAV: priced 15 credits before validation


def upload(model_id: uuid.UUID, size: int = THREE_MINUTES, tenant: str = "acme") -> ev.Envelope:
    ds = uuid.uuid4()
    obj = ev.DatasetObject(
        dataset_id=ds,
        dataset_type=DatasetType.AUDIO,
        file_name="call.wav",
        bucket="b",
        object_key=f"tenants/{tenant}/models/{model_id}/datasets/{ds}/data",
        size=size,
        sha256="a" * 64,
    )
    return ev.wrap(ev.DatasetUploaded(dataset=obj), tenant_id=tenant, model_id=model_id)


def verdict(up: ev.Envelope, seconds: float | None = None) -> ev.Envelope:
    d = up.payload().dataset
    if seconds is None:
        msg: ev.Message = ev.ValidationFailed(
            dataset_id=d.dataset_id,
            dataset_type=d.dataset_type,
            file_name=d.file_name,
            error=ev.ErrorInfo(code="invalid_audio_format", message="not a WAV file"),
        )
    else:
        msg = ev.ValidationPassed(
            dataset_id=d.dataset_id,
            dataset_type=d.dataset_type,
            file_name=d.file_name,
            metadata={"duration_seconds": seconds, "sample_rate": 16000},
        )
    return ev.wrap(msg, tenant_id=up.tenant_id, model_id=up.model_id)


async def create(client, name: str, headers=ACME, **kw) -> uuid.UUID:
    r = await client.post("/v1/models", json={"name": name, "language": "en-US", **kw}, headers=headers)
    assert r.status_code == 201, r.text
    return uuid.UUID(r.json()["id"])


async def model(client, mid, headers=ACME) -> dict:
    r = await client.get(f"/v1/models/{mid}", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def credits(client, headers=ACME, **params) -> dict:
    r = await client.get("/v1/credits", headers=headers, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def credit_events(reader: TopicReader, topic: str) -> list[tuple[uuid.UUID | None, str, int, int]]:
    out = []
    for r in reader.records:
        if r.topic == topic:
            env = ev.REGISTRY.parse(r.value)
            p = env.payload()
            out.append((env.model_id, env.type, p.amount, p.balance_after))
    return out


async def ledger_matches_account(settings: ModelsSettings, dsn: str, tenant: str) -> None:
    """The account's sums are those of its entries (append-only ledger = source of truth)."""
    conn = await asyncpg.connect(dsn, server_settings={"search_path": settings.postgres.schema_name})
    try:
        repo = ModelRepository(conn)
        account, sums = await repo.account(tenant), await repo.entry_sums(tenant)
    finally:
        await conn.close()
    assert account is not None
    assert (
        account.available
        == sums[EntryKind.GRANT] - sums[EntryKind.EXPIRE] - sums[EntryKind.RESERVE] + sums[EntryKind.REFUND]
    )
    assert account.held == sums[EntryKind.RESERVE] - sums[EntryKind.CHARGE] - sums[EntryKind.REFUND]
    assert account.spent == sums[EntryKind.CHARGE]
    conn = await asyncpg.connect(dsn, server_settings={"search_path": settings.postgres.schema_name})
    try:
        for change in ("UPDATE credit_entries SET amount = amount + 1", "DELETE FROM credit_entries"):
            with pytest.raises(asyncpg.RaiseError, match="append-only"):
                await conn.execute(change)
    finally:
        await conn.close()


async def test_reserve_charge_and_refund_happen_once_through_redeliveries_and_a_restart(stack) -> None:
    settings = settings_for(ModelsSettings, stack, **PRICES)
    bootstrap, t = stack.kafka_bootstrap, settings.kafka.topics
    async with TopicReader(bootstrap, t.credits) as reader:
        first = build(settings)
        async with running(first) as client:
            good, bad = await create(client, "good"), await create(client, "bad")
            up_good, up_bad = upload(good), upload(bad)
            for _ in range(2):  # every message delivered twice
                await publish(bootstrap, t.datasets, up_good, up_bad)
            await eventually(lambda: _status(client, good, 2))
            await eventually(lambda: _status(client, bad, 2))
            body = await model(client, good)
            assert body["cost"]["reserved"] == 15 and body["cost"]["balance"] == 70
            await publish(bootstrap, t.validation, verdict(up_good, seconds=60.0))  # measured: 1 minute
            await eventually(lambda: _run_id(client, good))
            run_id = await _run_id(client, good)
            started = ev.wrap(ev.TrainingStarted(run_id=run_id), tenant_id="acme", model_id=good)
            await publish(bootstrap, t.training_events, started, started)
            await eventually(lambda: _status(client, good, 3))
        # the models service restarts (a second instance on the same schema and consumer groups)
        second = build(settings)
        async with running(second) as client:
            succeeded = ev.wrap(
                ev.TrainingSucceeded(run_id=run_id, metrics={}, artifacts={}), tenant_id="acme", model_id=good
            )
            failed = verdict(up_bad)
            for _ in range(2):
                await publish(bootstrap, t.training_events, succeeded)
                await publish(bootstrap, t.validation, failed)
            await eventually(lambda: _status(client, good, 4))
            await eventually(lambda: _status(client, bad, 5))
            await publish(bootstrap, t.datasets, up_good)  # a late redelivery of the upload changes nothing
            await reader.until(lambda _: len(credit_events(reader, t.credits)) >= 4)
            await reader.settle(3)
            mine = await credits(client)
            good_view = await model(client, good)
    # Each exactly once; the price was fixed at reservation (15, from the size) though validation measured 1 minute.
    expected = [
        (good, "CreditsReserved", 15, _after(mine, good, "reserve")),
        (bad, "CreditsReserved", 15, _after(mine, bad, "reserve")),
        (good, "CreditsCharged", 15, _after(mine, good, "charge")),
        (bad, "CreditsRefunded", 15, _after(mine, bad, "refund")),
    ]
    assert sorted(credit_events(reader, t.credits), key=str) == sorted(expected, key=str)
    assert sorted([_after(mine, good, "reserve"), _after(mine, bad, "reserve")]) == [70, 85]
    kinds = [(e["kind"], e["model_id"]) for e in reversed(mine["entries"])]
    assert kinds[0] == ("grant", None) and sorted(kinds[1:]) == sorted(
        [("reserve", str(good)), ("reserve", str(bad)), ("charge", str(good)), ("refund", str(bad))]
    )
    assert (mine["balance"], mine["held"], mine["spent"]) == (85, 0, 15)
    charge = next(e for e in mine["entries"] if e["kind"] == "charge")
    assert charge["run_id"] == str(run_id) and charge["actor"] == "voxtrain"
    refund = next(e for e in mine["entries"] if e["kind"] == "refund")
    assert "invalid_audio_format" in refund["reason"]
    assert good_view["cost"]["reserved"] is None and good_view["cost"]["basis"]["audio_minutes"] == 1.0
    await ledger_matches_account(settings, stack.postgres_dsn, "acme")


def _after(account: dict, mid: uuid.UUID, kind: str) -> int:
    return next(e["balance_after"] for e in account["entries"] if e["kind"] == kind and e["model_id"] == str(mid))


async def _status(client, mid, code) -> bool:
    return (await model(client, mid))["status"]["code"] == code


async def _run_id(client, mid):
    body = await model(client, mid)
    return uuid.UUID(body["run"]["id"]) if body["run"]["id"] else None


async def test_train_with_too_few_credits_is_402_and_leaves_the_model_unchanged(stack) -> None:
    settings = settings_for(ModelsSettings, stack, **{**PRICES, "VOXTRAIN_CREDITS__FREE_ALLOWANCE": "10"})
    bootstrap, t = stack.kafka_bootstrap, settings.kafka.topics
    async with running(build(settings)) as client:
        mid = await create(client, "manual", auto_train=False)
        up = upload(mid)
        await publish(bootstrap, t.datasets, up)
        await eventually(lambda: _datasets(client, mid))
        before = await model(client, mid)
        assert before["cost"] == {
            "estimate": 15,
            "balance": 10,
            "basis": {"audio_minutes": 3.0, "text_words": 0, "measured": False},
            "reserved": None,
        }
        async with TopicReader(bootstrap, t.status, t.credits, t.training_commands) as reader:
            r = await client.post(f"/v1/models/{mid}/train", headers=ACME)
            assert r.status_code == 402, r.text
            error = r.json()["error"]
            assert error["code"] == "insufficient_credits" and error["details"] == {"estimate": 15, "balance": 10}
            assert "15 credits" in error["message"] and "balance is 10" in error["message"]
            after = await model(client, mid)
            # the StartTraining command is refused alike (CommandRejected on the models topic)
            command = ev.wrap(ev.StartTraining(), tenant_id="acme", model_id=mid)
            await publish(bootstrap, t.model_commands, command, headers={"authorization": ACME["Authorization"]})
            async with TopicReader(bootstrap, t.models) as answers:
                await answers.until(lambda recs: any(b"CommandRejected" in x.value for x in recs))
                rejected = [ev.REGISTRY.parse(x.value).payload() for x in answers.records]
            await reader.settle(2)
            assert reader.records == []  # no status change, no reservation, no training
        assert {k: v for k, v in after.items() if k != "updated_at"} == {
            k: v for k, v in before.items() if k != "updated_at"
        }
        assert after["updated_at"] == before["updated_at"]
        refusal = next(p for p in rejected if isinstance(p, ev.CommandRejected))
        assert refusal.command_id == command.id and refusal.code == "insufficient_credits"
        assert await model(client, mid) == after
        assert [e["kind"] for e in (await credits(client))["entries"]] == ["grant"]

        # Validation measures 1 minute: the estimate drops to 5, and Train reserves it.
        await publish(bootstrap, t.validation, verdict(up, seconds=60.0))
        await eventually(lambda: _estimate(client, mid, 5))
        r = await client.post(f"/v1/models/{mid}/train", headers=ACME)
        assert r.status_code == 202, r.text
        assert r.json()["model"]["cost"]["reserved"] == 5 and r.json()["model"]["cost"]["balance"] == 5

        # Auto-train with too few credits: the upload is kept, the model stays at 1 and says why.
        auto = await create(client, "auto")
        await publish(bootstrap, t.datasets, upload(auto))
        await eventually(lambda: _datasets(client, auto))
        body = await model(client, auto)
        assert body["status"]["code"] == 1 and body["last_error"]["code"] == "insufficient_credits"
        assert body["last_error"]["details"] == {"estimate": 15, "balance": 5}
        assert "Training did not start automatically" in body["last_error"]["message"]


async def _datasets(client, mid) -> bool:
    return (await model(client, mid))["datasets"]["total"] > 0


async def _estimate(client, mid, value) -> bool:
    return (await model(client, mid))["cost"]["estimate"] == value


async def test_each_tenant_sees_only_its_own_credits(stack) -> None:
    settings = settings_for(ModelsSettings, stack, **PRICES)
    async with running(build(settings)) as client:
        mid = await create(client, "acme-model")
        await publish(stack.kafka_bootstrap, settings.kafka.topics.datasets, upload(mid))
        await eventually(lambda: _status(client, mid, 2))
        acme, other = await credits(client), await credits(client, OTHER)
        assert (acme["tenant_id"], acme["balance"], acme["held"]) == ("acme", 85, 15)
        assert [e["kind"] for e in acme["entries"]] == ["reserve", "grant"]
        assert (other["tenant_id"], other["balance"], other["held"]) == ("other", 100, 0)
        assert [(e["kind"], e["model_id"]) for e in other["entries"]] == [("grant", None)]
        assert (await client.get(f"/v1/models/{mid}", headers=OTHER)).status_code == 404
        page = await credits(client, limit=1)
        assert [e["kind"] for e in page["entries"]] == ["reserve"] and page["next_before"]
        older = await credits(client, limit=1, before=page["next_before"])
        assert [e["kind"] for e in older["entries"]] == ["grant"]
        r = await client.get("/v1/credits")
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        r = await client.get("/v1/ops/credits/acme", headers=OTHER)
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
        r = await client.post("/v1/ops/credits/other", json={"kind": "grant", "amount": 5, "reason": "x"}, headers=ACME)
        assert r.status_code == 403


async def test_an_operator_grant_sent_twice_with_one_key_is_granted_once(stack) -> None:
    settings = settings_for(ModelsSettings, stack, **PRICES)
    grant = {"kind": "grant", "amount": 7, "reason": "pilot", "idempotency_key": "po-2026-11"}
    async with running(build(settings)) as client:
        first = await client.post("/v1/ops/credits/acme", json=grant, headers=OPERATOR)
        again = await client.post("/v1/ops/credits/acme", json=grant, headers=OPERATOR)
        assert first.status_code == again.status_code == 200
        assert first.json()["balance"] == again.json()["balance"] == 107
        assert [e["kind"] for e in again.json()["entries"]] == ["grant", "grant"]  # the allowance and one grant
        other = await client.post(
            "/v1/ops/credits/acme", json={**grant, "idempotency_key": "po-2026-12"}, headers=OPERATOR
        )
        assert other.json()["balance"] == 114
        bad = await client.post("/v1/ops/credits/acme", json={**grant, "idempotency_key": "a b"}, headers=OPERATOR)
        assert bad.status_code == 422


async def test_two_trainings_of_a_tenant_cannot_spend_the_same_credits(stack) -> None:
    """15 credits, two models priced 15 each, Train pressed on both at once: one is reserved, the other refused."""
    settings = settings_for(ModelsSettings, stack, **{**PRICES, "VOXTRAIN_CREDITS__FREE_ALLOWANCE": "15"})
    async with running(build(settings)) as client:
        models = [await create(client, f"m{i}", auto_train=False) for i in range(2)]
        await publish(stack.kafka_bootstrap, settings.kafka.topics.datasets, *(upload(m) for m in models))
        for m in models:
            await eventually(lambda m=m: _datasets(client, m))
        assert (await credits(client))["balance"] == 15  # the account exists: only its row lock serialises
        answers = await asyncio.gather(*(client.post(f"/v1/models/{m}/train", headers=ACME) for m in models))
        assert sorted(r.status_code for r in answers) == [202, 402], [r.text for r in answers]
        statuses = sorted([(await model(client, m))["status"]["code"] for m in models])
        assert statuses == [1, 2]
        mine = await credits(client)
        assert (mine["balance"], mine["held"]) == (0, 15)
        assert [e["kind"] for e in mine["entries"]] == ["reserve", "grant"]
