"""Use cases of the models service: each one loads a model, applies the domain, saves, and writes
the resulting messages to the outbox — all in one transaction. Consumers also record the handled
message in the inbox in that transaction, so a redelivered message changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg

from voxtrain_shared import events as ev
from voxtrain_shared.logs import get_logger
from voxtrain_shared.metrics import MODEL_STATUS_SECONDS
from voxtrain_shared.topics import Topics
from voxtrain_shared.uow import Context, Transaction, UnitOfWork, Work
from voxtrain_shared.vocab import ErrorCode, ModelStatus

from . import credits as cr
from .domain import (
    CancelledEvent,
    CustomModel,
    Dataset,
    Redrive,
    Rejected,
    StatusChanged,
    Supervision,
    TrainingRequestedEvent,
    ValidationRequestedEvent,
)
from .repository import ModelRepository, NameTaken

log = get_logger(__name__)


ModelTx = Transaction[ModelRepository]
ModelWork = Work[ModelRepository]


def unit_of_work(pool: Callable[[], asyncpg.Pool], schema: str, topics: Topics) -> UnitOfWork[ModelRepository]:
    return UnitOfWork(pool, schema, topics, ModelRepository)


DomainEvent = StatusChanged | TrainingRequestedEvent | ValidationRequestedEvent | CancelledEvent
#: How an incoming fact changes a model; the purse is given when the change may reserve credits.
Change = Callable[[CustomModel, cr.Purse | None], None]


async def save(tx: ModelTx, model: CustomModel, now: datetime | None = None) -> None:
    """Write the model back and emit what its domain recorded, in the same transaction.

    A sign of life in the change restarts the model's supervision deadline at ``now`` (default: the clock)."""
    left = model.settle(now or datetime.now(UTC))
    await tx.repo.save(model)
    for status, seconds in left:
        MODEL_STATUS_SECONDS.labels(status.name).observe(seconds)
    for event in model.events:
        if isinstance(event, cr.Posting):
            await _post(tx, model, event)
            continue
        await tx.emit(_message(event, model), model.id)
        if isinstance(event, StatusChanged):
            log.info(
                "status_changed", model_id=str(model.id), old=event.old.value, new=event.new.value, reason=event.reason
            )
    model.events.clear()


_CREDITS_EVENTS: dict[cr.EntryKind, type[ev.CreditsPosted]] = {
    cr.EntryKind.RESERVE: ev.CreditsReserved,
    cr.EntryKind.CHARGE: ev.CreditsCharged,
    cr.EntryKind.REFUND: ev.CreditsRefunded,
}


async def _post(tx: ModelTx, model: CustomModel, p: cr.Posting) -> None:
    """Append a model's reserve, charge or refund to its tenant's ledger and emit its event — at most once per
    reservation (the entry's key), in the transaction of the status change that asked for it."""
    account = await tx.repo.account(model.tenant_id, lock=True)  # the lock: one posting of the tenant at a time
    if account is None:  # a reservation opened the account; a posting without one is a bug, not a retry
        raise RuntimeError(f"model {model.id} posts {p.kind.value} credits but {model.tenant_id} has no account")
    if await tx.repo.entry_by_key(p.key) is not None:
        log.warning("credits_posting_repeated", model_id=str(model.id), key=p.key)
        return
    after = account.post(p.kind, p.amount)
    entry = cr.Entry(model.tenant_id, p.kind, p.amount, after.available, p.actor, p.reason, model.id, p.run_id, p.key)
    if not await tx.repo.append_entry(entry):  # cannot happen under the account's lock; never post twice anyway
        raise RuntimeError(f"ledger entry {p.key} appeared while the account of {model.tenant_id} was locked")
    await tx.repo.set_account(after)
    message = _CREDITS_EVENTS[p.kind](
        amount=p.amount, balance_after=after.available, run_id=p.run_id, reason=p.reason, actor=p.actor
    )
    await tx.emit(message, model.id)
    log.info("credits_posted", model_id=str(model.id), kind=p.kind.value, amount=p.amount, balance=after.available)


async def open_account(repo: ModelRepository, tenant_id: str, policy: cr.Policy, *, lock: bool = False) -> cr.Account:
    """The tenant's account; the first time voxtrain sees the tenant it is opened with the free allowance."""
    account = await repo.account(tenant_id, lock=lock)
    if account is None:
        await repo.open_account(*cr.opened(tenant_id, policy.free_allowance))
        account = await repo.account(tenant_id, lock=lock)
        assert account is not None  # just created, by us or by a concurrent first sight
    return account


async def _purse(tx: ModelTx, policy: cr.Policy, actor: str) -> cr.Purse:
    """What the transaction's tenant can spend, its account locked until commit (one reservation at a time)."""
    account = await open_account(tx.repo, tx.ctx.tenant_id, policy, lock=True)
    return cr.Purse(account.available, policy.rates, actor)


def _error_info(error: dict[str, Any] | None) -> ev.ErrorInfo | None:
    if not error:
        return None
    return ev.ErrorInfo.model_validate({k: v for k, v in error.items() if k in ev.ErrorInfo.model_fields})


def _message(event: DomainEvent, model: CustomModel) -> ev.Message:
    if isinstance(event, StatusChanged):
        return ev.TrainingStatusChanged(
            old_status=event.old,
            new_status=event.new,
            status_name=event.new.name,
            badge=event.new.badge,
            reason=event.reason,
            error=_error_info(event.error),
            run_id=event.run_id,
        )
    if isinstance(event, CancelledEvent):
        return ev.TrainingCancelled(
            run_id=event.run_id, dataset_ids=list(event.dataset_ids), cancelled_by=event.cancelled_by
        )
    if isinstance(event, ValidationRequestedEvent):
        return ev.ValidationRequested(dataset=ev.DatasetObject.model_validate(event.location), attempt=event.attempt)
    return ev.TrainingRequested(
        run_id=event.run_id,
        language=model.language,
        attempt=event.attempt,
        datasets=[ev.DatasetObject.model_validate(d) for d in event.datasets],
    )


def not_found(model_id: uuid.UUID) -> Rejected:
    return Rejected(ErrorCode.NOT_FOUND, f"No model {model_id} exists for this tenant.")


async def _load(tx: ModelTx, model_id: uuid.UUID) -> CustomModel:
    model = await tx.repo.get(tx.ctx.tenant_id, model_id, lock=True)
    if model is None:
        raise not_found(model_id)
    return model


# ---------------------------------------------------------------- commands (HTTP and Kafka)


async def create_model(uow: ModelWork, ctx: Context, **fields: Any) -> CustomModel:
    async with uow(ctx) as tx:
        return await create_in(tx, **fields)


async def create_in(
    tx: ModelTx, *, model_id: uuid.UUID, name: str, language: str, description: str | None, auto_train: bool
) -> CustomModel:
    """Create a model inside an open transaction (name unique per tenant)."""
    model = CustomModel(
        id=model_id,
        tenant_id=tx.ctx.tenant_id,
        name=name,
        language=language,
        description=description,
        auto_train=auto_train,
    )
    try:
        await tx.repo.insert(model)
    except NameTaken:
        raise Rejected(ErrorCode.CONFLICT, f"A model named {name!r} already exists; choose another name.") from None
    except asyncpg.UniqueViolationError:
        raise Rejected(ErrorCode.CONFLICT, f"A model with id {model_id} already exists.") from None
    await tx.emit(
        ev.ModelCreated(
            name=name, language=language, description=description, auto_train=auto_train, status=model.status
        ),
        model.id,
    )
    log.info("model_created", model_id=str(model.id), tenant_id=tx.ctx.tenant_id)
    return model


async def update_model(uow: ModelWork, ctx: Context, model_id: uuid.UUID, **fields: Any) -> CustomModel:
    async with uow(ctx) as tx:
        model = await _load(tx, model_id)
        changed = model.update(**fields)
        if changed:
            try:
                await save(tx, model)
            except NameTaken:
                raise Rejected(
                    ErrorCode.CONFLICT, f"A model named {model.name!r} already exists; choose another name."
                ) from None
            await tx.emit(
                ev.ModelUpdated(
                    name=model.name, description=model.description, auto_train=model.auto_train, changed=changed
                ),
                model.id,
            )
    return model


async def delete_model(uow: ModelWork, ctx: Context, model_id: uuid.UUID) -> None:
    async with uow(ctx) as tx:
        model = await _load(tx, model_id)
        model.ensure_deletable()
        await tx.repo.delete(model)
        await tx.emit(ev.ModelDeleted(), model.id)


async def start_training(
    uow: ModelWork, ctx: Context, model_id: uuid.UUID, policy: cr.Policy, actor: str
) -> CustomModel:
    async with uow(ctx) as tx:
        return await train_in(tx, model_id, policy, actor)


async def train_in(tx: ModelTx, model_id: uuid.UUID, policy: cr.Policy, actor: str) -> CustomModel:
    """Press Train inside an open transaction: the price is reserved from the tenant's credits, or
    ``insufficient_credits`` is raised and nothing changes."""
    model = await _load(tx, model_id)
    model.train(await _purse(tx, policy, actor))
    await save(tx, model)
    return model


async def cancel_training(uow: ModelWork, ctx: Context, model_id: uuid.UUID, by: str) -> CustomModel:
    async with uow(ctx) as tx:
        return await cancel_in(tx, model_id, by)


async def cancel_in(tx: ModelTx, model_id: uuid.UUID, by: str) -> CustomModel:
    """Press Cancel inside an open transaction: the move to 5 and TrainingCancelled commit together."""
    model = await _load(tx, model_id)
    model.cancel(by, datetime.now(UTC))
    await save(tx, model)
    return model


# ---------------------------------------------------------------- facts from other services


async def apply_event(uow: ModelWork, env: ev.Envelope, consumer: str, change: Change, policy: cr.Policy) -> bool:
    """Apply ``change`` to the envelope's model exactly once; False if redelivered or the model is gone.

    A model at 1 or 5 gets the tenant's purse (an upload may queue it, which reserves credits)."""
    if env.model_id is None:
        return False
    ctx = Context.of(env)
    async with uow(ctx) as tx:
        if not await tx.claim(consumer, env.id):
            log.info("duplicate_ignored", consumer=consumer)
            return False
        model = await tx.repo.get(env.tenant_id, env.model_id, lock=True)
        if model is None:
            log.info("event_for_unknown_model", model_id=str(env.model_id))
            return False
        purse = await _purse(tx, policy, env.tenant_id) if model.status.can_train else None
        change(model, purse)
        await save(tx, model)
    return True


def change_for(env: ev.Envelope) -> Change | None:
    """How an incoming message changes a model (None: not ours to handle)."""
    msg = env.payload()
    at = env.occurred_at or datetime.now(UTC)
    match msg:
        case ev.DatasetUploaded(dataset=d, batch=batch):
            ds = Dataset(d.dataset_id, d.dataset_type, d.file_name, location=d.model_dump(mode="json"))
            return lambda m, purse: m.dataset_uploaded(ds, tuple(batch), purse)
        case ev.DatasetDeleted(dataset_id=dataset_id):
            return lambda m, _: m.dataset_deleted(dataset_id)
        case ev.ValidationPassed():
            measure = cr.measured(msg.dataset_type, msg.metadata)
            return lambda m, _: m.dataset_validated(
                msg.dataset_id, msg.dataset_type, msg.file_name, True, measure=measure
            )
        case ev.ValidationFailed():
            err = msg.error.model_dump(mode="json")
            err.setdefault("dataset_id", str(msg.dataset_id))
            err["dataset_id"] = err["dataset_id"] or str(msg.dataset_id)
            err["file_name"] = err["file_name"] or msg.file_name
            return lambda m, _: m.dataset_validated(msg.dataset_id, msg.dataset_type, msg.file_name, False, err)
        case ev.TrainingStarted(run_id=run_id):
            return lambda m, _: m.training_started(run_id)
        case ev.TrainingProgress():
            more = msg.model_dump(include={"eta_seconds", "attempt", "max_attempts"})
            return lambda m, _: m.training_progress(msg.run_id, msg.stage, msg.percent, msg.message, **more)
        case ev.TrainingSucceeded():
            metrics = {**msg.metrics, "artifacts": msg.artifacts}
            return lambda m, _: m.training_succeeded(msg.run_id, metrics, at)
        case ev.TrainingFailed():
            return lambda m, _: m.training_failed(msg.run_id, msg.error.model_dump(mode="json"), at)
    return None


# ---------------------------------------------------------------- supervision (workers.py drives it)


async def supervise(uow: ModelWork, policy: Supervision, now: datetime, limit: int = 100) -> list[Redrive]:
    """Re-request or fail every model at 2/3 whose deadline passed; one transaction per model.

    The candidates are read without locks; each is then re-decided under its row lock, so two replicas
    (or a fact arriving meanwhile) never act twice on one deadline."""
    async with uow.reading() as repo:
        due = await repo.overdue(policy.cutoffs(now), limit)
    done = []
    for tenant_id, model_id in due:
        async with uow(Context(tenant_id, uuid.uuid4())) as tx:
            model = await tx.repo.get(tenant_id, model_id, lock=True)
            if model is None:
                continue
            redrive = model.supervise(now, policy)
            if redrive is None:
                continue
            await save(tx, model, now)
        log.warning(
            "model_overdue",
            model_id=str(model_id),
            tenant_id=tenant_id,
            phase=redrive.phase.value,
            attempt=redrive.attempt,
            failed=redrive.failed,
        )
        done.append(redrive)
    return done


async def overdue(uow: ModelWork, policy: Supervision, now: datetime, limit: int = 100) -> list[CustomModel]:
    """Models (every tenant) at 2/3 whose deadline passed, or that were asked again and have not answered
    since, longest waiting first."""
    async with uow.reading() as repo:
        due = await repo.overdue(policy.cutoffs(now), limit, asked_again=True)
        return [m for tenant_id, model_id in due if (m := await repo.get(tenant_id, model_id)) is not None]


async def count_overdue(uow: ModelWork, policy: Supervision, now: datetime) -> dict[ModelStatus, int]:
    """How many models at 2 and at 3 :func:`overdue` would list."""
    async with uow.reading() as repo:
        return await repo.count_overdue(policy.cutoffs(now))


async def redrive(uow: ModelWork, policy: Supervision, model_id: uuid.UUID, now: datetime) -> CustomModel:
    """An operator re-drives a model at 2/3 now: its validation or training is requested again."""
    async with uow.reading() as repo:
        tenant_id = await repo.find_tenant(model_id)
    if tenant_id is None:
        raise Rejected(ErrorCode.NOT_FOUND, f"No model {model_id} exists.")
    async with uow(Context(tenant_id, uuid.uuid4())) as tx:
        model = await _load(tx, model_id)
        redone = model.supervise(now, policy, force=True)
        await save(tx, model, now)
    log.warning(
        "model_redriven", model_id=str(model_id), tenant_id=tenant_id, phase=redone.phase.value if redone else None
    )
    return model


# ---------------------------------------------------------------- reads


async def get_model(uow: ModelWork, tenant_id: str, model_id: uuid.UUID) -> tuple[CustomModel, Any]:
    async with uow.reading() as repo:
        model = await repo.get(tenant_id, model_id)
        if model is None:
            raise not_found(model_id)
        return model, await repo.timestamps(model_id)


async def list_models(
    uow: ModelWork, tenant_id: str, status: ModelStatus | None, limit: int, offset: int
) -> tuple[list[tuple[CustomModel, Any]], int]:
    async with uow.reading() as repo:
        models, total = await repo.list_page(tenant_id, status, limit, offset)
        return [(m, await repo.timestamps(m.id)) for m in models], total


# ---------------------------------------------------------------- credits


async def quote(uow: ModelWork, model: CustomModel, policy: cr.Policy) -> cr.Quote:
    """What training the model costs now, the tenant's balance (its free allowance if it has no account yet) and
    what the model's current training holds."""
    async with uow.reading() as repo:
        account = await repo.account(model.tenant_id)
    balance = account.available if account is not None else policy.free_allowance
    basis = model.basis()
    reserved = model.reservation.amount if model.reservation else None
    return cr.Quote(cr.price(basis, policy.rates), balance, basis, reserved)


async def credit_history(
    uow: ModelWork, ctx: Context, policy: cr.Policy, limit: int, before: int | None = None
) -> tuple[cr.Account, list[cr.Entry]]:
    """The context's tenant's account (opened on first sight) and its entries, newest first."""
    async with uow(ctx) as tx:
        account = await open_account(tx.repo, ctx.tenant_id, policy)
        return account, await tx.repo.entries(ctx.tenant_id, limit, before)


async def post_credits(
    uow: ModelWork,
    policy: cr.Policy,
    tenant_id: str,
    kind: cr.EntryKind,
    amount: int,
    reason: str,
    actor: str,
    idempotency_key: str | None = None,
) -> tuple[cr.Account, cr.Entry]:
    """An operator grants credits to a tenant, or expires some of its balance (refused beyond the balance).

    With an ``idempotency_key``, asking again with the same key posts nothing more (a retried grant is not paid
    twice): the answer is the account as it is, and the entry the first request wrote."""
    if kind not in (cr.EntryKind.GRANT, cr.EntryKind.EXPIRE):
        raise Rejected(ErrorCode.VALIDATION_FAILED, "Operators grant or expire credits; the rest follows trainings.")
    if not reason.strip():
        raise Rejected(ErrorCode.VALIDATION_FAILED, "Say why (--reason): the ledger keeps it for the tenant to see.")
    key = None if idempotency_key is None else f"operator:{tenant_id}:{idempotency_key}"
    async with uow(Context(tenant_id, uuid.uuid4())) as tx:
        account = await open_account(tx.repo, tenant_id, policy, lock=True)
        first = None if key is None else await tx.repo.entry_by_key(key)
        if first is not None:
            log.info("credits_post_repeated", tenant_id=tenant_id, kind=first.kind.value, actor=actor)
            return account, first
        after = account.post(kind, amount)
        entry = cr.Entry(tenant_id, kind, amount, after.available, actor, reason.strip(), key=key)
        await tx.repo.append_entry(entry)
        await tx.repo.set_account(after)
    log.info("credits_posted_by_operator", tenant_id=tenant_id, kind=kind.value, amount=amount, actor=actor)
    return after, entry
