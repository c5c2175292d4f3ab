"""What every datasets use case gets: the unit of work (with :class:`DatasetRepository`), storage, limits."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from voxtrain_shared.uow import Context, Transaction, Work

from ..domain import Limits
from ..repository import DatasetRepository
from ..storage import ByteBudget, ObjectStore, StreamingWriter

DatasetWork = Work[DatasetRepository]
DatasetTx = Transaction[DatasetRepository]

#: A model id no event has mentioned yet may be one created a moment ago (its ModelCreated is on its
#: way through Kafka): wait this long for it before answering not_found.
UNKNOWN_MODEL_GRACE = timedelta(seconds=3)
#: A completion that has not finished after this long is presumed dead and may be taken over.
COMPLETION_STALL = timedelta(minutes=10)
DOWNLOAD_TTL = timedelta(minutes=15)


@dataclass(frozen=True)
class Deps:
    uow: DatasetWork
    store: ObjectStore
    limits: Limits
    session_ttl: timedelta
    presign_ttl: timedelta
    writer: Callable[..., StreamingWriter] = StreamingWriter
    unknown_model_grace: timedelta = UNKNOWN_MODEL_GRACE
    #: a streamed upload's place in its tenant's quota lapses this long after its last renewal
    slot_lease: timedelta = timedelta(seconds=60)
    #: upload buffers of this replica, all requests together (None: unbounded, for tests that want it)
    budget: ByteBudget | None = None


def now() -> datetime:
    return datetime.now(UTC)


def housekeeping() -> Context:
    """The context of the service's own clean-up (no tenant's request caused it; nothing is emitted)."""
    return Context("-", uuid.uuid4())
