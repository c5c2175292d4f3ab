"""Credits: what a training costs, and the rules of a tenant's ledger (DESIGN.md, "Training uses credits").

Pure and synchronous (standard library and the shared vocabulary only).

**Price.** A training costs ``rates.per_audio_minute`` per minute of audio plus ``rates.per_thousand_words``
per 1,000 words of text (transcripts, test transcripts and the inline text of manifests), rounded up to a
whole credit and at least ``rates.minimum``. Each dataset counts with what its validation measured (audio:
``duration_seconds``; transcripts: ``words``; manifests: ``inline_text_words``); a dataset not validated yet
is estimated from its size (:data:`AUDIO_BYTES_PER_SECOND`, :data:`TEXT_BYTES_PER_WORD`). The price is fixed
when the credits are reserved: the charge is the reserved amount, whatever the data turns out to be.

**Ledger.** Append-only entries per tenant, each of one :class:`EntryKind`. An :class:`Account` sums them:

- ``available`` (the *balance*) = grants − expirations − reservations + refunds: what can be reserved now;
- ``held`` = reservations − charges − refunds: credits reserved by trainings at 2 or 3;
- ``spent`` = charges.

So grants − expirations = available + held + spent, always. A reservation moves credits from available to
held; a charge moves them from held to spent (the balance does not change); a refund moves them back from
held to available. Nothing ever goes below zero.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from pathlib import PurePosixPath

from voxtrain_shared.errors import Rejected
from voxtrain_shared.vocab import DatasetType, ErrorCode

#: Size-based estimate of an audio file's duration, by extension: WAV as 16 kHz mono 16-bit PCM (what speech
#: corpora usually are; a 44.1 kHz stereo WAV is estimated 5.5 times too long), compressed formats at 128 kbit/s.
AUDIO_BYTES_PER_SECOND = {".wav": 32_000, ".flac": 16_000, ".mp3": 16_000, ".m4a": 16_000}
DEFAULT_AUDIO_BYTES_PER_SECOND = 16_000
#: Size-based estimate of a text's words: about six bytes per English word with its space and punctuation
#: (subtitle timings and manifest keys make the estimate high rather than low).
TEXT_BYTES_PER_WORD = 6
#: Who posts the entries nobody asked for (charges, refunds, the free allowance).
SYSTEM_ACTOR = "voxtrain"


class EntryKind(StrEnum):
    GRANT = "grant"
    RESERVE = "reserve"
    CHARGE = "charge"
    REFUND = "refund"
    EXPIRE = "expire"


@dataclass(frozen=True)
class Rates:
    """The price list (settings ``VOXTRAIN_CREDITS__...``)."""

    per_audio_minute: float
    per_thousand_words: float
    minimum: int


@dataclass(frozen=True)
class Policy:
    """Rates, and what a tenant gets the first time voxtrain sees it."""

    rates: Rates
    free_allowance: int


@dataclass(frozen=True)
class Measure:
    """What a dataset brings to a training: seconds of audio and words of text."""

    audio_seconds: float = 0.0
    words: int = 0


def measured(dataset_type: DatasetType, metadata: dict[str, object]) -> Measure | None:
    """What a passed validation measured (None: its metadata has no figure the price uses)."""

    def number(key: str) -> float | None:
        value = metadata.get(key)
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0 else None

    if dataset_type is DatasetType.AUDIO:
        seconds = number("duration_seconds")
        return None if seconds is None else Measure(audio_seconds=seconds)
    words = number("inline_text_words" if dataset_type is DatasetType.MANIFEST else "words")
    return None if words is None else Measure(words=int(words))


def estimated(dataset_type: DatasetType, file_name: str, size: int) -> Measure:
    """A dataset's measure guessed from its size in bytes (see the module's assumptions)."""
    if dataset_type is DatasetType.AUDIO:
        rate = AUDIO_BYTES_PER_SECOND.get(PurePosixPath(file_name).suffix.lower(), DEFAULT_AUDIO_BYTES_PER_SECOND)
        return Measure(audio_seconds=size / rate)
    return Measure(words=math.ceil(size / TEXT_BYTES_PER_WORD))


@dataclass(frozen=True)
class Basis:
    """What a price is computed from; ``measured`` is False when some dataset was estimated from its size."""

    audio_minutes: float
    text_words: int
    measured: bool = True

    @classmethod
    def of(cls, measures: list[tuple[Measure, bool]]) -> Basis:
        """Sum of (measure, measured by validation) pairs."""
        return cls(
            audio_minutes=round(sum(m.audio_seconds for m, _ in measures) / 60, 3),
            text_words=sum(m.words for m, _ in measures),
            measured=all(exact for _, exact in measures),
        )


def price(basis: Basis, rates: Rates) -> int:
    """Credits a training on ``basis`` costs: rounded up, at least the minimum."""
    raw = basis.audio_minutes * rates.per_audio_minute + basis.text_words * rates.per_thousand_words / 1000
    return max(rates.minimum, math.ceil(round(raw, 6)))


@dataclass(frozen=True)
class Quote:
    """What the user sees before pressing Train: the price of the model's data now, the tenant's balance, and
    what its current training holds (None: nothing reserved)."""

    estimate: int
    balance: int
    basis: Basis
    reserved: int | None


@dataclass(frozen=True)
class Purse:
    """What a tenant can spend now, the price list, and who spends (the service layer loads it, under the
    account's lock, before a change that may reserve credits)."""

    available: int
    rates: Rates
    actor: str


@dataclass(frozen=True)
class Reservation:
    """Credits held for one training of a model; ``id`` makes its reserve and its settlement unique."""

    id: uuid.UUID
    amount: int


def insufficient(estimate: int, available: int) -> Rejected:
    return Rejected(
        ErrorCode.INSUFFICIENT_CREDITS,
        f"Training this model uses {estimate} credits, but the balance is {available} credits. Ask your "
        "administrator for more credits (or remove datasets to lower the cost), then press Train again.",
        {"estimate": estimate, "balance": available},
    )


@dataclass(frozen=True)
class Posting:
    """A ledger entry a model's change asks for (reserve on 2, charge on 4, refund on 5); ``key`` makes it happen
    at most once: a reservation's reserve, and one settlement (charge or refund) per reservation."""

    kind: EntryKind
    amount: int
    reservation: uuid.UUID
    run_id: uuid.UUID | None
    reason: str
    actor: str

    @property
    def key(self) -> str:
        return f"{'reserve' if self.kind is EntryKind.RESERVE else 'settle'}:{self.reservation}"


@dataclass(frozen=True)
class Entry:
    """One line of a tenant's ledger (``id`` and ``created_at`` are given when it is stored)."""

    tenant_id: str
    kind: EntryKind
    amount: int
    balance_after: int
    actor: str
    reason: str
    model_id: uuid.UUID | None = None
    run_id: uuid.UUID | None = None
    key: str | None = None
    id: int | None = None
    created_at: datetime | None = None


@dataclass(frozen=True)
class Account:
    """A tenant's sums (see the module docstring); :meth:`post` is the only way they change."""

    tenant_id: str
    available: int = 0
    held: int = 0
    spent: int = 0

    def post(self, kind: EntryKind, amount: int) -> Account:
        """The account after an entry; :class:`Rejected` if the entry would take more than there is."""
        if amount <= 0:
            raise Rejected(ErrorCode.VALIDATION_FAILED, f"An amount of credits must be positive; got {amount}.")
        a = self
        match kind:
            case EntryKind.GRANT:
                return replace(a, available=a.available + amount)
            case EntryKind.EXPIRE:
                if amount > a.available:
                    raise Rejected(
                        ErrorCode.INSUFFICIENT_CREDITS,
                        f"Cannot expire {amount} credits: the balance of {a.tenant_id} is {a.available}.",
                        {"estimate": amount, "balance": a.available},
                    )
                return replace(a, available=a.available - amount)
            case EntryKind.RESERVE:
                if amount > a.available:
                    raise insufficient(amount, a.available)
                return replace(a, available=a.available - amount, held=a.held + amount)
            case EntryKind.CHARGE | EntryKind.REFUND:
                if amount > a.held:
                    raise Rejected(
                        ErrorCode.CONFLICT,
                        f"Cannot {kind.value} {amount} credits: {a.tenant_id} holds only {a.held} in reservations.",
                    )
                if kind is EntryKind.CHARGE:
                    return replace(a, held=a.held - amount, spent=a.spent + amount)
                return replace(a, held=a.held - amount, available=a.available + amount)
        raise AssertionError(kind)  # pragma: no cover - every kind is matched above


def opened(tenant_id: str, free_allowance: int) -> tuple[Account, Entry | None]:
    """A tenant's account the first time voxtrain sees it, with the free allowance granted (once: its key)."""
    account = Account(tenant_id)
    if free_allowance <= 0:
        return account, None
    account = account.post(EntryKind.GRANT, free_allowance)
    grant = Entry(
        tenant_id,
        EntryKind.GRANT,
        free_allowance,
        account.available,
        SYSTEM_ACTOR,
        "free allowance for a new tenant",
        key=f"allowance:{tenant_id}",
    )
    return account, grant
