"""Facts from other services, applied to this service's projections (once: the consumers claim the inbox).

Tombstones: a deleted model stays deleted in the ``models`` projection (no late ModelCreated or status
change revives it), and a deleted dataset's record is gone for good, so a late verdict or a late
``DatasetUploaded`` of ours updates nothing and recreates nothing.
"""

from __future__ import annotations

import uuid
from typing import Any

from voxtrain_shared import events as ev
from voxtrain_shared.logs import get_logger

from .. import domain as d
from .deps import DatasetTx

log = get_logger(__name__)


async def model_created(tx: DatasetTx, model_id: uuid.UUID, env: ev.Envelope, msg: ev.ModelCreated) -> None:
    await tx.repo.model_seen(env.tenant_id, model_id, msg.status, env.occurred_at)


async def status_changed(tx: DatasetTx, model_id: uuid.UUID, env: ev.Envelope, msg: ev.TrainingStatusChanged) -> None:
    await tx.repo.model_status_changed(env.tenant_id, model_id, msg.new_status, env.occurred_at)


async def model_deleted(tx: DatasetTx, model_id: uuid.UUID, env: ev.Envelope) -> None:
    """The model is gone: so are its datasets and unfinished uploads (objects removed by the sweeper)."""
    keys = await tx.repo.model_deleted(env.tenant_id, model_id, env.occurred_at)
    if keys:
        await tx.repo.abandon_objects(keys)
    log.info("model_forgotten", model_id=str(model_id), objects=len(keys))


async def dataset_published(tx: DatasetTx, env: ev.Envelope, msg: ev.DatasetUploaded) -> None:
    """Our own DatasetUploaded reached Kafka: the dataset is now with the validator."""
    await tx.repo.mark_validating(env.tenant_id, msg.dataset.dataset_id)


def verdict(env: ev.Envelope, msg: ev.ValidationPassed | ev.ValidationFailed) -> tuple[d.DatasetStatus, dict[str, Any]]:
    """The dataset status and the details the listing shows for the validator's verdict."""
    details: dict[str, Any]
    if isinstance(msg, ev.ValidationPassed):
        status = d.DatasetStatus.VALID
        details = {"result": "passed", "metadata": msg.metadata, "warnings": msg.warnings}
    else:
        status = d.DatasetStatus.INVALID
        details = {
            "result": "failed",
            "error": msg.error.model_dump(mode="json"),
            "details_truncated": msg.details_truncated,
        }
    details["validated_at"] = env.occurred_at.isoformat()
    return status, details


async def validated(tx: DatasetTx, env: ev.Envelope, msg: ev.ValidationPassed | ev.ValidationFailed) -> None:
    """Show the validator's verdict (and its details) in the listing; a deleted dataset stays deleted."""
    status, details = verdict(env, msg)
    if await tx.repo.record_validation(env.tenant_id, msg.dataset_id, status, details, env.occurred_at):
        log.info("dataset_validated", dataset_id=str(msg.dataset_id), status=status.value)
    else:
        log.info("verdict_ignored", dataset_id=str(msg.dataset_id), reason="dataset deleted or newer verdict kept")
