"""Each storage service's own MinIO credential can do its job and nothing more (against the real MinIO)."""

from __future__ import annotations

import fnmatch
import io
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from minio import Minio
from minio.error import S3Error

from tests.support import storage_users, unique
from voxtrain_shared.settings import MinioSettings
from voxtrain_shared.storage import (
    ARTIFACT_KEYS,
    DATASET_KEYS,
    BucketMissing,
    artifact_prefix,
    dataset_key,
    ensure_bucket,
    make_client,
)
from voxtrain_shared.storage_access import Credential, policy_document, provision, revoke

DATASET = dataset_key("acme", uuid.uuid4(), uuid.uuid4())
ARTIFACT = artifact_prefix("acme", uuid.uuid4(), uuid.uuid4()) + "model.lm.bin"


def test_the_key_patterns_match_the_keys_the_services_build() -> None:
    assert fnmatch.fnmatchcase(DATASET, DATASET_KEYS) and not fnmatch.fnmatchcase(DATASET, ARTIFACT_KEYS)
    assert fnmatch.fnmatchcase(ARTIFACT, ARTIFACT_KEYS) and not fnmatch.fnmatchcase(ARTIFACT, DATASET_KEYS)


def test_no_policy_lets_a_service_create_buckets_or_list_keys() -> None:
    for service in ("validator", "datasets", "trainer"):
        actions = {a for s in policy_document(service, "b")["Statement"] for a in s["Action"]}
        assert not actions & {"s3:*", "s3:CreateBucket", "s3:ListBucket", "s3:ListAllMyBuckets", "admin:*"}
    with pytest.raises(ValueError, match="no storage policy for models"):
        provision(MinioSettings(access_key="a", secret_key="b"), {"models": Credential.generate("models")})


@pytest.fixture
def users(stack: Any) -> Iterator[storage_users]:
    bucket = unique("lp").replace("_", "-")
    with storage_users(stack, bucket) as provisioned:
        root = make_client(provisioned.admin)
        root.put_object(bucket, DATASET, io.BytesIO(b"dataset"), 7)
        root.put_object(bucket, ARTIFACT, io.BytesIO(b"model"), 5)
        yield provisioned
        for key in (DATASET, ARTIFACT, DATASET + ".new", ARTIFACT + ".new"):
            root.remove_object(bucket, key)
        root.remove_bucket(bucket)


def client(users: storage_users, service: str) -> Minio:
    return make_client(users.settings(service))


def denied(call: Callable[[], object]) -> bool:
    try:
        call()
    except S3Error as exc:
        return exc.code == "AccessDenied"
    return False


def read(c: Minio, bucket: str, key: str) -> bytes:
    response = c.get_object(bucket, key)
    try:
        return response.read()
    finally:
        response.close()
        response.release_conn()


def put(c: Minio, bucket: str, key: str, data: bytes = b"x") -> object:
    return c.put_object(bucket, key, io.BytesIO(data), len(data))


def test_the_validator_reads_datasets_and_can_change_nothing(users: storage_users) -> None:
    v, bucket = client(users, "validator"), users.admin.bucket
    assert v.bucket_exists(bucket)  # its readiness probe
    assert read(v, bucket, DATASET) == b"dataset"
    assert denied(lambda: put(v, bucket, DATASET))  # no overwrite
    assert denied(lambda: put(v, bucket, DATASET + ".new"))  # no new object
    assert denied(lambda: v.remove_object(bucket, DATASET))
    assert denied(lambda: read(v, bucket, ARTIFACT))  # trained models are not its business
    assert denied(lambda: put(v, bucket, ARTIFACT))
    assert denied(lambda: list(v.list_objects(bucket, prefix="tenants/", recursive=True)))
    assert [b.name for b in v.list_buckets()] == [bucket], "it sees its own bucket only"
    assert denied(lambda: v.make_bucket(unique("lp").replace("_", "-")))
    assert read(make_client(users.admin), bucket, DATASET) == b"dataset"  # untouched


def test_the_datasets_service_writes_and_deletes_datasets_but_cannot_touch_models(users: storage_users) -> None:
    d, bucket = client(users, "datasets"), users.admin.bucket
    assert d.bucket_exists(bucket)
    put(d, bucket, DATASET + ".new", b"fresh")
    assert read(d, bucket, DATASET + ".new") == b"fresh"
    d.remove_object(bucket, DATASET + ".new")
    upload = d._create_multipart_upload(bucket, DATASET + ".new", {})  # the resumable upload's calls
    d._list_multipart_uploads(bucket, prefix=DATASET + ".new")
    d._abort_multipart_upload(bucket, DATASET + ".new", upload)
    assert denied(lambda: read(d, bucket, ARTIFACT))
    assert denied(lambda: put(d, bucket, ARTIFACT))
    assert denied(lambda: d.remove_object(bucket, ARTIFACT))


def test_the_trainer_reads_datasets_and_reads_and_writes_models(users: storage_users, tmp_path: Any) -> None:
    t, bucket = client(users, "trainer"), users.admin.bucket
    assert t.bucket_exists(bucket)
    t.fget_object(bucket, DATASET, str(tmp_path / "data"))  # the worker's download
    assert (tmp_path / "data").read_bytes() == b"dataset"
    (tmp_path / "lm").write_bytes(b"trained")
    t.fput_object(bucket, ARTIFACT + ".new", str(tmp_path / "lm"))  # the worker's store
    assert read(t, bucket, ARTIFACT + ".new") == b"trained"  # the model cache's fetch
    assert t.stat_object(bucket, ARTIFACT + ".new").size == 7  # the export's size check before streaming
    assert denied(lambda: put(t, bucket, DATASET))
    assert denied(lambda: t.remove_object(bucket, DATASET))
    job_audio = "transcriptions/acme/job-1/audio.wav"  # an asynchronous transcription's upload: kept, read, removed
    t.fput_object(bucket, job_audio, str(tmp_path / "lm"))
    assert read(t, bucket, job_audio) == b"trained"
    t.remove_object(bucket, job_audio)


def test_a_service_credential_cannot_create_a_missing_bucket(stack: Any) -> None:
    bucket = unique("lp").replace("_", "-")
    with storage_users(stack, bucket) as provisioned:
        make_client(provisioned.admin).remove_bucket(bucket)  # e.g. the storage Job has not run yet
        with pytest.raises(BucketMissing, match="voxtrain storage provision"):
            ensure_bucket(make_client(provisioned.settings("trainer")), bucket)


def test_rotating_a_credential_retires_the_old_key(users: storage_users) -> None:
    old, new = users.credentials["validator"], Credential.generate("validator")
    provision(users.admin, {"validator": new})
    users.credentials["validator"] = new
    assert read(client(users, "validator"), users.admin.bucket, DATASET) == b"dataset"
    revoke(users.admin, [old.access_key])
    retired = make_client(users.settings("validator", old))
    with pytest.raises(S3Error) as refused:
        read(retired, users.admin.bucket, DATASET)
    assert refused.value.code == "InvalidAccessKeyId"


def test_the_operator_command_provisions_and_revokes_a_service_user(stack: Any) -> None:
    from typer.testing import CliRunner

    from voxtrain_shared.cli import app

    bucket, user = unique("lp").replace("_", "-"), Credential.generate("validator")
    env = {
        "VOXTRAIN_MINIO__ENDPOINT": stack.minio_endpoint,
        "VOXTRAIN_MINIO__ACCESS_KEY": stack.minio_access_key,
        "VOXTRAIN_MINIO__SECRET_KEY": stack.minio_secret_key,
        "VOXTRAIN_MINIO__BUCKET": bucket,
        "VOXTRAIN_STORAGE_USERS__VALIDATOR__ACCESS_KEY": user.access_key,
        "VOXTRAIN_STORAGE_USERS__VALIDATOR__SECRET_KEY": user.secret_key,
    }
    done = CliRunner().invoke(app, ["storage", "provision"], env=env)
    assert done.exit_code == 0, done.output
    own = MinioSettings(endpoint=stack.minio_endpoint, access_key=user.access_key, secret_key=user.secret_key)
    assert make_client(own).bucket_exists(bucket)
    assert denied(lambda: put(make_client(own), bucket, DATASET))
    done = CliRunner().invoke(app, ["storage", "revoke", user.access_key], env=env)
    assert done.exit_code == 0, done.output
    with pytest.raises(S3Error):  # a HEAD carries no error body: the user is gone, the request is refused
        make_client(own).bucket_exists(bucket)
    admin = MinioSettings(**env_admin(stack), endpoint=stack.minio_endpoint, bucket=bucket)
    revoke(admin, [], services=["validator"])
    make_client(admin).remove_bucket(bucket)


def env_admin(stack: Any) -> dict[str, str]:
    return {"access_key": stack.minio_access_key, "secret_key": stack.minio_secret_key}
