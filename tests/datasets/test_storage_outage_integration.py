"""MinIO dies in the middle of an upload: a clear 503, and nothing half-stored once it is back."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.datasets.conftest import Datasets, MiB, spy_store
from tests.support import TopicReader, auth_headers, running, settings_for
from voxtrain_datasets.bootstrap import assemble
from voxtrain_shared import events as ev
from voxtrain_shared.settings import DatasetsSettings

pytestmark = pytest.mark.integration
USER, PASSWORD = "outage-test", "outage-test-secret-123"


def minio_binary() -> str | None:
    """The MinIO server the dev stack installs, else one named in the environment or on PATH."""
    candidates: list[str | None] = [os.environ.get("VOXTRAIN_TEST_MINIO_BINARY")]
    try:
        from voxtrain_devstack.install import minio_binary as installed

        candidates.append(str(installed()))
    except ImportError:
        pass
    candidates += ["/tmp/miniobuild/bin/minio", shutil.which("minio")]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateMinio:
    """A MinIO process of this test's own, on a free port, that the test can kill."""

    def __init__(self, binary: str, data: Path) -> None:
        self.binary, self.data = binary, data
        self.port, self.console = free_port(), free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {
            **os.environ,
            "MINIO_ROOT_USER": USER,
            "MINIO_ROOT_PASSWORD": PASSWORD,
            "MINIO_UPDATE": "off",
            "MINIO_BROWSER": "off",
        }
        self.proc = subprocess.Popen(
            [
                self.binary,
                "server",
                str(self.data),
                "--address",
                self.endpoint,
                "--console-address",
                f"127.0.0.1:{self.console}",
                "--quiet",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://{self.endpoint}/minio/health/ready", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("private MinIO did not become ready")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def private_minio(tmp_path: Path):
    binary = minio_binary()
    if binary is None:
        pytest.skip("no MinIO server binary (set VOXTRAIN_TEST_MINIO_BINARY)")
    server = PrivateMinio(binary, tmp_path / "minio")
    server.start()
    yield server
    server.kill()


async def form(boundary: str, parts: list[tuple[str, int]], on_sent) -> AsyncIterator[bytes]:
    """A multipart body generated as it is sent; ``on_sent(name, bytes_sent)`` runs after each chunk."""
    chunk = os.urandom(256 * 1024)
    for name, size in parts:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        sent = 0
        while sent < size:
            piece = chunk[: min(len(chunk), size - sent)]
            sent += len(piece)
            yield piece
            on_sent(name, sent)
            await asyncio.sleep(0)
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


async def test_minio_dying_mid_upload_is_a_503_and_leaves_nothing(stack, private_minio: PrivateMinio) -> None:
    settings = settings_for(
        DatasetsSettings,
        stack,
        VOXTRAIN_MINIO__ENDPOINT=private_minio.endpoint,
        VOXTRAIN_MINIO__ACCESS_KEY=USER,
        VOXTRAIN_MINIO__SECRET_KEY=PASSWORD,
        VOXTRAIN_PART_SIZE_BYTES=str(5 * MiB),
    )
    store = spy_store(settings)
    built = assemble(settings, store=store, sweep_every=3600)
    async with running(built.service) as client:
        datasets = Datasets(built, store, client, stack)
        mid = await datasets.new_model()

        def kill_midway(name: str, sent: int) -> None:
            if name == "second.wav" and sent >= 12 * MiB and private_minio.proc is not None:
                private_minio.kill()  # two parts of the second file are stored, more are on their way

        boundary = "outage-boundary"
        async with TopicReader(stack.kafka_bootstrap, datasets.topics.datasets) as reader:
            r = await client.post(
                f"/v1/models/{mid}/datasets",
                headers={**auth_headers("acme"), "content-type": f"multipart/form-data; boundary={boundary}"},
                content=form(boundary, [("first.txt", 2 * MiB), ("second.wav", 40 * MiB)], kill_midway),
            )
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "storage_unavailable"
            assert "nothing from this request was kept" in r.json()["error"]["message"]
            await reader.settle(1.0)
        assert [e for e in map(ev.REGISTRY.parse, (x.value for x in reader.records)) if e.model_id == mid] == []
        assert await datasets.listing(mid) == []
        keys = [k for k in datasets.store.written if str(mid) in k]
        assert len(keys) == 2
        pending = await datasets.pending_objects()
        assert {k for k, abandoned in pending.items() if abandoned} == set(keys)  # the sweeper's to-do list

        ready = await client.get("/health/ready")
        assert ready.status_code == 503 and ready.json()["checks"]["minio"].startswith("unavailable")
        assert ready.json()["checks"]["postgres"] == "ok"

        # The store comes back with the first file's object and the second's parts still on disk ...
        private_minio.start()
        assert await datasets.store.keys(datasets.prefix(mid)) == [keys[0]]
        assert await datasets.store.incomplete_uploads(keys[1])
        # ... which the sweeper removes.
        assert (await datasets.sweep())["objects"] == 2
        assert await datasets.store.leftovers(datasets.prefix(mid)) == []
        assert await datasets.pending_objects() == {}
        r = await datasets.upload(mid, [("again.txt", b"storage is back")])
        assert r.status_code == 201, r.text
        assert (await client.get("/health/ready")).status_code == 200
