"""HTTP API of the models service (thin: translate, delegate to handlers, render)."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, field_validator

from voxtrain_shared.auth import TENANT_RE, CurrentOperator, CurrentPrincipal, Principal, TrainPrincipal, missing_scope
from voxtrain_shared.errors import ApiError
from voxtrain_shared.http import REFUSAL_STATUS, correlation_id
from voxtrain_shared.uow import Context
from voxtrain_shared.vocab import LANGUAGE_NAMES, DatasetType, ErrorCode, ModelStatus, Scope

from . import handlers as h
from .credits import Account, Entry, EntryKind, Policy, Quote
from .domain import CustomModel, Rejected, Supervision, Validation
from .workers import utc_now

BCP47 = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
_STATUS_OF = {
    **REFUSAL_STATUS,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CONFLICT: 409,
    ErrorCode.MODEL_LOCKED: 409,
    ErrorCode.INVALID_STATUS: 409,
    ErrorCode.VALIDATION_FAILED: 409,
    ErrorCode.NO_DATASETS: 409,
}


def api_error(exc: Rejected) -> ApiError:
    return ApiError(_STATUS_OF.get(exc.code, 422), exc.code, exc.message, exc.details)


class CreateModelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    language: str = Field(description="BCP-47 tag of a supported base model, e.g. en-US")
    description: str | None = Field(None, max_length=2000)
    auto_train: bool = True

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        v = v.strip()
        if not v or any(ord(c) < 32 for c in v):
            raise ValueError("a name needs visible characters and no control characters")
        return v

    @field_validator("language")
    @classmethod
    def _language(cls, v: str) -> str:
        if not BCP47.match(v):
            raise ValueError("language must be a BCP-47 tag such as en-US")
        return v


class UpdateModelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)
    auto_train: bool | None = None


class StatusView(BaseModel):
    code: int
    name: str
    label: str
    badge: str


class StatusRules(StatusView):
    can_train: bool = Field(description="the “Train the Language” action is offered (1 and 5)")
    locked: bool = Field(description="the model and its datasets cannot change (2 and 3)")
    accepts_datasets: bool = Field(description="datasets may be added or removed (1 and 5)")


class LanguageView(BaseModel):
    code: str
    name: str


class DatasetTypeView(BaseModel):
    code: int
    name: str
    extensions: list[str] = Field(description="accepted file extensions, lower case with the dot")
    auto_detected: bool = Field(description="the type ``auto`` picks this type by extension")


class Vocabulary(BaseModel):
    """The product's rules for clients: statuses, languages and dataset types (upload limits: datasets API)."""

    statuses: list[StatusRules]
    languages: list[LanguageView] = Field(description="languages a model can be created in")
    dataset_types: list[DatasetTypeView]


def vocabulary(supported_languages: tuple[str, ...]) -> Vocabulary:
    return Vocabulary(
        statuses=[
            StatusRules(
                code=s.value,
                name=s.name,
                label=s.label,
                badge=s.badge,
                can_train=s.can_train,
                locked=s.locked,
                accepts_datasets=s.accepts_datasets,
            )
            for s in ModelStatus
        ],
        languages=[LanguageView(code=c, name=LANGUAGE_NAMES.get(c, c)) for c in supported_languages],
        dataset_types=[
            DatasetTypeView(code=t.value, name=t.name, extensions=list(t.extensions), auto_detected=t.auto_detected)
            for t in DatasetType
        ],
    )


class DatasetsSummary(BaseModel):
    total: int
    by_type: dict[str, int]
    validation: dict[str, int]


class RunView(BaseModel):
    id: uuid.UUID | None
    progress: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    finished_at: datetime | None = None


class BasisView(BaseModel):
    audio_minutes: float
    text_words: int
    measured: bool = Field(description="false when a dataset not validated yet was estimated from its size")


class CostView(BaseModel):
    """What training the model uses, in credits (the confirmation dialog shows it)."""

    estimate: int = Field(description="credits a training of the model's datasets uses now")
    balance: int = Field(description="the tenant's available credits")
    basis: BasisView
    reserved: int | None = Field(description="credits held by the model's current training (at 2 and 3)")


def cost_view(q: Quote) -> CostView:
    b = q.basis
    return CostView(
        estimate=q.estimate,
        balance=q.balance,
        basis=BasisView(audio_minutes=b.audio_minutes, text_words=b.text_words, measured=b.measured),
        reserved=q.reserved,
    )


class ModelView(BaseModel):
    id: uuid.UUID
    name: str
    language: str
    description: str | None
    auto_train: bool
    status: StatusView
    can_train: bool
    datasets: DatasetsSummary
    last_error: dict[str, Any] | None
    run: RunView
    created_at: datetime
    updated_at: datetime
    cost: CostView | None = Field(None, description="on a single model's answers (not in listings)")


class ModelPage(BaseModel):
    items: list[ModelView]
    total: int
    limit: int
    offset: int


class TrainAccepted(BaseModel):
    message: str
    model: ModelView


def view(m: CustomModel, ts: Any, cost: Quote | None = None) -> ModelView:
    by_type = {t.name: 0 for t in DatasetType}
    validation = {v.value: 0 for v in Validation}
    for d in m.datasets.values():
        by_type[d.type.name] += 1
        validation[d.validation.value] += 1
    return ModelView(
        id=m.id,
        name=m.name,
        language=m.language,
        description=m.description,
        auto_train=m.auto_train,
        status=StatusView(code=m.status.value, name=m.status.name, label=m.status.label, badge=m.status.badge),
        can_train=m.status.can_train,
        datasets=DatasetsSummary(total=len(m.datasets), by_type=by_type, validation=validation),
        last_error=m.last_error,
        run=RunView(
            id=m.run_id,
            progress=m.progress,
            metrics=m.metrics if m.status is ModelStatus.SUCCESS else None,
            finished_at=m.finished_at,
        ),
        created_at=ts["created_at"],
        updated_at=ts["updated_at"],
        cost=cost_view(cost) if cost is not None else None,
    )


def router(uow: h.ModelWork, supported_languages: tuple[str, ...], credits: Policy) -> APIRouter:
    r = APIRouter(prefix="/v1/models", tags=["models"])

    def ctx(principal: Any, request: Request) -> Context:
        return Context(principal.tenant_id, correlation_id(request))

    async def show(tenant_id: str, model_id: uuid.UUID) -> ModelView:
        m, ts = await h.get_model(uow, tenant_id, model_id)
        return view(m, ts, await h.quote(uow, m, credits))

    def may_auto_train(principal: Principal, asked: bool | None) -> None:
        """Training on upload (auto_train) starts trainings: it needs the train scope like the Train action."""
        refusal = missing_scope(principal, Scope.TRAIN, "auto_train: true") if asked else None
        if refusal is not None:
            raise refusal

    @r.post("", status_code=status.HTTP_201_CREATED, response_model=ModelView)
    async def create(body: CreateModelBody, principal: CurrentPrincipal, request: Request) -> ModelView:
        """Create a custom model (status 1, Not Running)."""
        if body.language not in supported_languages:
            raise ApiError(
                422,
                ErrorCode.VALIDATION_FAILED,
                f"Language {body.language} has no base model; supported: {', '.join(supported_languages)}.",
            )
        # a key without the train scope creates models that wait for the Train action (unless it asks for more)
        auto_train = body.auto_train if "auto_train" in body.model_fields_set else principal.allows(Scope.TRAIN)
        may_auto_train(principal, auto_train)
        try:
            m = await h.create_model(
                uow,
                ctx(principal, request),
                model_id=uuid.uuid4(),
                name=body.name,
                language=body.language,
                description=body.description,
                auto_train=auto_train,
            )
        except Rejected as exc:
            raise api_error(exc) from None
        return await show(principal.tenant_id, m.id)

    @r.get("", response_model=ModelPage)
    async def list_(
        principal: CurrentPrincipal,
        status_: Annotated[int | None, Query(alias="status", ge=1, le=5)] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> ModelPage:
        """The tenant's models, oldest first, optionally only those with one status."""
        st = ModelStatus(status_) if status_ else None
        items, total = await h.list_models(uow, principal.tenant_id, st, limit, offset)
        return ModelPage(items=[view(m, ts) for m, ts in items], total=total, limit=limit, offset=offset)

    @r.get("/{model_id}", response_model=ModelView)
    async def get(model_id: uuid.UUID, principal: CurrentPrincipal) -> ModelView:
        try:
            return await show(principal.tenant_id, model_id)
        except Rejected as exc:
            raise api_error(exc) from None

    @r.patch("/{model_id}", response_model=ModelView)
    async def update(
        model_id: uuid.UUID, body: UpdateModelBody, principal: CurrentPrincipal, request: Request
    ) -> ModelView:
        """Change name, description or auto_train; refused (model_locked) while 2 or 3."""
        may_auto_train(principal, body.auto_train)
        try:
            await h.update_model(uow, ctx(principal, request), model_id, **body.model_dump(exclude_unset=True))
            return await show(principal.tenant_id, model_id)
        except Rejected as exc:
            raise api_error(exc) from None

    @r.delete("/{model_id}", status_code=status.HTTP_204_NO_CONTENT)
    async def delete(model_id: uuid.UUID, principal: CurrentPrincipal, request: Request) -> Response:
        """Delete a model; refused (model_locked) while 2 or 3."""
        try:
            await h.delete_model(uow, ctx(principal, request), model_id)
        except Rejected as exc:
            raise api_error(exc) from None
        return Response(status_code=204)

    @r.post(
        "/{model_id}/train",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=TrainAccepted,
        responses={402: {"description": "insufficient_credits: details give the estimate and the balance"}},
    )
    async def train(model_id: uuid.UUID, principal: TrainPrincipal, request: Request) -> TrainAccepted:
        """The "Train the Language" button: only in 1 or 5, with at least one dataset, and credits for it
        (reserved now; 402 ``insufficient_credits`` with the estimate and the balance otherwise, nothing changed)."""
        try:
            await h.start_training(uow, ctx(principal, request), model_id, credits, principal.tenant_id)
            m = await show(principal.tenant_id, model_id)
        except Rejected as exc:
            raise api_error(exc) from None
        return TrainAccepted(message="Training started successfully", model=m)

    @r.post("/{model_id}/cancel", response_model=ModelView)
    async def cancel(model_id: uuid.UUID, principal: TrainPrincipal, request: Request) -> ModelView:
        """Cancel a model at 2 or 3: its validation and training stop, and it goes to 5 with code ``cancelled``
        (Train is offered again). Any other status: 409 invalid_status."""
        try:
            await h.cancel_training(uow, ctx(principal, request), model_id, principal.subject or principal.tenant_id)
            return await show(principal.tenant_id, model_id)
        except Rejected as exc:
            raise api_error(exc) from None

    outer = APIRouter()
    outer.include_router(r)
    words = vocabulary(supported_languages)

    @outer.get("/v1/vocabulary", response_model=Vocabulary, tags=["vocabulary"])
    async def vocabulary_() -> Vocabulary:
        """The product's rules, for clients to show instead of copying them (public: no token needed)."""
        return words

    return outer


class OverdueView(BaseModel):
    """A model at 2 or 3 and where its supervision stands."""

    id: uuid.UUID
    tenant_id: str
    name: str
    status: StatusView
    phase: str | None = Field(description="validating, starting or running (what the model waits for)")
    run_id: uuid.UUID | None
    watched_since: datetime | None = Field(description="start of the current deadline window")
    due_at: datetime | None
    redrives: int = Field(description="requests sent again in this window without an answer")
    max_redrives: int


def overdue_view(m: CustomModel, rules: Supervision) -> OverdueView:
    return OverdueView(
        id=m.id,
        tenant_id=m.tenant_id,
        name=m.name,
        status=StatusView(code=m.status.value, name=m.status.name, label=m.status.label, badge=m.status.badge),
        phase=m.phase.value if m.phase else None,
        run_id=m.run_id,
        watched_since=m.watched_since,
        due_at=m.due_at(rules),
        redrives=m.redrives,
        max_redrives=rules.max_redrives,
    )


def ops_router(uow: h.ModelWork, rules: Supervision) -> APIRouter:
    """Cross-tenant operations (operator token only): overdue models, re-drive one."""
    r = APIRouter(prefix="/v1/ops/models", tags=["operations"])

    @r.get("/overdue", response_model=list[OverdueView])
    async def overdue(_: CurrentOperator, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[OverdueView]:
        """Models of every tenant at 2/3 whose deadline passed, longest waiting first."""
        return [overdue_view(m, rules) for m in await h.overdue(uow, rules, utc_now(), limit)]

    @r.post("/{model_id}/redrive", response_model=OverdueView)
    async def redrive(model_id: uuid.UUID, _: CurrentOperator) -> OverdueView:
        """Request the model's validation (at 2) or training (2 with training requested, 3) again now."""
        try:
            return overdue_view(await h.redrive(uow, rules, model_id, utc_now()), rules)
        except Rejected as exc:
            raise api_error(exc) from None

    return r


class EntryView(BaseModel):
    id: int
    kind: EntryKind
    amount: int = Field(description="credits, always positive; the kind says which way they moved")
    balance_after: int
    model_id: uuid.UUID | None
    run_id: uuid.UUID | None
    actor: str = Field(description="who: a tenant, an operator, or voxtrain itself")
    reason: str
    created_at: datetime | None


class CreditsView(BaseModel):
    """A tenant's credits: ``balance`` = grants − expirations − reservations + refunds (what can be reserved);
    ``held`` = reserved by trainings at 2 or 3; ``spent`` = charged for trainings that succeeded."""

    tenant_id: str
    balance: int
    held: int
    spent: int
    entries: list[EntryView] = Field(description="newest first")
    next_before: int | None = Field(description="pass as ``before`` for the next (older) page; null: no more")


class PostCreditsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: EntryKind = Field(description="grant or expire")
    amount: int = Field(gt=0)
    reason: str = Field(min_length=1, max_length=500)
    actor: str = Field("operator", min_length=1, max_length=200, description="who asks (the CLI sends the user)")
    idempotency_key: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9._:-]{1,100}$",
        description="a retry with the same key posts nothing more (the first request's entry stands)",
    )


def credits_view(account: Account, entries: list[Entry], limit: int) -> CreditsView:
    return CreditsView(
        tenant_id=account.tenant_id,
        balance=account.available,
        held=account.held,
        spent=account.spent,
        entries=[
            EntryView(
                id=e.id or 0,
                kind=e.kind,
                amount=e.amount,
                balance_after=e.balance_after,
                model_id=e.model_id,
                run_id=e.run_id,
                actor=e.actor,
                reason=e.reason,
                created_at=e.created_at,
            )
            for e in entries
        ],
        next_before=entries[-1].id if len(entries) == limit else None,
    )


Limit = Annotated[int, Query(ge=1, le=500)]
Before = Annotated[int | None, Query(ge=1, description="only entries older than this entry id")]


def _tenant(tenant_id: str) -> str:
    if not TENANT_RE.match(tenant_id):
        raise ApiError(
            422,
            ErrorCode.VALIDATION_FAILED,
            f"{tenant_id!r} is not a tenant id (1-63 lower-case letters, digits, '-' or '_').",
        )
    return tenant_id


def credits_router(uow: h.ModelWork, credits: Policy) -> APIRouter:
    """The token's tenant's credits, and operators' grants (operator token)."""
    r = APIRouter(tags=["credits"])

    @r.get("/v1/credits", response_model=CreditsView)
    async def mine(
        principal: CurrentPrincipal, request: Request, limit: Limit = 50, before: Before = None
    ) -> CreditsView:
        """The token's tenant's balance and ledger, newest first (a new tenant gets its free allowance here)."""
        ctx = Context(principal.tenant_id, correlation_id(request))
        return credits_view(*(await h.credit_history(uow, ctx, credits, limit, before)), limit)

    @r.get("/v1/ops/credits/{tenant_id}", response_model=CreditsView, tags=["operations"])
    async def show(
        tenant_id: str, _: CurrentOperator, request: Request, limit: Limit = 50, before: Before = None
    ) -> CreditsView:
        """Any tenant's balance and ledger (operator token)."""
        ctx = Context(_tenant(tenant_id), correlation_id(request))
        return credits_view(*(await h.credit_history(uow, ctx, credits, limit, before)), limit)

    @r.post("/v1/ops/credits/{tenant_id}", response_model=CreditsView, tags=["operations"])
    async def post(tenant_id: str, body: PostCreditsBody, _: CurrentOperator, request: Request) -> CreditsView:
        """Grant credits to a tenant, or expire some of its balance (operator token); answers the account after."""
        try:
            await h.post_credits(
                uow,
                credits,
                _tenant(tenant_id),
                body.kind,
                body.amount,
                body.reason,
                body.actor,
                body.idempotency_key,
            )
        except Rejected as exc:
            raise api_error(exc) from None
        ctx = Context(tenant_id, correlation_id(request))
        return credits_view(*(await h.credit_history(uow, ctx, credits, 20)), 20)

    return r
