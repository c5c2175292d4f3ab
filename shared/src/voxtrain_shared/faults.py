"""Which errors are passing infrastructure trouble and which say that the work itself is wrong — decided here
and nowhere else (consumers, the outbox relay, the HTTP edge and loops all ask :func:`classify`).

* ``TRANSIENT``: a dependency (PostgreSQL, Kafka, MinIO) is unreachable, restarting, overloaded or slow —
  connection refused/reset, timeouts, serialization failures, deadlocks, "the database system is starting
  up". Retry with capped exponential backoff for as long as it lasts; never dead-letter, never fail a model.
* ``PERMANENT``: the message or request itself is wrong (:class:`PermanentError`, a malformed message,
  pydantic validation errors, data/integrity errors from the database, an event too large for Kafka).
  Retrying cannot help: dead-letter / refuse at once.
* ``UNKNOWN``: anything else (usually a bug). Retried a bounded number of times, then treated as permanent,
  so a bug neither blocks a partition forever nor loses a message silently (it lands in a dead-letter topic).

The module is pure (no I/O, no state): it looks only at the exception, its class, its chain of causes and
the modules its traceback passed through (to tell *which* dependency failed when the error is a plain
``OSError`` such as ``ConnectionRefusedError``).
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass
from types import TracebackType

import asyncpg
from aiokafka import errors as kafka_errors
from minio import error as minio_errors
from pydantic import ValidationError
from urllib3 import exceptions as http_errors


class PermanentError(Exception):
    """A message or request that can never succeed: skip the retries, dead-letter (or refuse) it at once."""


class Kind(enum.Enum):
    TRANSIENT = "transient"
    PERMANENT = "permanent"
    UNKNOWN = "unknown"


POSTGRES, KAFKA, MINIO = "postgres", "kafka", "minio"
#: Human names for messages.
DEPENDENCY_NAMES = {POSTGRES: "PostgreSQL", KAFKA: "Kafka", MINIO: "object storage (MinIO)"}


@dataclass(frozen=True)
class Fault:
    """What an error means: its kind and, for a transient one, the dependency that is away ("" if unknown)."""

    kind: Kind
    dependency: str = ""
    reason: str = ""

    @property
    def transient(self) -> bool:
        return self.kind is Kind.TRANSIENT

    @property
    def permanent(self) -> bool:
        return self.kind is Kind.PERMANENT


# SQLSTATE classes/codes of PostgreSQL errors that pass: connection trouble (08), serialization failure and
# deadlock (40001, 40P01), out of resources (53), operator intervention / shutdown / statement timeout (57),
# lock not available (55P03), system I/O errors (58).
_PG_TRANSIENT_CLASSES = ("08", "53", "57", "58")
_PG_TRANSIENT_CODES = {"40001", "40P01", "55P03"}
# Data exceptions (22) and integrity violations (23) come from what was asked, not from the server's state.
_PG_PERMANENT_CLASSES = ("22", "23")
_MINIO_TRANSIENT_CODES = {
    "SlowDown",
    "ServiceUnavailable",
    "InternalError",
    "RequestTimeout",
    "XMinioServerNotInitialized",
    "OperationTimedOut",
    "XMinioReadQuorum",
    "XMinioWriteQuorum",
}
_KAFKA_PERMANENT = (
    kafka_errors.MessageSizeTooLargeError,
    kafka_errors.RecordTooLargeError,
    kafka_errors.InvalidTopicError,
    kafka_errors.TopicAuthorizationFailedError,
)
_MODULES = {
    "asyncpg": POSTGRES,
    "aiokafka": KAFKA,
    "kafka": KAFKA,
    "faststream": KAFKA,
    "minio": MINIO,
    "urllib3": MINIO,
}


def classify(exc: BaseException) -> Fault:
    """What ``exc`` means for retrying (see the module docstring). Follows ``__cause__``/``__context__``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        fault = _classify_one(current)
        if fault is not None:
            if fault.transient and not fault.dependency:
                fault = Fault(fault.kind, _dependency_of(exc) or _dependency_of(current), fault.reason)
            return fault
        current = current.__cause__ or current.__context__
    return Fault(Kind.UNKNOWN, "", _describe(exc))


def _classify_one(exc: BaseException) -> Fault | None:
    reason = _describe(exc)
    if isinstance(exc, PermanentError | ValidationError):
        return Fault(Kind.PERMANENT, "", reason)
    if isinstance(exc, asyncpg.PostgresError):
        state = str(getattr(exc, "sqlstate", "") or "")
        if state in _PG_TRANSIENT_CODES or state.startswith(_PG_TRANSIENT_CLASSES):
            return Fault(Kind.TRANSIENT, POSTGRES, reason)
        if state.startswith(_PG_PERMANENT_CLASSES):
            return Fault(Kind.PERMANENT, "", reason)
        return None
    if isinstance(exc, asyncpg.InterfaceError):
        # "connection is closed" / "connection was closed in the middle of operation"; other interface errors
        # are misuse (a bug), left to the cause chain / UNKNOWN.
        return Fault(Kind.TRANSIENT, POSTGRES, reason) if "closed" in str(exc) else None
    if isinstance(exc, kafka_errors.KafkaError):
        if isinstance(exc, _KAFKA_PERMANENT):
            return Fault(Kind.PERMANENT, "", reason)
        if getattr(exc, "retriable", False) or isinstance(exc, kafka_errors.KafkaTimeoutError):
            return Fault(Kind.TRANSIENT, KAFKA, reason)
        return None
    if isinstance(exc, minio_errors.S3Error):
        return Fault(Kind.TRANSIENT, MINIO, reason) if exc.code in _MINIO_TRANSIENT_CODES else None
    if isinstance(exc, minio_errors.ServerError):  # a 5xx from the store
        return Fault(Kind.TRANSIENT, MINIO, reason)
    if isinstance(exc, http_errors.HTTPError):  # urllib3: MaxRetryError, NewConnectionError, ProtocolError, timeouts
        return Fault(Kind.TRANSIENT, MINIO, reason)
    if isinstance(exc, OSError | asyncio.TimeoutError | TimeoutError | ConnectionError | EOFError):
        return Fault(Kind.TRANSIENT, "", reason)
    return None


def _dependency_of(exc: BaseException) -> str:
    """The dependency whose client code the traceback passed through last ("" when none did)."""
    found = ""
    tb: TracebackType | None = exc.__traceback__
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        dep = _MODULES.get(module.split(".", 1)[0])
        if dep:
            found = dep
        tb = tb.tb_next
    if not found:
        found = _MODULES.get(type(exc).__module__.split(".", 1)[0], "")
    return found


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}"[:500] if text else type(exc).__name__


def backoff(attempt: int, *, base: float = 0.2, cap: float = 30.0) -> float:
    """Delay before retry number ``attempt`` (1, 2, …): ``base`` doubling per attempt, never above ``cap``."""
    return float(min(cap, base * (2 ** max(0, min(attempt - 1, 30)))))


def dependency_message(dependency: str) -> str:
    """A sentence a person can act on while ``dependency`` is away."""
    name = DEPENDENCY_NAMES.get(dependency, "a service this one depends on")
    return f"{name} cannot be reached right now; the request was not carried out. Please try again in a few seconds."
