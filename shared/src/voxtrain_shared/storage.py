"""Object storage: a MinIO client factory and bucket bootstrap. Only S3 API calls are used."""

from __future__ import annotations

from minio import Minio

from .settings import MinioSettings


def make_client(settings: MinioSettings, *, public: bool = False) -> Minio:
    """A client for the store; ``public`` signs URLs for the endpoint clients can reach."""
    endpoint = settings.public_endpoint if public and settings.public_endpoint else settings.endpoint
    return Minio(
        endpoint,
        access_key=settings.access_key.get_secret_value(),
        secret_key=settings.secret_key.get_secret_value(),
        secure=settings.secure,
        region=settings.region,
    )


class BucketMissing(RuntimeError):
    """The bucket does not exist and this credential may not create it (a service's own credential)."""


def ensure_bucket(client: Minio, bucket: str) -> None:
    """Create ``bucket`` if it does not exist (safe to race with another replica).

    With a service's own, least-privileged credential the bucket must exist already (``voxtrain storage
    provision`` creates it): a refused creation raises :class:`BucketMissing`, saying so."""
    from minio.error import S3Error

    if client.bucket_exists(bucket):
        return
    try:
        client.make_bucket(bucket)
    except S3Error as exc:
        if exc.code == "AccessDenied":
            raise BucketMissing(
                f"the bucket {bucket!r} does not exist and this service's storage credential may not create it: "
                "run `voxtrain storage provision` (or `voxtrain-stack up`) with an administrator's credential"
            ) from exc
        if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise


#: Patterns (S3 policy wildcards: ``*`` spans ``/`` too) of the keys :func:`dataset_key` and
#: :func:`artifact_prefix` build; :mod:`voxtrain_shared.storage_access` grants access by them.
DATASET_KEYS = "tenants/*/models/*/datasets/*"
ARTIFACT_KEYS = "tenants/*/models/*/runs/*"
#: The uploads of asynchronous transcription jobs (``voxtrain_trainer.job_audio.job_key``).
JOB_AUDIO_KEYS = "transcriptions/*"


def dataset_key(tenant_id: str, model_id: object, dataset_id: object) -> str:
    """Object key of a dataset's bytes: built from ids only, never from a file name."""
    return f"tenants/{tenant_id}/models/{model_id}/datasets/{dataset_id}/data"


def artifact_prefix(tenant_id: str, model_id: object, run_id: object) -> str:
    """Key prefix of a training run's artifacts."""
    return f"tenants/{tenant_id}/models/{model_id}/runs/{run_id}/"
