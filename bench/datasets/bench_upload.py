"""Upload throughput of the datasets service over real HTTP versus minio-py straight to MinIO.

One command (the stack's servers from ``VOXTRAIN_TEST_*`` when set, else the local dev stack)::

    uv run python bench/datasets/bench_upload.py            # 1 GB and 5 GB
    uv run python bench/datasets/bench_upload.py --quick    # 64 MB and 256 MB
    uv run python bench/datasets/bench_upload.py --parallel 12   # peak RSS with 12 uploads at once

It starts ``voxtrain-datasets`` under uvicorn in a subprocess (its own schema, topics and bucket),
announces a model on Kafka as the models service would, then for each size uploads a file generated
on the fly (never held in memory) through ``POST /v1/models/{id}/datasets`` and, in the same run,
with minio-py ``put_object``. It prints both throughputs, their ratio, and the service process's
peak RSS (``VmHWM`` from /proc) — which stays flat when the upload really streams.

``--parallel N`` instead sends N uploads at once to two fresh service processes: one whose upload
memory budget is too large to matter (what the service held before it had one) and one with
``--budget`` (default 128 MiB); it prints each one's peak RSS and aggregate throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx

from voxtrain_devstack import Endpoints
from voxtrain_shared import events as ev
from voxtrain_shared.auth import generate_key_pair, issue_token
from voxtrain_shared.settings import AuthSettings, MinioSettings
from voxtrain_shared.storage import ensure_bucket, make_client
from voxtrain_shared.topics import Topics

MB = 1000**2
MiB = 1024**2
BLOCK = os.urandom(4 * MiB)  # the generated file repeats this block (MinIO neither dedupes nor compresses)
CHUNK = 1 * MiB
PART = 16 * MiB
PRIVATE_KEY, PUBLIC_KEY = generate_key_pair()  # this run's token keys
ENV_VARS = (
    "VOXTRAIN_TEST_KAFKA_BOOTSTRAP",
    "VOXTRAIN_TEST_POSTGRES_DSN",
    "VOXTRAIN_TEST_MINIO_ENDPOINT",
    "VOXTRAIN_TEST_MINIO_ACCESS_KEY",
    "VOXTRAIN_TEST_MINIO_SECRET_KEY",
)


def endpoints() -> Endpoints:
    if all(os.environ.get(v) for v in ENV_VARS):
        return Endpoints(*(os.environ[v] for v in ENV_VARS))
    from voxtrain_devstack import ensure_up

    return ensure_up()


def generated(size: int) -> Iterator[memoryview]:
    """``size`` bytes in chunks, from one block reused (no allocation per chunk)."""
    view, sent = memoryview(BLOCK), 0
    while sent < size:
        offset = sent % len(BLOCK)
        n = min(CHUNK, size - sent, len(BLOCK) - offset)
        yield view[offset : offset + n]
        sent += n


def sha256_of(size: int) -> str:
    h = hashlib.sha256()
    for chunk in generated(size):
        h.update(chunk)
    return h.hexdigest()


class GeneratedFile:
    """A file-like reader over :func:`generated` (for minio-py)."""

    def __init__(self, size: int) -> None:
        self._chunks = generated(size)
        self._pending = b""

    def read(self, n: int = -1) -> bytes:
        out = [self._pending]
        have = len(self._pending)
        for chunk in self._chunks:
            out.append(chunk)
            have += len(chunk)
            if n >= 0 and have >= n:
                break
        data = b"".join(out)
        if n < 0:
            self._pending = b""
            return data
        self._pending = data[n:]
        return data[:n]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_service(
    stack: Endpoints, port: int, namespace: str, bucket: str, extra: dict[str, str] | None = None
) -> subprocess.Popen:
    env = {
        **os.environ,
        **stack.as_env(),
        "VOXTRAIN_ENVIRONMENT": "test",
        "VOXTRAIN_AUTH__PUBLIC_KEY": PUBLIC_KEY,
        "VOXTRAIN_POSTGRES__SCHEMA": f"bench_{uuid.uuid4().hex[:8]}",
        "VOXTRAIN_KAFKA__TOPIC_NAMESPACE": namespace,
        "VOXTRAIN_MINIO__BUCKET": bucket,
        "VOXTRAIN_HTTP__PORT": str(port),
        "VOXTRAIN_LOG_LEVEL": "WARNING",
        "VOXTRAIN_PART_SIZE_BYTES": str(PART),
        **(extra or {}),
    }
    return subprocess.Popen(
        [sys.executable, "-c", "from voxtrain_datasets.main import run; run()"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def wait_ready(client: httpx.AsyncClient, proc: subprocess.Popen) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            raise SystemExit(f"the service exited: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
        try:
            if (await client.get("/health/ready")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.2)
    raise SystemExit("the service did not become ready")


async def announce_model(stack: Endpoints, topics: Topics, client: httpx.AsyncClient, headers: dict) -> uuid.UUID:
    from aiokafka import AIOKafkaProducer

    mid = uuid.uuid4()
    env = ev.wrap(ev.ModelCreated(name="bench", language="en-US"), tenant_id="bench", model_id=mid)
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(topics.models, env.to_bytes(), key=env.key())
    finally:
        await producer.stop()
    for _ in range(300):
        if (await client.get(f"/v1/models/{mid}/datasets", headers=headers)).status_code == 200:
            return mid
        await asyncio.sleep(0.1)
    raise SystemExit("the service never saw the model")


async def via_service(client: httpx.AsyncClient, mid: uuid.UUID, headers: dict, size: int) -> tuple[float, dict]:
    boundary = secrets.token_hex(16)
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="bench.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    async def body() -> AsyncIterator[bytes]:
        yield head
        for chunk in generated(size):
            yield chunk
        yield tail

    started = time.perf_counter()
    r = await client.post(
        f"/v1/models/{mid}/datasets?type=AUDIO",
        content=body(),
        timeout=None,
        headers={
            **headers,
            "content-type": f"multipart/form-data; boundary={boundary}",
            "content-length": str(len(head) + size + len(tail)),
        },
    )
    elapsed = time.perf_counter() - started
    if r.status_code != 201:
        raise SystemExit(f"upload failed: {r.status_code} {r.text[:500]}")
    return elapsed, r.json()["datasets"][0]


def direct(settings: MinioSettings, bucket: str, size: int) -> float:
    client, key = make_client(settings), f"bench/{uuid.uuid4()}"
    started = time.perf_counter()
    client.put_object(
        bucket,
        key,
        GeneratedFile(size),
        size,
        part_size=PART,
        content_type="audio/wav",
    )
    elapsed = time.perf_counter() - started
    client.remove_object(bucket, key)  # keep the disk free for the next size
    return elapsed


def human(n: int) -> str:
    return f"{n / MB:,.0f} MB" if n < 10**9 else f"{n / 10**9:g} GB"


async def parallel_peak(stack: Endpoints, minio: MinioSettings, n: int, size: int, budget: int) -> tuple[int, float]:
    """Peak RSS (KiB) of a fresh service process while ``n`` uploads of ``size`` run at once, and their MB/s."""
    namespace, bucket = f"bench{uuid.uuid4().hex[:8]}", f"bench-{uuid.uuid4().hex[:10]}"
    ensure_bucket(make_client(minio), bucket)
    port = free_port()
    extra = {
        "VOXTRAIN_UPLOADS__MAX_CONCURRENT_PER_TENANT": str(n),
        "VOXTRAIN_UPLOADS__MEMORY_BUDGET_BYTES": str(budget),
    }
    proc = start_service(stack, port, namespace, bucket, extra)
    headers = {
        "Authorization": "Bearer " + issue_token(AuthSettings(public_key=PUBLIC_KEY, private_key=PRIVATE_KEY), "bench")
    }
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            await wait_ready(client, proc)
            mid = await announce_model(stack, Topics(namespace), client, headers)
            started = time.perf_counter()
            done = await asyncio.gather(*(via_service(client, mid, headers, size) for _ in range(n)))
            elapsed = time.perf_counter() - started
            assert all(ds["size"] == size for _, ds in done)
            for _, ds in done:
                await client.delete(f"/v1/models/{mid}/datasets/{ds['id']}", headers=headers)
            return status_kb(proc.pid, "VmHWM"), n * size / elapsed / MB
    finally:
        proc.terminate()
        proc.wait(30)


async def parallel(n: int, size: int, budget: int) -> None:
    stack = endpoints()
    minio = MinioSettings(
        endpoint=stack.minio_endpoint, access_key=stack.minio_access_key, secret_key=stack.minio_secret_key
    )
    print(f"{n} uploads of {human(size)} at once; part size {PART // MiB} MiB; load average {os.getloadavg()[0]:.1f}")
    print("| upload memory budget | service peak RSS | aggregate MB/s |")
    print("|---|---|---|")
    for label, b in (("none (64 GiB)", 64 * 1024**3), (f"{budget // MiB} MiB", budget)):
        hwm, rate = await parallel_peak(stack, minio, n, size, b)
        print(f"| {label} | {hwm / 1024:.0f} MiB | {rate:.1f} |", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="64 MB and 256 MB instead of 1 GB and 5 GB")
    parser.add_argument("--sizes", type=int, nargs="*", help="sizes in bytes (override)")
    parser.add_argument("--parallel", type=int, default=0, help="N uploads at once: peak RSS without and with a budget")
    parser.add_argument("--parallel-size", type=int, default=128 * MB, help="bytes of each parallel upload")
    parser.add_argument("--budget", type=int, default=128 * MiB, help="upload memory budget of the --parallel run")
    args = parser.parse_args()
    if args.parallel:
        await parallel(args.parallel, args.parallel_size, args.budget)
        return
    sizes = args.sizes or ([64 * MB, 256 * MB] if args.quick else [10**9, 5 * 10**9])

    stack = endpoints()
    namespace, bucket = f"bench{uuid.uuid4().hex[:8]}", f"bench-{uuid.uuid4().hex[:10]}"
    minio = MinioSettings(
        endpoint=stack.minio_endpoint, access_key=stack.minio_access_key, secret_key=stack.minio_secret_key
    )
    ensure_bucket(make_client(minio), bucket)
    port = free_port()
    proc = start_service(stack, port, namespace, bucket)
    headers = {
        "Authorization": "Bearer " + issue_token(AuthSettings(public_key=PUBLIC_KEY, private_key=PRIVATE_KEY), "bench")
    }
    rows = []
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            await wait_ready(client, proc)
            mid = await announce_model(stack, Topics(namespace), client, headers)
            rss_idle = status_kb(proc.pid, "VmRSS")
            for size in sizes:
                cpu = cpu_seconds(proc.pid)
                t_service, dataset = await via_service(client, mid, headers, size)
                cpu = cpu_seconds(proc.pid) - cpu
                assert dataset["size"] == size and dataset["sha256"] == sha256_of(size), "stored bytes differ"
                deleted = await client.delete(f"/v1/models/{mid}/datasets/{dataset['id']}", headers=headers)
                assert deleted.status_code == 204, deleted.text
                t_direct = await asyncio.to_thread(direct, minio, bucket, size)
                rows.append(
                    (
                        size,
                        size / t_service / MB,
                        size / t_direct / MB,
                        status_kb(proc.pid, "VmHWM"),
                        cpu / (size / 10**9),
                    )
                )
                print(
                    f"{human(size):>8}: service {rows[-1][1]:7.1f} MB/s   minio-py put_object {rows[-1][2]:7.1f} MB/s"
                    f"   ratio {rows[-1][1] / rows[-1][2]:.2f}   service peak RSS {rows[-1][3] / 1024:.0f} MiB"
                    f"   service CPU {rows[-1][4]:.1f} s/GB",
                    flush=True,
                )
    finally:
        proc.terminate()
        proc.wait(30)
    print(
        f"\nservice RSS when idle {rss_idle / 1024:.0f} MiB; peak RSS (VmHWM) after all uploads "
        f"{rows[-1][3] / 1024:.0f} MiB; part size {PART // MiB} MiB; {os.cpu_count()} CPUs"
    )
    print("| size | service MB/s | put_object MB/s | ratio | service peak RSS | service CPU s/GB |")
    print("|---|---|---|---|---|---|")
    for size, s, dct, hwm, cpu in rows:
        print(f"| {human(size)} | {s:.1f} | {dct:.1f} | {s / dct:.2f} | {hwm / 1024:.0f} MiB | {cpu:.1f} |")


if __name__ == "__main__":
    asyncio.run(main())
