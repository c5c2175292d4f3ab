"""Real MinIO (its own, stopped and started again): while the object store is away a request answers
503 ``dependency_unavailable`` naming it, and the same client works again once the store is back."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.support import eventually
from voxtrain_shared import http
from voxtrain_shared.faults import MINIO, classify
from voxtrain_shared.settings import MinioSettings
from voxtrain_shared.storage import make_client

pytestmark = pytest.mark.integration


async def test_a_storage_outage_is_a_503_naming_the_store_and_the_client_heals(private_minio: Any) -> None:
    e = private_minio.endpoints
    client = make_client(
        MinioSettings(endpoint=e.minio_endpoint, access_key=e.minio_access_key, secret_key=e.minio_secret_key)
    )
    app = FastAPI()
    http.install(app, {})

    @app.get("/buckets")
    async def buckets() -> list[str]:
        return [b.name for b in await asyncio.to_thread(client.list_buckets)]

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t", timeout=120) as api:
        assert (await api.get("/buckets")).status_code == 200
        private_minio.server.stop()
        error: Exception | None = None
        try:
            await asyncio.to_thread(client.list_buckets)
        except Exception as exc:  # what the real client raises while the store is away
            error = exc
        assert error is not None
        fault = classify(error)
        assert fault.transient and fault.dependency == MINIO, fault
        r = await api.get("/buckets")
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "dependency_unavailable"
        assert r.json()["error"]["details"] == {"dependency": "minio"}
        assert "object storage" in r.json()["error"]["message"]
        private_minio.server.up(timeout=120)

        async def back() -> bool:
            return (await api.get("/buckets")).status_code == 200

        await eventually(back, timeout=60, interval=0.5)
