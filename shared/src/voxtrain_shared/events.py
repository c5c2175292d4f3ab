"""Events and commands: the envelope, every message type, and the one registry that parses them.

Every message on every topic is an :class:`Envelope` (DESIGN.md, "Events") whose ``data`` is the
payload of one registered message class. Payloads are frozen, versioned pydantic models; event
names are past tense, command names imperative. Add a message by subclassing :class:`Message`
with ``TYPE``, ``VERSION`` and ``TOPIC`` and decorating it with ``@register``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .vocab import DatasetType, ErrorCode, ModelStatus


class UnknownMessage(ValueError):
    """Raised for a message whose type/version is not registered or whose body is malformed."""


class Message(BaseModel):
    """Base of every payload. ``TOPIC`` is a logical key of :class:`voxtrain_shared.topics.Topics`."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    TYPE: ClassVar[str]
    VERSION: ClassVar[int] = 1
    TOPIC: ClassVar[str]


class Envelope(BaseModel):
    """The JSON envelope every message travels in."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: UUID = Field(default_factory=uuid4)
    type: str
    version: int
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    tenant_id: str
    model_id: UUID | None = None
    correlation_id: UUID
    causation_id: UUID | None = None
    data: dict[str, Any]

    def payload(self) -> Message:
        """The typed payload (raises :class:`UnknownMessage`)."""
        return REGISTRY.payload(self)

    def to_bytes(self) -> bytes:
        """Serialised form as it goes on the wire."""
        return self.model_dump_json().encode()

    def key(self) -> bytes | None:
        """Kafka key: the model id, so a model's messages stay ordered."""
        return str(self.model_id).encode() if self.model_id else None


M = TypeVar("M", bound=type[Message])


class Registry:
    """Maps (type, version) to a payload class."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, int], type[Message]] = {}

    def register(self, cls: M) -> M:
        """Class decorator: make a message type known."""
        key = (cls.TYPE, cls.VERSION)
        if key in self._by_key:
            raise ValueError(f"message {key} registered twice")
        self._by_key[key] = cls
        return cls

    def classes(self) -> list[type[Message]]:
        """Every registered message class."""
        return list(self._by_key.values())

    def parse(self, raw: bytes | str | dict[str, Any]) -> Envelope:
        """Parse and validate an envelope and its payload (raises :class:`UnknownMessage`)."""
        try:
            data = json.loads(raw) if isinstance(raw, (bytes, str)) else raw
            env = Envelope.model_validate(data)
        except (ValueError, ValidationError) as exc:
            raise UnknownMessage(f"not a voxtrain envelope: {exc}") from exc
        self.payload(env)
        return env

    def payload(self, env: Envelope) -> Message:
        """Validate ``env.data`` against its registered class."""
        cls = self._by_key.get((env.type, env.version))
        if cls is None:
            raise UnknownMessage(f"unknown message type {env.type!r} version {env.version}")
        try:
            return cls.model_validate(env.data)
        except ValidationError as exc:
            raise UnknownMessage(f"invalid {env.type} v{env.version} payload: {exc}") from exc


REGISTRY = Registry()
register = REGISTRY.register


def wrap(
    message: Message,
    *,
    tenant_id: str,
    model_id: UUID | None,
    correlation_id: UUID | None = None,
    causation: Envelope | None = None,
) -> Envelope:
    """Put a payload in an envelope; correlation follows the causing message when given."""
    if correlation_id is None:
        correlation_id = causation.correlation_id if causation else uuid4()
    return Envelope(
        type=message.TYPE,
        version=message.VERSION,
        tenant_id=tenant_id,
        model_id=model_id,
        correlation_id=correlation_id,
        causation_id=causation.id if causation else None,
        data=message.model_dump(mode="json"),
    )


# ---------------------------------------------------------------- shared value objects


class ErrorInfo(BaseModel):
    """An error a person can act on: code, message and where."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    code: ErrorCode
    message: str
    dataset_id: UUID | None = None
    file_name: str | None = None
    stage: str | None = None
    details: list[dict[str, Any]] = Field(default_factory=list)
    #: entries of ``details`` left out to keep the event small (voxtrain_shared.wire.fit); the API has them all
    details_truncated: int = 0


class DatasetObject(BaseModel):
    """Where a dataset's bytes are, and what it is."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    dataset_id: UUID
    dataset_type: DatasetType
    file_name: str
    bucket: str
    object_key: str
    size: int
    sha256: str


# ---------------------------------------------------------------- models topic


@register
class ModelCreated(Message):
    TYPE: ClassVar[str] = "ModelCreated"
    TOPIC: ClassVar[str] = "models"
    name: str
    language: str
    description: str | None = None
    auto_train: bool = True
    status: ModelStatus = ModelStatus.NOT_RUNNING


@register
class ModelUpdated(Message):
    TYPE: ClassVar[str] = "ModelUpdated"
    TOPIC: ClassVar[str] = "models"
    name: str
    description: str | None = None
    auto_train: bool
    changed: list[str]


@register
class ModelDeleted(Message):
    TYPE: ClassVar[str] = "ModelDeleted"
    TOPIC: ClassVar[str] = "models"


@register
class CommandRejected(Message):
    """Answer to a command from the commands topic that could not be carried out."""

    TYPE: ClassVar[str] = "CommandRejected"
    TOPIC: ClassVar[str] = "models"
    command_id: UUID
    command_type: str
    code: ErrorCode
    message: str


# ---------------------------------------------------------------- commands other services send


@register
class CreateModel(Message):
    """Create a model; the envelope's model_id is the id the caller wants it to have."""

    TYPE: ClassVar[str] = "CreateModel"
    TOPIC: ClassVar[str] = "model_commands"
    name: str
    language: str
    description: str | None = None
    auto_train: bool = True


@register
class StartTraining(Message):
    """Press Train on the envelope's model."""

    TYPE: ClassVar[str] = "StartTraining"
    TOPIC: ClassVar[str] = "model_commands"


@register
class CancelTraining(Message):
    """Press Cancel on the envelope's model (at 2 or 3): it goes to 5 with code ``cancelled``."""

    TYPE: ClassVar[str] = "CancelTraining"
    TOPIC: ClassVar[str] = "model_commands"


# ---------------------------------------------------------------- datasets topic


@register
class DatasetUploaded(Message):
    """One stored dataset. ``batch`` lists every dataset id created by the same upload (this one
    included), so a consumer knows to wait for the others before acting on "all datasets"."""

    TYPE: ClassVar[str] = "DatasetUploaded"
    TOPIC: ClassVar[str] = "datasets"
    dataset: DatasetObject
    content_type: str | None = None
    batch: list[UUID] = Field(default_factory=list)


@register
class DatasetDeleted(Message):
    TYPE: ClassVar[str] = "DatasetDeleted"
    TOPIC: ClassVar[str] = "datasets"
    dataset_id: UUID
    dataset_type: DatasetType


@register
class ValidationRequested(Message):
    """models asks again for the verdict on a dataset of a model waiting at 2 (its supervision deadline
    passed). The validator answers idempotently: a finished job re-publishes its verdict, a queued or
    running one is left alone, an unknown or given-up one is queued again."""

    TYPE: ClassVar[str] = "ValidationRequested"
    TOPIC: ClassVar[str] = "models"
    dataset: DatasetObject
    batch: list[UUID] = Field(default_factory=list)
    attempt: int = 1


@register
class TrainingCancelled(Message):
    """A model at 2 or 3 was cancelled (emitted with its move to 5): the validator stops checking its
    ``dataset_ids`` and the trainer ends run ``run_id`` (None: no training was requested yet)."""

    TYPE: ClassVar[str] = "TrainingCancelled"
    TOPIC: ClassVar[str] = "models"
    run_id: UUID | None = None
    dataset_ids: list[UUID] = Field(default_factory=list)
    cancelled_by: str


# ---------------------------------------------------------------- validation topic


@register
class ValidationPassed(Message):
    TYPE: ClassVar[str] = "ValidationPassed"
    TOPIC: ClassVar[str] = "validation"
    dataset_id: UUID
    dataset_type: DatasetType
    file_name: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)


@register
class ValidationFailed(Message):
    TYPE: ClassVar[str] = "ValidationFailed"
    TOPIC: ClassVar[str] = "validation"
    dataset_id: UUID
    dataset_type: DatasetType
    file_name: str
    error: ErrorInfo
    details_truncated: int = 0


# ---------------------------------------------------------------- training


@register
class TrainingRequested(Message):
    TYPE: ClassVar[str] = "TrainingRequested"
    TOPIC: ClassVar[str] = "training_commands"
    run_id: UUID
    language: str
    datasets: list[DatasetObject]
    #: 1 for Train; models re-sends the same run_id with a higher attempt when a run at 3 shows no progress.
    #: The trainer answers idempotently: a queued/running run is left alone, a finished one re-publishes its
    #: terminal event (TrainingSucceeded/TrainingFailed).
    attempt: int = 1


@register
class TrainingStarted(Message):
    TYPE: ClassVar[str] = "TrainingStarted"
    TOPIC: ClassVar[str] = "training_events"
    run_id: UUID


@register
class TrainingProgress(Message):
    TYPE: ClassVar[str] = "TrainingProgress"
    TOPIC: ClassVar[str] = "training_events"
    run_id: UUID
    stage: str
    percent: float
    message: str | None = None
    #: which start of the run this is (a lost worker is retried), and how many starts it may have
    attempt: int | None = None
    max_attempts: int | None = None
    #: estimated seconds left (from the data size and the pace of the stages so far); None while unknown
    eta_seconds: float | None = None


@register
class TrainingSucceeded(Message):
    TYPE: ClassVar[str] = "TrainingSucceeded"
    TOPIC: ClassVar[str] = "training_events"
    run_id: UUID
    metrics: dict[str, Any]
    artifacts: dict[str, str]


@register
class TrainingFailed(Message):
    TYPE: ClassVar[str] = "TrainingFailed"
    TOPIC: ClassVar[str] = "training_events"
    run_id: UUID
    error: ErrorInfo


@register
class TrainingStatusChanged(Message):
    """Exactly one per status transition, on the public status topic."""

    TYPE: ClassVar[str] = "TrainingStatusChanged"
    TOPIC: ClassVar[str] = "status"
    old_status: ModelStatus | None
    new_status: ModelStatus
    status_name: str
    badge: str
    reason: str
    error: ErrorInfo | None = None
    run_id: UUID | None = None


# ---------------------------------------------------------------- credits topic


class CreditsPosted(Message):
    """Fields of every credits event (not itself a message): an entry of the tenant's ledger about the envelope's
    model. ``balance_after`` is the tenant's available credits after the entry."""

    amount: int = Field(gt=0)
    balance_after: int = Field(ge=0)
    run_id: UUID | None = None
    reason: str
    actor: str


@register
class CreditsReserved(CreditsPosted):
    """The model went to 2: its training's price is held from the tenant's balance (in the same transaction)."""

    TYPE: ClassVar[str] = "CreditsReserved"
    TOPIC: ClassVar[str] = "credits"


@register
class CreditsCharged(CreditsPosted):
    """The model reached 4: the reservation is spent (the balance does not change)."""

    TYPE: ClassVar[str] = "CreditsCharged"
    TOPIC: ClassVar[str] = "credits"


@register
class CreditsRefunded(CreditsPosted):
    """The model went to 5 (whatever the cause, cancel included): the reservation is back in the balance."""

    TYPE: ClassVar[str] = "CreditsRefunded"
    TOPIC: ClassVar[str] = "credits"
