"""Real MinIO: bucket bootstrap, put/get, multipart."""

import hashlib
import io
import os

import pytest

from tests.support import unique
from voxtrain_shared.settings import MinioSettings
from voxtrain_shared.storage import ensure_bucket, make_client

pytestmark = pytest.mark.integration


def test_put_get_and_multipart(stack) -> None:
    client = make_client(
        MinioSettings(
            endpoint=stack.minio_endpoint, access_key=stack.minio_access_key, secret_key=stack.minio_secret_key
        )
    )
    bucket = unique("b").replace("_", "-")
    ensure_bucket(client, bucket)
    ensure_bucket(client, bucket)  # idempotent
    client.put_object(bucket, "small", io.BytesIO(b"hello"), 5)
    assert client.get_object(bucket, "small").read() == b"hello"

    data = os.urandom(12 * 1024 * 1024 + 123)  # three parts of 5 MiB, streamed with unknown length
    client.put_object(bucket, "big", io.BytesIO(data), length=-1, part_size=5 * 1024 * 1024)
    stat = client.stat_object(bucket, "big")
    assert stat.size == len(data)
    assert "-3" in stat.etag  # a multipart upload's ETag counts its parts
    got = client.get_object(bucket, "big")
    assert hashlib.sha256(got.read()).hexdigest() == hashlib.sha256(data).hexdigest()
