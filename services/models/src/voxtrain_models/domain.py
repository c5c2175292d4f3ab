"""The custom model and its training-status state machine (DESIGN.md, "Status state machine").

Pure and synchronous: methods check the rules, change the model, and record what happened in
``model.events`` (:class:`StatusChanged`, :class:`TrainingRequestedEvent`, :class:`ValidationRequestedEvent`);
the service layer turns those into messages. Nothing here does I/O.

Credits (:mod:`.credits`): the move to 2 reserves the training's price from the tenant's :class:`Purse` (or is
refused with ``insufficient_credits``, the model unchanged), the move to 4 charges the reservation, and any move
to 5 refunds it — each recorded as a :class:`~.credits.Posting` in ``model.events``, so it is written in the
same transaction as the transition.

Supervision: a model at 2 or 3 waits for other services (validator, trainer). Every sign of life
(a transition, an upload, a verdict, a start, progress) restarts its deadline (:meth:`CustomModel.settle`);
:meth:`CustomModel.supervise` decides what to do once a deadline passed — ask again, or after
``max_redrives`` requests without an answer, fail with a code a person can act on.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from voxtrain_shared.errors import Rejected as Rejected  # the domain's refusals are the shared kind
from voxtrain_shared.vocab import DatasetType, ErrorCode, ModelStatus

from .credits import (
    SYSTEM_ACTOR,
    Basis,
    EntryKind,
    Measure,
    Posting,
    Purse,
    Reservation,
    estimated,
    insufficient,
    price,
)

S = ModelStatus


class Trigger(StrEnum):
    DATASETS_UPLOADED = "datasets_uploaded"
    TRAIN = "train"
    VALIDATION_PASSED = "validation_passed"
    VALIDATION_FAILED = "validation_failed"
    TRAINING_STARTED = "training_started"
    TRAINING_SUCCEEDED = "training_succeeded"
    TRAINING_FAILED = "training_failed"
    CANCEL = "cancel"


#: Every allowed transition; anything else is refused.
TRANSITIONS: dict[tuple[ModelStatus, Trigger], ModelStatus] = {
    (S.NOT_RUNNING, Trigger.DATASETS_UPLOADED): S.READY_TO_RUN,
    (S.NOT_RUNNING, Trigger.TRAIN): S.READY_TO_RUN,
    (S.FAILED, Trigger.TRAIN): S.READY_TO_RUN,
    (S.READY_TO_RUN, Trigger.VALIDATION_FAILED): S.FAILED,
    (S.READY_TO_RUN, Trigger.TRAINING_STARTED): S.RUNNING,
    (S.READY_TO_RUN, Trigger.TRAINING_FAILED): S.FAILED,
    (S.RUNNING, Trigger.TRAINING_SUCCEEDED): S.SUCCESS,
    (S.RUNNING, Trigger.TRAINING_FAILED): S.FAILED,
    (S.READY_TO_RUN, Trigger.CANCEL): S.FAILED,
    (S.RUNNING, Trigger.CANCEL): S.FAILED,
}


def next_status(current: ModelStatus, trigger: Trigger) -> ModelStatus:
    """The status after ``trigger`` (raises :class:`Rejected` for a forbidden transition)."""
    try:
        return TRANSITIONS[(current, trigger)]
    except KeyError:
        raise Rejected(
            ErrorCode.INVALID_STATUS, f"cannot {trigger.value.replace('_', ' ')} while the model is {current.label}"
        ) from None


class Validation(StrEnum):
    PENDING = "pending"
    PASSED = "passed"
    FAILED = "failed"


@dataclass
class Dataset:
    """What models knows of a dataset: where it is (once uploaded) and its validation state."""

    id: uuid.UUID
    type: DatasetType
    file_name: str
    location: dict[str, Any] | None = None  # DatasetObject fields, once DatasetUploaded arrived
    validation: Validation = Validation.PENDING
    error: dict[str, Any] | None = None
    #: what its passed validation measured (audio seconds, words), for the price
    measure: Measure | None = None

    def counted(self) -> tuple[Measure, bool] | None:
        """What the dataset adds to a training's price, and whether validation measured it (else estimated from
        its size); None while neither is known (its upload has not arrived)."""
        if self.measure is not None:
            return self.measure, True
        if self.location is not None:
            return estimated(self.type, self.file_name, int(self.location.get("size") or 0)), False
        return None


@dataclass(frozen=True)
class StatusChanged:
    old: ModelStatus
    new: ModelStatus
    reason: str
    error: dict[str, Any] | None
    run_id: uuid.UUID | None


@dataclass(frozen=True)
class TrainingRequestedEvent:
    run_id: uuid.UUID
    datasets: tuple[dict[str, Any], ...]
    attempt: int = 1


@dataclass(frozen=True)
class CancelledEvent:
    """A model at 2 or 3 was cancelled: the validator drops ``dataset_ids``' checks, the trainer ends ``run_id``."""

    run_id: uuid.UUID | None
    dataset_ids: tuple[uuid.UUID, ...]
    cancelled_by: str


@dataclass(frozen=True)
class ValidationRequestedEvent:
    """Ask the validator again for the verdict on one dataset (``location``: its DatasetObject fields)."""

    location: dict[str, Any]
    attempt: int


class Phase(StrEnum):
    """What a model at 2 or 3 waits for."""

    VALIDATING = "validating"  # at 2: verdicts (or uploads) still missing
    STARTING = "starting"  # at 2: training requested, the trainer has not started it
    RUNNING = "running"  # at 3: progress from the trainer


@dataclass(frozen=True)
class Supervision:
    """Deadlines of a model at 2 and 3 and how often to ask again before giving up."""

    validation: timedelta
    start: timedelta
    heartbeat: timedelta
    max_redrives: int

    def deadline(self, phase: Phase) -> timedelta:
        return {Phase.VALIDATING: self.validation, Phase.STARTING: self.start, Phase.RUNNING: self.heartbeat}[phase]

    def cutoffs(self, now: datetime) -> dict[Phase, datetime]:
        """A model of a phase is overdue when its deadline window started before this moment."""
        return {phase: now - self.deadline(phase) for phase in Phase}


@dataclass(frozen=True)
class Redrive:
    """What :meth:`CustomModel.supervise` did: asked again (``failed`` False) or gave up."""

    phase: Phase
    attempt: int
    failed: bool


LOCKED_MESSAGE = "cannot modify the custom model until training is finished"
_NOTHING_TO_CANCEL = {
    S.NOT_RUNNING: "no training was started, so there is nothing to cancel.",
    S.SUCCESS: "its training has finished and the model is ready to use; there is nothing to cancel.",
    S.FAILED: "its training has already stopped; press Train to start it again.",
}


@dataclass
class CustomModel:
    id: uuid.UUID
    tenant_id: str
    name: str
    language: str
    description: str | None = None
    auto_train: bool = True
    status: ModelStatus = S.NOT_RUNNING
    run_id: uuid.UUID | None = None
    training_requested: bool = False
    last_error: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    progress: dict[str, Any] | None = None
    finished_at: datetime | None = None
    datasets: dict[uuid.UUID, Dataset] = field(default_factory=dict)
    #: Tombstones: datasets deleted from this model; late facts about them change nothing.
    deleted_datasets: set[uuid.UUID] = field(default_factory=set)
    #: Since when the model has its status (None: not yet saved).
    status_since: datetime | None = None
    #: Start of the current deadline window at 2/3 (None: not yet saved).
    watched_since: datetime | None = None
    #: Requests sent again in this window without a sign of life.
    redrives: int = 0
    #: Attempt number of the latest TrainingRequested for ``run_id``.
    request_attempt: int = 1
    #: credits held for the current training (from the move to 2 until 4 or 5)
    reservation: Reservation | None = None
    events: list[StatusChanged | TrainingRequestedEvent | ValidationRequestedEvent | Posting | CancelledEvent] = field(
        default_factory=list
    )
    _active: bool = field(default=False, repr=False, compare=False)
    _moved: bool = field(default=False, repr=False, compare=False)

    # ---------------------------------------------------------------- requests from people

    def update(
        self, *, name: str | None = None, description: str | None = None, auto_train: bool | None = None
    ) -> list[str]:
        """Change editable fields; refused while queued or running. Returns the changed field names."""
        self._refuse_if_locked()
        changed = []
        for attr, value in (("name", name), ("description", description), ("auto_train", auto_train)):
            if value is not None and getattr(self, attr) != value:
                setattr(self, attr, value)
                changed.append(attr)
        return changed

    def ensure_deletable(self) -> None:
        """Deleting is refused while queued or running."""
        self._refuse_if_locked()

    def basis(self) -> Basis:
        """What a training of the model's datasets would be priced on."""
        return Basis.of([c for d in self.datasets.values() if (c := d.counted()) is not None])

    def train(self, purse: Purse | None = None) -> None:
        """The Train button: only in 1 and 5, only with at least one dataset, and (given a ``purse``) only when
        the tenant can pay for it: the price is reserved (raises ``insufficient_credits`` otherwise, the model
        unchanged). Without a purse no credits are involved."""
        if not self.status.can_train:
            raise Rejected(
                ErrorCode.INVALID_STATUS,
                f"Training can only be started when the model is Not Running or Failed; it is {self.status.label}.",
            )
        if not self.datasets:
            raise Rejected(
                ErrorCode.NO_DATASETS,
                "The model has no datasets yet: upload at least one dataset, then start training. An upload "
                "answered a moment ago is registered within seconds: if you just uploaded, try again shortly.",
            )
        amount = self._affordable(purse)
        retried = self.status is S.FAILED
        self._move(Trigger.TRAIN, "training started by request", run_id=None)
        self.last_error = None
        self._reserve(purse, amount, "training started by request")
        if retried:  # checks of the failed attempt may have been dropped (cancel) or given up: ask for them now
            for d in self._unvalidated():
                if d.location:
                    self.events.append(ValidationRequestedEvent(d.location, 1))
        self._evaluate_gate()

    def cancel(self, by: str, now: datetime) -> None:
        """The Cancel button (2 and 3): the model fails with code ``cancelled``; its validation and training stop
        (:class:`CancelledEvent`), and late facts of the cancelled attempt change nothing (see ``_stale``)."""
        if not self.status.locked:
            raise Rejected(
                ErrorCode.INVALID_STATUS,
                f"Only a model that is Ready to Run or Running can be cancelled; it is {self.status.label}: "
                f"{_NOTHING_TO_CANCEL[self.status]}",
            )
        run_id = self.run_id if self.training_requested or self.status is S.RUNNING else None
        pending = tuple(d.id for d in self._unvalidated())
        was = self.status.label
        error = {
            "code": ErrorCode.CANCELLED.value,
            "message": f"Training was cancelled by {by} while the model was {was}. Press Train to start it "
            "again; datasets can be added or removed first.",
            "cancelled_by": by,
        }
        self._move(Trigger.CANCEL, f"cancelled by {by}", run_id=run_id, error=error)
        self.finished_at = now
        self.events.append(CancelledEvent(run_id, pending, by))

    # ---------------------------------------------------------------- facts from other services

    def dataset_uploaded(self, ds: Dataset, batch: tuple[uuid.UUID, ...] = (), purse: Purse | None = None) -> None:
        """A dataset arrived; with auto_train a model at 1 is queued (at 5 it stays until Train).

        ``batch`` names the datasets uploaded together with it: those not seen yet are recorded as
        expected (no location), so training waits for them instead of starting with part of an upload;
        auto-train queues the model once every file of the upload arrived (its price needs their sizes).
        Given a ``purse`` the price is reserved; when the tenant cannot pay, the model stays at 1 and
        ``last_error`` says why (code ``insufficient_credits``) and what to do.
        """
        if ds.id in self.deleted_datasets:
            return
        known = self.datasets.get(ds.id)
        if known is not None:  # validation may have been seen first (another topic)
            known.location, known.type, known.file_name = ds.location, ds.type, ds.file_name
        else:
            self.datasets[ds.id] = ds
        for sibling in batch:
            if sibling not in self.datasets and sibling not in self.deleted_datasets:  # its own event follows
                self.datasets[sibling] = Dataset(sibling, ds.type, "(upload in progress)")
        self._active = True
        if self.status is S.NOT_RUNNING and self.auto_train and all(d.location for d in self.datasets.values()):
            self._auto_train(purse)
        self._evaluate_gate()

    def _auto_train(self, purse: Purse | None) -> None:
        try:
            amount = self._affordable(purse)
        except Rejected as exc:
            self.last_error = {
                "code": exc.code.value,
                "message": "Training did not start automatically: " + exc.message,
                "details": exc.details,
            }
            return
        self._move(Trigger.DATASETS_UPLOADED, "datasets uploaded; training queued", run_id=None)
        self.last_error = None
        self._reserve(purse, amount, "datasets uploaded; training queued (auto-train)")

    def dataset_deleted(self, dataset_id: uuid.UUID) -> None:
        """Forget a dataset for good: a tombstone keeps late verdicts or uploads from bringing it back."""
        self.datasets.pop(dataset_id, None)
        self.deleted_datasets.add(dataset_id)
        self._evaluate_gate()

    def dataset_validated(
        self,
        dataset_id: uuid.UUID,
        dataset_type: DatasetType,
        file_name: str,
        passed: bool,
        error: dict[str, Any] | None = None,
        measure: Measure | None = None,
    ) -> None:
        """Record a validation result; a queued model trains once all passed, fails if any failed.
        ``measure``: what a passed validation measured (for the price of the next training).

        A verdict on a deleted dataset changes nothing."""
        if dataset_id in self.deleted_datasets:
            return
        self._active = True
        ds = self.datasets.setdefault(dataset_id, Dataset(dataset_id, dataset_type, file_name))
        ds.validation = Validation.PASSED if passed else Validation.FAILED
        ds.error = None if passed else error
        ds.measure = measure if passed else None
        self._evaluate_gate()

    def training_started(self, run_id: uuid.UUID) -> None:
        if self._stale(run_id) or self.status is not S.READY_TO_RUN:
            return
        self._move(Trigger.TRAINING_STARTED, "training started", run_id=run_id)
        self.progress = {"stage": "starting", "percent": 0.0}

    def training_progress(
        self, run_id: uuid.UUID, stage: str, percent: float, message: str | None, **more: float | int | None
    ) -> None:
        """Progress at 3; ``more``: ``eta_seconds``, ``attempt``, ``max_attempts`` (each may be None)."""
        if self._stale(run_id) or self.status is not S.RUNNING:
            return
        self.progress = {"stage": stage, "percent": percent, "message": message, **more}
        self._active = True

    def training_succeeded(self, run_id: uuid.UUID, metrics: dict[str, Any], finished_at: datetime) -> None:
        if self._stale(run_id) or self.status is not S.RUNNING:
            return
        self._move(Trigger.TRAINING_SUCCEEDED, "training completed", run_id=run_id)
        self.metrics, self.finished_at = metrics, finished_at
        self.progress = {"stage": "done", "percent": 100.0}

    def training_failed(self, run_id: uuid.UUID, error: dict[str, Any], finished_at: datetime) -> None:
        if self._stale(run_id) or self.status not in (S.READY_TO_RUN, S.RUNNING):
            return
        self._move(Trigger.TRAINING_FAILED, f"training failed: {error.get('message', '')}", run_id=run_id, error=error)
        self.finished_at = finished_at

    # ---------------------------------------------------------------- supervision

    @property
    def phase(self) -> Phase | None:
        """What the model waits for (None: it waits for nobody)."""
        if self.status is S.RUNNING:
            return Phase.RUNNING
        if self.status is S.READY_TO_RUN:
            return Phase.STARTING if self.training_requested else Phase.VALIDATING
        return None

    def due_at(self, policy: Supervision) -> datetime | None:
        """When the current deadline passes (None: not supervised, or the window has not started)."""
        phase = self.phase
        if phase is None or self.watched_since is None:
            return None
        return self.watched_since + policy.deadline(phase)

    def settle(self, now: datetime) -> list[tuple[ModelStatus, float]]:
        """After a change: a sign of life starts a new deadline window with no redrives counted; a new status
        starts its clock. Returns (status, seconds) for each of 2/3 the model left (for the time-in-status metric)."""
        left = []
        if self._moved:
            if self.status_since is not None:
                seconds = max(0.0, (now - self.status_since).total_seconds())
                left = [(e.old, seconds) for e in self.events if isinstance(e, StatusChanged) and e.old.locked][:1]
            self.status_since, self._moved = now, False
        if self._active:
            self.watched_since, self.redrives, self._active = now, 0, False
        return left

    def supervise(self, now: datetime, policy: Supervision, *, force: bool = False) -> Redrive | None:
        """Act on a passed deadline: ask again (validation or training), or give up after
        ``policy.max_redrives`` requests. ``force`` (an operator's re-drive) asks again now and never gives up.

        Returns None when there is nothing to do (not at 2/3, or not due yet)."""
        phase = self.phase
        if phase is None:
            if force:
                raise Rejected(
                    ErrorCode.INVALID_STATUS,
                    f"Only a model that is Ready to Run or Running can be re-driven; it is {self.status.label}.",
                )
            return None
        due = self.due_at(policy)
        if not force and due is not None and now < due:
            return None
        if not force and self.redrives >= policy.max_redrives:
            self._give_up(phase, now, policy)
            return Redrive(phase, self.redrives, failed=True)
        self.redrives += 1
        self.watched_since = now
        if phase is Phase.VALIDATING:
            for d in self._unvalidated():
                if d.location:
                    self.events.append(ValidationRequestedEvent(d.location, self.redrives))
        else:
            assert self.run_id is not None  # training_requested and RUNNING always carry the run
            self.request_attempt += 1
            self.events.append(TrainingRequestedEvent(self.run_id, self._locations(), self.request_attempt))
        return Redrive(phase, self.redrives, failed=False)

    def _unvalidated(self) -> list[Dataset]:
        return [d for d in self.datasets.values() if d.validation is Validation.PENDING]

    def _give_up(self, phase: Phase, now: datetime, policy: Supervision) -> None:
        err: dict[str, Any]
        waited = _minutes(policy.deadline(phase) * (self.redrives + 1))
        if phase is Phase.VALIDATING:
            pending = self._unvalidated()
            missing = [d.file_name for d in pending if not d.location]
            waiting = [d.file_name for d in pending if d.location]
            parts = []
            if waiting:
                parts.append(
                    f"no validation verdict arrived for {', '.join(waiting)} after {self.redrives} "
                    f"request(s) over {waited}"
                )
            if missing:
                parts.append(f"the upload of {', '.join(missing)} never completed")
            if not pending:
                parts.append("the model has no dataset left to validate")
            message = (
                "; ".join(parts).capitalize() + ". Upload missing datasets again if needed, then press "
                "Train; if it repeats, ask an operator to check the validator (`voxtrain models --overdue`)."
            )
            err = {
                "code": ErrorCode.VALIDATION_TIMEOUT.value,
                "message": message,
                "stage": "validation",
                "details": [{"dataset_id": str(d.id), "file_name": d.file_name} for d in pending],
            }
            self._move(Trigger.VALIDATION_FAILED, "validation timed out", run_id=None, error=err)
        else:
            what = "did not start the training" if phase is Phase.STARTING else "gave no sign of progress"
            progress = self.progress or {}
            err = {
                "code": ErrorCode.WORKER_LOST.value,
                "stage": progress.get("stage"),
                "message": f"The trainer {what} for {waited} although it was asked {self.redrives + 1} "
                "time(s). Train again; if it repeats, ask an operator to check the trainer.",
            }
            self._move(Trigger.TRAINING_FAILED, "training worker lost", run_id=self.run_id, error=err)
        self.finished_at = now

    def _locations(self) -> tuple[dict[str, Any], ...]:
        return tuple(d.location for d in self.datasets.values() if d.location)

    # ---------------------------------------------------------------- internals

    def _evaluate_gate(self) -> None:
        """While queued: fail on any failed dataset; request training once every dataset passed."""
        if self.status is not S.READY_TO_RUN or self.training_requested:
            return
        failed = [d for d in self.datasets.values() if d.validation is Validation.FAILED]
        if failed:
            first = failed[0]
            err = dict(first.error or {"code": ErrorCode.VALIDATION_FAILED.value, "message": "validation failed"})
            err.setdefault("dataset_id", str(first.id))
            err.setdefault("file_name", first.file_name)
            err["details"] = [{"dataset_id": str(d.id), "file_name": d.file_name, **(d.error or {})} for d in failed]
            names = ", ".join(d.file_name for d in failed)
            err["message"] = (
                f"{err.get('message', 'validation failed')} — dataset {names} failed validation: "
                "delete or replace it, then train again."
            )
            self._move(Trigger.VALIDATION_FAILED, "a dataset failed validation", run_id=None, error=err)
            return
        if not self.datasets:
            return
        ready = all(d.validation is Validation.PASSED and d.location for d in self.datasets.values())
        if ready:
            self.run_id = uuid.uuid4()
            self.training_requested = True
            self.request_attempt = 1
            self._active = True  # a new phase (starting): a new deadline window
            self.events.append(TrainingRequestedEvent(self.run_id, self._locations()))

    def _move(
        self, trigger: Trigger, reason: str, *, run_id: uuid.UUID | None, error: dict[str, Any] | None = None
    ) -> None:
        old = self.status
        self.status = next_status(old, trigger)
        if self.status is S.READY_TO_RUN:
            self.training_requested, self.run_id, self.metrics, self.finished_at = False, None, None, None
            self.progress = None
        if error is not None:
            self.last_error = error
        self._active = self._moved = True
        self.events.append(StatusChanged(old, self.status, reason, error, run_id or self.run_id))
        if self.status in (S.SUCCESS, S.FAILED):
            self._settle(error)

    # ---------------------------------------------------------------- credits

    def _affordable(self, purse: Purse | None) -> int:
        """The price of training now, if the purse pays for it (0 without a purse); raises ``insufficient_credits``."""
        if purse is None:
            return 0
        amount = price(self.basis(), purse.rates)
        if amount > purse.available:
            raise insufficient(amount, purse.available)
        return amount

    def _reserve(self, purse: Purse | None, amount: int, reason: str) -> None:
        if purse is None or amount <= 0:
            return
        self.reservation = Reservation(uuid.uuid4(), amount)
        self.events.append(Posting(EntryKind.RESERVE, amount, self.reservation.id, None, reason, purse.actor))

    def _settle(self, error: dict[str, Any] | None) -> None:
        """On 4 the reservation is charged; on 5, whatever the cause, it is refunded in full."""
        held, self.reservation = self.reservation, None
        if held is None:
            return
        if self.status is S.SUCCESS:
            self.events.append(
                Posting(EntryKind.CHARGE, held.amount, held.id, self.run_id, "training succeeded", SYSTEM_ACTOR)
            )
            return
        err = error or {}
        code = err.get("code") or ErrorCode.VALIDATION_FAILED.value
        actor = str(err.get("cancelled_by") or SYSTEM_ACTOR)
        self.events.append(
            Posting(EntryKind.REFUND, held.amount, held.id, self.run_id, f"training did not succeed ({code})", actor)
        )

    def _stale(self, run_id: uuid.UUID) -> bool:
        return self.run_id is None or run_id != self.run_id

    def _refuse_if_locked(self) -> None:
        if self.status.locked:
            raise Rejected(ErrorCode.MODEL_LOCKED, f"The model is {self.status.label}: {LOCKED_MESSAGE}.")


def _minutes(span: timedelta) -> str:
    seconds = span.total_seconds()
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"
