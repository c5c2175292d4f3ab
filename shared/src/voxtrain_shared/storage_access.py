"""Least privilege in object storage: one user per service, with a policy limited to what that service does.

- validator: reads datasets (it runs FFmpeg over untrusted media: it must not be able to change anything);
- datasets: writes, reads and deletes datasets (uploads, resumable uploads, checksums, deletion);
- trainer: reads datasets, reads and writes trained models (a run's artifacts), keeps and removes the uploads of
  asynchronous transcription jobs.

The models and webhooks services (and the console) use no object storage and get no credential. No service may
create buckets: :func:`provision` — run by ``voxtrain-stack up`` locally and by the storage Job on Kubernetes,
with an administrator's credential — creates the bucket, the policies and the users. Policies are written in
the S3 policy language (MinIO's admin API stores them); key patterns follow :mod:`voxtrain_shared.storage`.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from collections.abc import Mapping
from typing import Any

from minio.credentials import StaticProvider
from minio.minioadmin import MinioAdmin

from .settings import MinioSettings
from .storage import ARTIFACT_KEYS, DATASET_KEYS, JOB_AUDIO_KEYS, ensure_bucket, make_client

READ = ("s3:GetObject",)
WRITE = ("s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts")
DELETE = ("s3:DeleteObject",)
#: ``bucket_exists`` (readiness probes, start-up): MinIO checks s3:HeadBucket before s3:ListBucket, so no
#: service needs to list keys. s3:GetBucketLocation: S3 clients not told the region ask for it first.
HEAD_BUCKET = ("s3:HeadBucket", "s3:GetBucketLocation")


@dataclasses.dataclass(frozen=True)
class Grant:
    """``actions`` on the objects whose keys match ``keys`` (``*`` spans any characters, ``/`` too)."""

    keys: str
    actions: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Access:
    """What one service may do: on objects (``grants``) and on the bucket itself (``bucket_actions``)."""

    grants: tuple[Grant, ...]
    bucket_actions: tuple[str, ...] = HEAD_BUCKET


ACCESS: dict[str, Access] = {
    "validator": Access((Grant(DATASET_KEYS, READ),)),
    # abort_all lists a key's unfinished multipart uploads (the sweeper, deletions)
    "datasets": Access(
        (Grant(DATASET_KEYS, READ + WRITE + DELETE),), bucket_actions=(*HEAD_BUCKET, "s3:ListBucketMultipartUploads")
    ),
    "trainer": Access(
        (Grant(DATASET_KEYS, READ), Grant(ARTIFACT_KEYS, READ + WRITE), Grant(JOB_AUDIO_KEYS, READ + WRITE + DELETE))
    ),
}
#: The services that use object storage, each with a credential of its own.
STORAGE_SERVICES = tuple(ACCESS)


@dataclasses.dataclass(frozen=True)
class Credential:
    """An S3 access key pair."""

    access_key: str
    secret_key: str = dataclasses.field(repr=False)

    @classmethod
    def generate(cls, service: str) -> Credential:
        return cls(f"voxtrain-{service}-{secrets.token_hex(4)}", secrets.token_urlsafe(30))


def policy_name(service: str, bucket: str) -> str:
    """The MinIO policy of ``service`` on ``bucket`` (one per bucket: a test's bucket gets its own)."""
    return f"voxtrain-{service}-{bucket}"


def policy_document(service: str, bucket: str) -> dict[str, Any]:
    """The S3 policy that limits ``service`` to what it does in ``bucket``."""
    access = ACCESS[service]
    statements: list[dict[str, Any]] = [
        {"Effect": "Allow", "Action": list(access.bucket_actions), "Resource": [f"arn:aws:s3:::{bucket}"]}
    ]
    statements += [
        {"Effect": "Allow", "Action": list(g.actions), "Resource": [f"arn:aws:s3:::{bucket}/{g.keys}"]}
        for g in access.grants
    ]
    return {"Version": "2012-10-17", "Statement": statements}


def _admin(settings: MinioSettings) -> MinioAdmin:
    return MinioAdmin(
        endpoint=settings.endpoint,
        credentials=StaticProvider(settings.access_key.get_secret_value(), settings.secret_key.get_secret_value()),
        region=settings.region,
        secure=settings.secure,
    )


def provision(admin: MinioSettings, credentials: Mapping[str, Credential]) -> None:
    """Create the bucket of ``admin.bucket`` (if missing) and, for each service in ``credentials``, its policy and
    its user (an existing user gets the given secret: re-running with new secrets rotates them). Idempotent.

    ``admin`` carries a credential allowed to administer MinIO (the root user, or one with admin:* rights).
    """
    unknown = set(credentials) - set(ACCESS)
    if unknown:
        raise ValueError(f"no storage policy for {', '.join(sorted(unknown))}; there are {', '.join(ACCESS)}")
    ensure_bucket(make_client(admin), admin.bucket)
    client = _admin(admin)
    for service, credential in credentials.items():
        name = policy_name(service, admin.bucket)
        client.policy_add(name, policy=policy_document(service, admin.bucket))
        client.user_add(credential.access_key, credential.secret_key)
        attached = json.loads(client.user_info(credential.access_key)).get("policyName", "")
        if name not in attached.split(","):
            client.attach_policy([name], user=credential.access_key)


def revoke(admin: MinioSettings, access_keys: list[str], *, services: list[str] | None = None) -> None:
    """Remove users (e.g. the old key after a rotation) and, for ``services``, their policies on ``admin.bucket``."""
    client = _admin(admin)
    for key in access_keys:
        client.user_remove(key)
    for service in services or []:
        client.policy_remove(policy_name(service, admin.bucket))
