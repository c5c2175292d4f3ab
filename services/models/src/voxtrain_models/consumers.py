"""Kafka entrypoints of the models service (thin: parse, check, delegate)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from voxtrain_shared import events as ev
from voxtrain_shared.auth import InvalidToken, bearer, verify_token
from voxtrain_shared.kafka import current_headers
from voxtrain_shared.logs import get_logger
from voxtrain_shared.settings import AuthSettings
from voxtrain_shared.uow import Context
from voxtrain_shared.vocab import ErrorCode, Scope

from . import handlers as h
from .credits import Policy
from .domain import Rejected

log = get_logger(__name__)


def facts(uow: h.ModelWork, consumer: str, policy: Policy) -> Callable[[ev.Envelope], Awaitable[None]]:
    """Handler for dataset, validation and training events: apply them to the model, once."""

    async def handle(env: ev.Envelope) -> None:
        change = h.change_for(env)
        if change is not None:
            await h.apply_event(uow, env, consumer, change, policy)

    return handle


def commands(
    uow: h.ModelWork, auth: AuthSettings, consumer: str, supported_languages: tuple[str, ...], policy: Policy
) -> Callable[[ev.Envelope], Awaitable[None]]:
    """Handler for CreateModel / StartTraining / CancelTraining from other services.

    A command carries ``authorization: Bearer <token>`` in its headers; the token's tenant must be
    the envelope's. A command that cannot be carried out yields CommandRejected (never a crash).
    """

    async def handle(env: ev.Envelope) -> None:
        ctx = Context.of(env)
        try:
            async with uow(ctx) as tx:  # the inbox claim commits together with the effects
                if not await tx.claim(consumer, env.id):
                    return
                await _execute(tx, env)
        except Rejected as exc:
            log.info("command_rejected", command=env.type, code=exc.code.value)
            async with uow(ctx) as tx:
                if await tx.claim(consumer, env.id):
                    await tx.emit(
                        ev.CommandRejected(
                            command_id=env.id, command_type=env.type, code=exc.code, message=exc.message
                        ),
                        env.model_id,
                    )

    async def _execute(tx: h.ModelTx, env: ev.Envelope) -> None:
        try:
            principal = verify_token(auth, bearer(current_headers().get("authorization")))
        except InvalidToken as exc:
            raise Rejected(ErrorCode.UNAUTHORIZED, f"command needs a valid bearer token header: {exc}") from None
        if principal.tenant_id != env.tenant_id:
            raise Rejected(ErrorCode.FORBIDDEN, "the token's tenant is not the envelope's tenant")
        if env.model_id is None:
            raise Rejected(ErrorCode.VALIDATION_FAILED, "the envelope needs a model_id")
        msg = env.payload()
        trains = isinstance(msg, ev.StartTraining | ev.CancelTraining) or (
            isinstance(msg, ev.CreateModel) and msg.auto_train
        )
        needed = Scope.TRAIN if trains else Scope.WRITE
        if not principal.allows(needed):
            raise Rejected(ErrorCode.FORBIDDEN, f"{env.type} needs a token with the '{needed.value}' scope")
        if isinstance(msg, ev.CreateModel):
            if msg.language not in supported_languages:
                raise Rejected(ErrorCode.VALIDATION_FAILED, f"Language {msg.language} has no base model.")
            await h.create_in(
                tx,
                model_id=env.model_id,
                name=msg.name,
                language=msg.language,
                description=msg.description,
                auto_train=msg.auto_train,
            )
        elif isinstance(msg, ev.StartTraining):
            await h.train_in(tx, env.model_id, policy, principal.tenant_id)
        elif isinstance(msg, ev.CancelTraining):
            await h.cancel_in(tx, env.model_id, principal.subject or principal.tenant_id)

    return handle
