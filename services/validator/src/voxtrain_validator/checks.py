"""Which rule checks which dataset, reading the object from storage as a ranged, seekable stream."""

from __future__ import annotations

import io
from typing import Any

from minio import Minio

from voxtrain_shared.vocab import DatasetType

from .adapters.s3_reader import S3RangeReader
from .jobs import Job, Validate, extension
from .rules.audio import validate_audio
from .rules.manifest import AmbiguousReference, DatasetRef, validate_manifest
from .rules.outcome import Outcome
from .rules.transcript import validate_transcript

_STATUS = {"pending": "pending", "running": "pending", "passed": "passed", "failed": "failed", "dead": "failed"}


def resolver(job: Job, siblings: dict[str, Any]):
    """Resolve a manifest REF (dataset id, or a file name unique in the model) among the job's siblings."""
    by_name: dict[str, list[dict[str, Any]]] = {}
    for s in siblings.values():
        by_name.setdefault(s["file_name"], []).append(s)

    def resolve(ref: str) -> DatasetRef | None:
        s = siblings.get(ref)
        if s is None:
            same = by_name.get(ref, [])
            if len(same) > 1:
                raise AmbiguousReference(ref, [str(x["dataset_id"]) for x in same])
            s = same[0] if same else None
        if s is None or s["dataset_id"] == job.dataset_id:
            return None
        meta = (s.get("result") or {}).get("metadata") or {}
        return DatasetRef(dataset_id=str(s["dataset_id"]), type=s["type"], file_name=s["file_name"],
                          status=_STATUS[s["status"]], duration_seconds=meta.get("duration_seconds"))

    return resolve


def storage_validator(client: Minio) -> Validate:
    """The :data:`~voxtrain_validator.jobs.Validate` function backed by object storage."""

    def validate(job: Job, siblings: dict[str, Any]) -> Outcome:
        raw = S3RangeReader(client, job.bucket, job.object_key, job.size)
        with io.BufferedReader(raw, buffer_size=1024 * 1024) as stream:
            if job.type is DatasetType.AUDIO:
                return validate_audio(stream, extension(job.file_name))
            if job.type in (DatasetType.TRANSCRIPT, DatasetType.TEST):
                return validate_transcript(stream, extension(job.file_name))
            return validate_manifest(stream, resolver(job, siblings))

    return validate
