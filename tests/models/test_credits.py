"""Credits: pricing and the ledger rules (pure), the model's reserve/charge/refund, and the handlers that write
them (fake unit of work)."""

import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.fakes import FakeUnitOfWork
from tests.models.fakes import InMemoryModels
from voxtrain_models import handlers as h
from voxtrain_models.credits import (
    Account,
    Basis,
    EntryKind,
    Measure,
    Policy,
    Posting,
    Purse,
    Rates,
    estimated,
    measured,
    opened,
    price,
)
from voxtrain_models.domain import CustomModel, Dataset, Rejected, Supervision
from voxtrain_shared import events as ev
from voxtrain_shared.uow import Context
from voxtrain_shared.vocab import DatasetType, ErrorCode
from voxtrain_shared.vocab import ModelStatus as S

RATES = Rates(per_audio_minute=2.0, per_thousand_words=1.0, minimum=1)
POLICY = Policy(RATES, free_allowance=100)
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def purse(available: int = 100) -> Purse:
    return Purse(available, RATES, "acme")


def audio(seconds_by_size: float = 180, name: str = "talk.wav") -> Dataset:
    """An AUDIO dataset whose size estimates ``seconds_by_size`` seconds (16 kHz mono 16-bit WAV)."""
    ds_id = uuid.uuid4()
    size = int(seconds_by_size * 32_000)
    loc = {"dataset_id": str(ds_id), "dataset_type": 3, "file_name": name, "bucket": "b", "object_key": "k"}
    return Dataset(ds_id, DatasetType.AUDIO, name, location={**loc, "size": size, "sha256": "0" * 64})


def model(status: S = S.NOT_RUNNING, auto_train: bool = True) -> CustomModel:
    return CustomModel(uuid.uuid4(), "acme", "m", "en-US", status=status, auto_train=auto_train)


def postings(m: CustomModel) -> list[tuple[EntryKind, int]]:
    return [(e.kind, e.amount) for e in m.events if isinstance(e, Posting)]


# ---------------------------------------------------------------- pricing


def test_price_is_audio_minutes_and_thousands_of_words_rounded_up_with_a_minimum() -> None:
    assert price(Basis(audio_minutes=3.0, text_words=0), RATES) == 6
    assert price(Basis(audio_minutes=3.0, text_words=1), RATES) == 7  # 6.001 rounds up
    assert price(Basis(audio_minutes=0.0, text_words=2500), RATES) == 3
    assert price(Basis(audio_minutes=0.0, text_words=0), RATES) == 1  # the minimum
    assert price(Basis(audio_minutes=0.1 + 0.2, text_words=0), Rates(10.0, 0.0, 0)) == 3  # no float noise


def test_validation_metadata_gives_the_measure_of_each_type() -> None:
    assert measured(DatasetType.AUDIO, {"duration_seconds": 61.5, "sample_rate": 16000}) == Measure(61.5, 0)
    assert measured(DatasetType.TRANSCRIPT, {"words": 1200, "duration_seconds": 99}) == Measure(0.0, 1200)
    assert measured(DatasetType.TEST, {"words": 7}) == Measure(0.0, 7)
    assert measured(DatasetType.MANIFEST, {"inline_text_words": 40, "segment_seconds": 9}) == Measure(0.0, 40)
    for bad in ({}, {"duration_seconds": True}, {"duration_seconds": -1}, {"duration_seconds": "60"}):
        assert measured(DatasetType.AUDIO, bad) is None


def test_sizes_estimate_what_validation_has_not_measured_yet() -> None:
    assert estimated(DatasetType.AUDIO, "a.WAV", 32_000 * 60) == Measure(audio_seconds=60.0)
    assert estimated(DatasetType.AUDIO, "a.mp3", 16_000 * 60) == Measure(audio_seconds=60.0)
    assert estimated(DatasetType.TRANSCRIPT, "a.txt", 600) == Measure(words=100)
    m = model(auto_train=False)
    wav, text = audio(120), Dataset(uuid.uuid4(), DatasetType.TRANSCRIPT, "t.txt", location={"size": 6000})
    m.dataset_uploaded(wav)
    m.dataset_uploaded(text)
    assert m.basis() == Basis(audio_minutes=2.0, text_words=1000, measured=False)
    m.dataset_validated(wav.id, wav.type, wav.file_name, True, measure=Measure(audio_seconds=30))
    m.dataset_validated(text.id, text.type, text.file_name, True, measure=Measure(words=10))
    assert m.basis() == Basis(audio_minutes=0.5, text_words=10, measured=True)


# ---------------------------------------------------------------- ledger rules


def test_the_account_moves_credits_between_available_held_and_spent() -> None:
    a = Account("acme").post(EntryKind.GRANT, 10)
    a = a.post(EntryKind.RESERVE, 6)
    assert (a.available, a.held, a.spent) == (4, 6, 0)
    assert a.post(EntryKind.CHARGE, 6) == Account("acme", 4, 0, 6)  # a charge leaves the balance alone
    assert a.post(EntryKind.REFUND, 6) == Account("acme", 10, 0, 0)
    with pytest.raises(Rejected) as exc:
        a.post(EntryKind.RESERVE, 5)
    assert exc.value.code is ErrorCode.INSUFFICIENT_CREDITS and exc.value.details == {"estimate": 5, "balance": 4}
    for kind, amount in ((EntryKind.CHARGE, 7), (EntryKind.REFUND, 7), (EntryKind.EXPIRE, 5), (EntryKind.GRANT, 0)):
        with pytest.raises(Rejected):
            a.post(kind, amount)


def test_grants_less_expirations_always_equal_available_plus_held_plus_spent() -> None:
    rng = random.Random(14)
    account, totals = Account("acme"), dict.fromkeys(EntryKind, 0)
    for _ in range(2000):
        kind, amount = rng.choice(list(EntryKind)), rng.randint(1, 30)
        try:
            account = account.post(kind, amount)
        except Rejected:
            continue
        totals[kind] += amount
        assert min(account.available, account.held, account.spent) >= 0
        assert totals[EntryKind.GRANT] - totals[EntryKind.EXPIRE] == account.available + account.held + account.spent
        assert account.available == (
            totals[EntryKind.GRANT] - totals[EntryKind.EXPIRE] - totals[EntryKind.RESERVE] + totals[EntryKind.REFUND]
        )


def test_a_new_tenant_opens_with_its_free_allowance_once() -> None:
    account, grant = opened("acme", 500)
    assert account == Account("acme", 500) and grant is not None
    assert (grant.kind, grant.amount, grant.balance_after, grant.key) == (EntryKind.GRANT, 500, 500, "allowance:acme")
    assert opened("acme", 0) == (Account("acme"), None)


# ---------------------------------------------------------------- the model reserves, charges and refunds


def test_train_reserves_the_price_and_success_charges_exactly_the_reservation() -> None:
    m = model(auto_train=False)
    wav = audio(180)  # 3 minutes by size: 6 credits
    m.dataset_uploaded(wav)
    m.train(purse())
    assert m.status is S.READY_TO_RUN and m.reservation is not None and m.reservation.amount == 6
    m.dataset_validated(wav.id, wav.type, wav.file_name, True, measure=Measure(audio_seconds=600))  # 20 credits now
    assert m.run_id is not None
    m.training_started(m.run_id)
    m.training_succeeded(m.run_id, {}, NOW)
    assert postings(m) == [(EntryKind.RESERVE, 6), (EntryKind.CHARGE, 6)]  # the price was fixed at reservation
    reserve, charge = [e for e in m.events if isinstance(e, Posting)]
    assert reserve.key == f"reserve:{reserve.reservation}" and charge.key == f"settle:{reserve.reservation}"
    assert charge.run_id == m.run_id and m.reservation is None


def test_too_few_credits_refuses_train_and_changes_nothing() -> None:
    m = model(S.FAILED)
    m.dataset_uploaded(audio(180))
    m.last_error = {"code": "stage_failed", "message": "before"}
    with pytest.raises(Rejected) as exc:
        m.train(purse(5))
    assert exc.value.code is ErrorCode.INSUFFICIENT_CREDITS and exc.value.details == {"estimate": 6, "balance": 5}
    assert "6 credits" in exc.value.message and "balance is 5" in exc.value.message
    assert m.status is S.FAILED and m.events == [] and m.reservation is None
    assert m.last_error == {"code": "stage_failed", "message": "before"}


def test_auto_train_without_credits_keeps_the_model_at_1_and_says_why() -> None:
    m = model()
    m.dataset_uploaded(audio(180), purse=purse(5))
    assert m.status is S.NOT_RUNNING and m.events == []
    assert m.last_error is not None and m.last_error["code"] == "insufficient_credits"
    assert m.last_error["details"] == {"estimate": 6, "balance": 5}
    assert m.last_error["message"].startswith("Training did not start automatically")
    m.dataset_uploaded(audio(30), purse=purse(100))  # more credits arrived; the next upload queues it
    assert m.status is S.READY_TO_RUN and m.last_error is None and postings(m) == [(EntryKind.RESERVE, 7)]


def test_auto_train_reserves_once_every_file_of_an_upload_arrived() -> None:
    m = model()
    first, second = audio(60), audio(120)
    batch = (first.id, second.id)
    m.dataset_uploaded(first, batch, purse())
    assert m.status is S.NOT_RUNNING and m.events == []  # the second file's size is not known yet
    m.dataset_uploaded(second, batch, purse())
    assert m.status is S.READY_TO_RUN and postings(m) == [(EntryKind.RESERVE, 6)]


def _at(status: S) -> CustomModel:
    m = model()
    d = audio(60)
    m.dataset_uploaded(d, purse=purse())
    if status is S.RUNNING:
        m.dataset_validated(d.id, d.type, d.file_name, True)
        assert m.run_id is not None
        m.training_started(m.run_id)
    m.events.clear()
    return m


REFUND_PATHS = {
    "validation failed": (S.READY_TO_RUN, lambda m: _fail_validation(m)),
    "training failed at 2": (S.READY_TO_RUN, lambda m: _fail_training(m, requested=True)),
    "training failed at 3": (S.RUNNING, lambda m: _fail_training(m)),
    "validation timeout": (S.READY_TO_RUN, lambda m: _give_up(m)),
    "worker lost": (S.RUNNING, lambda m: _give_up(m)),
}


def _fail_validation(m: CustomModel) -> None:
    d = next(iter(m.datasets.values()))
    m.dataset_validated(d.id, d.type, d.file_name, False, {"code": "invalid_audio_format", "message": "x"})


def _fail_training(m: CustomModel, requested: bool = False) -> None:
    if requested:
        d = next(iter(m.datasets.values()))
        m.dataset_validated(d.id, d.type, d.file_name, True)
    assert m.run_id is not None
    m.training_failed(m.run_id, {"code": "stage_failed", "message": "lm"}, NOW)


def _give_up(m: CustomModel) -> None:
    rules = Supervision(timedelta(1), timedelta(1), timedelta(1), max_redrives=0)
    m.settle(NOW)
    m.supervise(NOW + timedelta(days=2), rules)


@pytest.mark.parametrize("path", REFUND_PATHS)
def test_every_move_to_5_refunds_the_reservation_in_full_once(path: str) -> None:
    status, fail = REFUND_PATHS[path]
    m = _at(status)
    assert m.status is status and m.reservation is not None
    fail(m)
    assert m.status is S.FAILED and m.reservation is None
    assert postings(m) == [(EntryKind.REFUND, 2)]
    assert m.status.can_train  # Train is offered again


def test_a_cancellation_refund_names_who_cancelled() -> None:
    m = _at(S.RUNNING)
    assert m.run_id is not None
    m.training_failed(m.run_id, {"code": "cancelled", "message": "stop", "cancelled_by": "alice"}, NOW)
    (refund,) = [e for e in m.events if isinstance(e, Posting)]
    assert refund.actor == "alice" and "cancelled" in refund.reason


def test_a_reservation_is_held_exactly_while_the_model_is_locked() -> None:
    """So a model holding credits can never be deleted (delete is refused at 2 and 3)."""
    m = model()
    for step in (
        lambda: m.dataset_uploaded(audio(60), purse=purse()),
        lambda: _fail_validation(m),
        lambda: m.train(purse()),  # the failed dataset is still there: 5 -> 2 -> 5, reserved and refunded
        lambda: m.dataset_deleted(next(iter(m.datasets))),
        lambda: m.dataset_uploaded(audio(60)),
        lambda: m.train(purse()),
    ):
        step()
        assert (m.reservation is not None) == m.status.locked
    with pytest.raises(Rejected) as exc:
        m.ensure_deletable()
    assert exc.value.code is ErrorCode.MODEL_LOCKED


# ---------------------------------------------------------------- handlers (fake unit of work)


def _uploaded(m: CustomModel, d: Dataset) -> ev.Envelope:
    assert d.location is not None
    obj = ev.DatasetObject.model_validate(d.location)
    return ev.wrap(ev.DatasetUploaded(dataset=obj), tenant_id=m.tenant_id, model_id=m.id)


async def _apply(uow: FakeUnitOfWork, env: ev.Envelope) -> bool:
    change = h.change_for(env)
    assert change is not None
    return await h.apply_event(uow, env, "facts", change, POLICY)


async def test_handlers_write_reserve_and_charge_once_each_with_their_events() -> None:
    repo = InMemoryModels()
    m = model()
    repo.add(m)
    uow = FakeUnitOfWork(repo)
    d = audio(180)
    up = _uploaded(m, d)
    assert await _apply(uow, up) and not await _apply(uow, up)  # redelivered: nothing more
    stored = repo.models[m.id]
    assert stored.status is S.READY_TO_RUN and stored.reservation is not None
    assert repo.accounts["acme"] == Account("acme", available=94, held=6)
    verdict = ev.ValidationPassed(dataset_id=d.id, dataset_type=d.type, file_name=d.file_name)
    passed = ev.wrap(verdict, tenant_id="acme", model_id=m.id)
    await _apply(uow, passed)
    run_id = repo.models[m.id].run_id
    assert run_id is not None
    for msg in (ev.TrainingStarted(run_id=run_id), ev.TrainingSucceeded(run_id=run_id, metrics={}, artifacts={})):
        env = ev.wrap(msg, tenant_id="acme", model_id=m.id)
        await _apply(uow, env)
        await _apply(uow, env)
    assert repo.accounts["acme"] == Account("acme", available=94, held=0, spent=6)
    assert [(e.kind, e.amount, e.balance_after) for e in repo.ledger] == [
        (EntryKind.GRANT, 100, 100),
        (EntryKind.RESERVE, 6, 94),
        (EntryKind.CHARGE, 6, 94),
    ]
    events = uow.messages(ev.CreditsReserved) + uow.messages(ev.CreditsCharged)
    assert [(type(e).__name__, e.amount, e.balance_after, e.run_id) for e in events] == [
        ("CreditsReserved", 6, 94, None),
        ("CreditsCharged", 6, 94, run_id),
    ]
    assert uow.messages(ev.CreditsRefunded) == []


async def test_train_with_too_few_credits_is_refused_and_writes_nothing() -> None:
    repo = InMemoryModels()
    m = model(auto_train=False)
    m.dataset_uploaded(audio(180))
    repo.add(m)
    repo.accounts["acme"] = Account("acme", available=5)
    uow = FakeUnitOfWork(repo)
    with pytest.raises(Rejected) as exc:
        await h.start_training(uow, Context("acme", uuid.uuid4()), m.id, POLICY, "acme")
    assert exc.value.code is ErrorCode.INSUFFICIENT_CREDITS
    assert repo.models[m.id].status is S.NOT_RUNNING and repo.ledger == [] and uow.emitted == []
    repo.accounts["acme"] = Account("acme", available=6)
    await h.start_training(uow, Context("acme", uuid.uuid4()), m.id, POLICY, "alice")
    (reserved,) = uow.messages(ev.CreditsReserved)
    assert (reserved.amount, reserved.balance_after, reserved.actor) == (6, 0, "alice")


async def test_a_posting_already_in_the_ledger_is_not_applied_again() -> None:
    """The ledger key is the last guard: two copies of a model holding one reservation (as two processes might
    load it) both fail; its refund is written once."""
    repo = InMemoryModels()
    m = _at(S.RUNNING)
    repo.add(m)
    repo.accounts["acme"] = Account("acme", available=98, held=2)
    uow = FakeUnitOfWork(repo)
    copies = [await repo.get("acme", m.id) for _ in range(2)]
    for again in copies:
        assert again is not None and again.run_id is not None and again.reservation == m.reservation
        again.training_failed(again.run_id, {"code": "stage_failed", "message": "x"}, NOW)
        async with uow(Context("acme", uuid.uuid4())) as tx:
            await h.save(tx, again)
    assert repo.accounts["acme"] == Account("acme", available=100, held=0)
    assert [e.kind for e in repo.ledger] == [EntryKind.REFUND] and len(uow.messages(ev.CreditsRefunded)) == 1


async def test_operators_grant_and_expire_and_the_allowance_comes_once() -> None:
    repo = InMemoryModels()
    uow = FakeUnitOfWork(repo)
    ctx = Context("acme", uuid.uuid4())
    account, entries = await h.credit_history(uow, ctx, POLICY, 10)
    assert account == Account("acme", 100) and [e.reason for e in entries] == ["free allowance for a new tenant"]
    after, grant = await h.post_credits(uow, POLICY, "acme", EntryKind.GRANT, 50, "pilot", "operator:bob")
    assert after.available == 150 and (grant.actor, grant.reason, grant.balance_after) == ("operator:bob", "pilot", 150)
    after, _ = await h.post_credits(uow, POLICY, "acme", EntryKind.EXPIRE, 30, "year end", "operator:bob")
    assert after.available == 120
    with pytest.raises(Rejected) as exc:
        await h.post_credits(uow, POLICY, "acme", EntryKind.EXPIRE, 121, "too much", "operator:bob")
    assert exc.value.code is ErrorCode.INSUFFICIENT_CREDITS
    with pytest.raises(Rejected):
        await h.post_credits(uow, POLICY, "acme", EntryKind.RESERVE, 1, "not an operator's", "operator:bob")
    with pytest.raises(Rejected):
        await h.post_credits(uow, POLICY, "acme", EntryKind.GRANT, 1, "  ", "operator:bob")
    account, entries = await h.credit_history(uow, ctx, POLICY, 2)
    assert [e.kind for e in entries] == [EntryKind.EXPIRE, EntryKind.GRANT]  # newest first
    _, older = await h.credit_history(uow, ctx, POLICY, 10, before=entries[-1].id)
    assert [e.kind for e in older] == [EntryKind.GRANT] and older[0].key == "allowance:acme"
    sums = await repo.entry_sums("acme")
    assert sums[EntryKind.GRANT] - sums[EntryKind.EXPIRE] == account.available + account.held + account.spent


async def test_an_operator_post_repeated_with_its_idempotency_key_is_posted_once() -> None:
    repo = InMemoryModels()
    uow = FakeUnitOfWork(repo)
    after, first = await h.post_credits(uow, POLICY, "acme", EntryKind.GRANT, 50, "pilot", "operator:bob", "po-7")
    again, repeat = await h.post_credits(uow, POLICY, "acme", EntryKind.GRANT, 50, "pilot", "operator:bob", "po-7")
    assert after.available == again.available == 150
    assert (repeat.kind, repeat.amount, repeat.key, repeat.balance_after) == (first.kind, 50, first.key, 150)
    other, _ = await h.post_credits(uow, POLICY, "globex", EntryKind.GRANT, 50, "pilot", "operator:bob", "po-7")
    assert other.available == 150  # keys are per tenant
    later, _ = await h.post_credits(uow, POLICY, "acme", EntryKind.GRANT, 50, "pilot", "operator:bob", "po-8")
    assert later.available == 200
    assert [e.kind for e in repo.ledger if e.tenant_id == "acme"].count(EntryKind.GRANT) == 3  # allowance + two
