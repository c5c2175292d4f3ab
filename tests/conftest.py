import os
from types import SimpleNamespace

import pytest

if "stack" not in globals() and os.environ.get("VOXTRAIN_TEST_KAFKA_BOOTSTRAP") and not os.path.exists(
    os.path.join(os.path.dirname(__file__), "_stack.py")
):
    @pytest.fixture(scope="session")
    def stack():  # temporary until tests/_stack.py lands
        e = os.environ
        return SimpleNamespace(
            kafka_bootstrap=e["VOXTRAIN_TEST_KAFKA_BOOTSTRAP"], postgres_dsn=e["VOXTRAIN_TEST_POSTGRES_DSN"],
            minio_endpoint=e["VOXTRAIN_TEST_MINIO_ENDPOINT"], minio_access_key=e["VOXTRAIN_TEST_MINIO_ACCESS_KEY"],
            minio_secret_key=e["VOXTRAIN_TEST_MINIO_SECRET_KEY"])
