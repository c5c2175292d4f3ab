"""Upload throughput of the datasets service over real HTTP versus minio-py straight to MinIO.

One command (the stack's servers from ``VOXTRAIN_TEST_*`` when set, else the local dev stack)::

    uv run python bench/datasets/bench_upload.py            # 256 MB and 1 GB, 3 interleaved repetitions each
    uv run python bench/datasets/bench_upload.py --quick    # 64 MB and 256 MB
    uv run python bench/datasets/bench_upload.py --sizes 10737418240 --reps 1   # 10 GiB once
    uv run python bench/datasets/bench_upload.py --parallel 12   # peak RSS with 12 uploads at once

It starts ``voxtrain-datasets`` under uvicorn in a subprocess (its own schema, topics and bucket),
announces a model on Kafka as the models service would, then for each size uploads a file generated
on the fly (never held in memory) through ``POST /v1/models/{id}/datasets`` and, in the same run,
with minio-py ``put_object``, the two interleaved ``--reps`` times (alternating which goes first, so a change
in the machine's load hits both). It prints each repetition, then per size the median throughputs, the
median of the per-repetition ratios, the service process's peak RSS during its uploads of that size
(``VmHWM`` from /proc, reset before each upload) — which stays flat when the upload really streams —
and the CPU seconds per GB of the client, the service and MinIO (when it runs on this machine).

``--sessions`` measures the way the product's own client uploads (``voxtrain upload``, the console): a
file on disk goes through a resumable upload session — the service opens a multipart upload and hands out
presigned part URLs, the client library (``voxtrain_client`` ``plan_for`` + ``Uploader``, as the CLI runs it)
reads each part once, checksums it, PUTs it straight to MinIO with its CRC32C (MinIO verifies it on arrival),
feeds the file's SHA-256 on the way, and completes the session with it; the service checks the parts'
sizes and storage-verified checksums and assembles the object without reading it back — against minio-py
``put_object`` (an open file) and ``fput_object`` (a path) of the same file, same part size, same MinIO.
``session, SHA256 parts`` is the same client asking for a session whose parts carry SHA-256 (the console's
and the client's before CRC32C).
Every way runs in a child process of its own (its CPU time and peak RSS are its own), interleaved ``--reps``
times; the stored object's sha256 is checked after each timed upload (for the session: against the sha256 the
dataset recorded too). Sizes 256 MB, 1 GB and 4 GB (``--quick``: 64 and 256 MB)::

    uv run python bench/datasets/bench_upload.py --sessions
    # before/after: also upload with another version of the client library (one that sends part checksums:
    # a client from before them has its parts refused by storage)
    git archive BRANCH client/src | tar -x -C /tmp/other && \
        uv run python bench/datasets/bench_upload.py --sessions --compare-client /tmp/other/client/src

``--parallel N`` instead sends N uploads at once to two fresh service processes: one whose upload
memory budget is too large to matter (what the service held before it had one) and one with
``--budget`` (default 128 MiB); it prints each one's peak RSS and aggregate throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import hashlib
import json
import os
import resource
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
from minio import Minio

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


SERVICE = "from voxtrain_datasets.main import run; run()"
#: the service as it ran before it asked uvicorn for httptools and uvloop
PLAIN_SERVER = (
    "from voxtrain_datasets.bootstrap import build; from voxtrain_shared.http import serve;"
    " from voxtrain_shared.settings import DatasetsSettings, load;"
    " s = load(DatasetsSettings); serve(build(s).app, s, loop='asyncio', http='h11')"
)


def start_service(
    stack: Endpoints,
    port: int,
    namespace: str,
    bucket: str,
    extra: dict[str, str] | None = None,
    *,
    schema: str | None = None,
    run: str | None = None,
) -> subprocess.Popen:
    env = {
        **os.environ,
        **stack.as_env(),
        "VOXTRAIN_ENVIRONMENT": "test",
        "VOXTRAIN_AUTH__PUBLIC_KEY": PUBLIC_KEY,
        "VOXTRAIN_POSTGRES__SCHEMA": schema or f"bench_{uuid.uuid4().hex[:8]}",
        "VOXTRAIN_KAFKA__TOPIC_NAMESPACE": namespace,
        "VOXTRAIN_MINIO__BUCKET": bucket,
        "VOXTRAIN_HTTP__PORT": str(port),
        "VOXTRAIN_LOG_LEVEL": "WARNING",
        "VOXTRAIN_PART_SIZE_BYTES": str(PART),
        **(extra or {}),
    }
    return subprocess.Popen(
        [sys.executable, "-c", run or SERVICE],
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


def reset_peak(pid: int) -> None:
    """Start a new ``VmHWM`` measurement for ``pid`` (Linux: writing 5 to clear_refs resets the peak)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def minio_pid(endpoint: str) -> int | None:
    """The local MinIO server's pid when it runs on this machine (for its CPU time), else None."""
    port = endpoint.rsplit(":", 1)[-1]
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmd and cmd[0].endswith(b"minio") and any(a.endswith(f":{port}".encode()) for a in cmd):
                return int(proc.name)
    return None


class Arm:
    """Seconds, service peak RSS and CPU seconds (client, service, MinIO) of each repetition of one way to upload."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.peak_kib: list[int] = []
        self.cpu: list[tuple[float, float, float]] = []

    def ratio_to(self, base: Arm) -> float:
        """Median over the repetitions of this arm's speed relative to ``base`` in the same repetition."""
        return statistics.median(b / s for s, b in zip(self.seconds, base.seconds, strict=True))

    def rate(self, size: int) -> float:
        return size / statistics.median(self.seconds) / MB

    def cpu_per_gb(self, size: int) -> tuple[float, ...]:
        return tuple(statistics.median(c[i] for c in self.cpu) / (size / 10**9) for i in range(3))


def rep_line(size: int, rep: int, arms: Mapping[str, Arm], note: str) -> str:
    """One repetition: each way's MB/s and its ratio to put_object, ``note``, and the load."""
    put = arms["put_object"]
    return (
        f"{human(size):>8} #{rep + 1}: "
        + "   ".join(
            f"{way} {size / arm.seconds[-1] / MB:6.1f} MB/s"
            + (f" (ratio {put.seconds[-1] / arm.seconds[-1]:.2f})" if arm is not put else "")
            for way, arm in arms.items()
        )
        + f"   {note}   load {os.getloadavg()[0]:.1f}"
    )


class CpuClock:
    """CPU seconds used by this client, the service and MinIO (when local) since :meth:`start`."""

    def __init__(self, service: int, minio: int | None) -> None:
        self._pids = (service, minio)

    def _now(self) -> tuple[float, float, float]:
        own = time.process_time()
        service, minio = (cpu_seconds(p) if p else 0.0 for p in self._pids)
        return own, service, minio

    def start(self) -> None:
        self._start = self._now()

    def stop(self) -> tuple[float, float, float]:
        now = self._now()
        return now[0] - self._start[0], now[1] - self._start[1], now[2] - self._start[2]


class Service:
    """One service process under test: its client and the CPU clock that includes it."""

    def __init__(self, label: str, proc: subprocess.Popen, port: int, minio: int | None) -> None:
        self.label, self.proc = label, proc
        self.client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60)
        self.clock = CpuClock(proc.pid, minio)

    async def upload(self, mid: uuid.UUID, headers: dict, size: int, arm: Arm) -> None:
        reset_peak(self.proc.pid)
        self.clock.start()
        seconds, dataset = await via_service(self.client, mid, headers, size)
        arm.cpu.append(self.clock.stop())
        arm.seconds.append(seconds)
        arm.peak_kib.append(status_kb(self.proc.pid, "VmHWM"))
        assert dataset["size"] == size and dataset["sha256"] == sha256_of(size), "stored bytes differ"
        deleted = await self.client.delete(f"/v1/models/{mid}/datasets/{dataset['id']}", headers=headers)
        assert deleted.status_code == 204, deleted.text

    async def stop(self) -> None:
        await self.client.aclose()
        self.proc.terminate()
        self.proc.wait(30)


# ---------------------------------------------------------------- resumable sessions vs put_object, from disk

#: the session way with SHA-256 part checksums (the client's default is CRC32C)
SHA256_PARTS = "session, SHA256 parts"
SESSION_WAYS = ("session", SHA256_PARTS, "put_object", "fput_object")
CLIENT_WAYS = ("session", SHA256_PARTS)
#: the session way with the client library from another folder (``--compare-client``)
OTHER_CLIENT = "session, other client"


def child(spec: dict) -> None:
    """One timed upload of ``spec["file"]`` the way ``spec["way"]`` says, in this (child) process; prints a JSON
    line with its seconds, CPU seconds and this process's peak RSS."""
    path, way = Path(spec["file"]), spec["way"]
    if way in (*CLIENT_WAYS, OTHER_CLIENT):
        from voxtrain_client.api import Client, Dataset
        from voxtrain_client.config import ClientConfig
        from voxtrain_client.upload import Uploader, plan_for

        class TimedClient(Client):
            """The client, timing the completion (the service checks the parts and assembles the object)."""

            completing = 0.0

            def complete_uploads(self, model_id: str, uploads: list[Any]) -> list[Dataset]:
                started = time.perf_counter()
                try:
                    return super().complete_uploads(model_id, uploads)
                finally:
                    self.completing += time.perf_counter() - started

        with TimedClient(ClientConfig(url=spec["url"], token=spec["token"])) as client:
            cpu, started = time.process_time(), time.perf_counter()
            plan = plan_for(spec["model_id"], [path], "AUDIO", auto_train=False)
            algorithm = {"checksum_algorithm": "SHA256"} if way == SHA256_PARTS else {}
            (dataset,) = Uploader(client, parallel=spec["parallel"], **algorithm).run(plan)
            seconds = time.perf_counter() - started
            out = {"dataset_id": dataset.id, "sha256": dataset.sha256, "completing": client.completing}
    else:
        m = spec["minio"]
        storage = make_client(MinioSettings(endpoint=m[0], access_key=m[1], secret_key=m[2]))
        cpu, started = time.process_time(), time.perf_counter()
        if way == "put_object":
            with path.open("rb") as f:
                storage.put_object(spec["bucket"], spec["key"], f, path.stat().st_size, part_size=PART)
        else:
            storage.fput_object(spec["bucket"], spec["key"], str(path), part_size=PART)
        seconds = time.perf_counter() - started
        out = {}
    cpu = time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({**out, "seconds": seconds, "cpu": cpu, "peak_kib": peak}), flush=True)


def run_child(spec: dict, state_dir: str) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        env={
            **os.environ,
            "VT_STATE_DIR": state_dir,
            **({"PYTHONPATH": spec["client_from"]} if spec["way"] == OTHER_CLIENT else {}),
        },
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{spec['way']} failed: {proc.stderr[-3000:]}")
    return json.loads(next(line for line in reversed(proc.stdout.splitlines()) if line.startswith("{")))


def write_file(folder: Path, size: int) -> tuple[Path, str]:
    """A ``size``-byte file of the generated bytes, and its sha256."""
    path, h = folder / f"bench-{size}.wav", hashlib.sha256()
    with path.open("wb") as f:
        for chunk in generated(size):
            f.write(chunk)
            h.update(chunk)
    return path, h.hexdigest()


def stored_sha256(storage: Minio, bucket: str, key: str) -> str:
    h = hashlib.sha256()
    response = storage.get_object(bucket, key)
    try:
        for chunk in response.stream(MiB):
            h.update(chunk)
    finally:
        response.close()
        response.release_conn()
    return h.hexdigest()


class SessionArm(Arm):
    """:class:`Arm` plus the client process's peak RSS."""

    def __init__(self) -> None:
        super().__init__()
        self.client_kib: list[int] = []
        self.completing: list[float] = []  # seconds of the session's completion call


async def sessions(args: argparse.Namespace) -> None:
    sizes = args.sizes or ([64 * MB, 256 * MB] if args.quick else [256 * MB, 10**9, 4 * 10**9])
    stack = endpoints()
    minio = MinioSettings(
        endpoint=stack.minio_endpoint, access_key=stack.minio_access_key, secret_key=stack.minio_secret_key
    )
    storage = make_client(minio)
    namespace, bucket = f"bench{uuid.uuid4().hex[:8]}", f"bench-{uuid.uuid4().hex[:10]}"
    ensure_bucket(storage, bucket)
    minio_proc = minio_pid(stack.minio_endpoint)
    port = free_port()
    service = Service("session", start_service(stack, port, namespace, bucket), port, minio_proc)
    token = issue_token(AuthSettings(public_key=PUBLIC_KEY, private_key=PRIVATE_KEY), "bench")
    headers = {"Authorization": "Bearer " + token}
    load_before = os.getloadavg()
    results: list[tuple[int, dict[str, SessionArm]]] = []
    ways = [*SESSION_WAYS, *([OTHER_CLIENT] if args.compare_client else [])]
    with tempfile.TemporaryDirectory(prefix="bench-upload-", dir=args.dir) as tmp:
        try:
            await wait_ready(service.client, service.proc)
            mid = await announce_model(stack, Topics(namespace), service.client, headers)
            rss_idle = status_kb(service.proc.pid, "VmRSS")
            for size in sizes:
                path, digest = write_file(Path(tmp), size)
                arms = {way: SessionArm() for way in ways}
                for rep in range(args.reps):
                    for way in ways[rep % len(ways) :] + ways[: rep % len(ways)]:
                        spec = {
                            "way": way,
                            "file": str(path),
                            "url": f"http://127.0.0.1:{port}",
                            "token": token,
                            "model_id": str(mid),
                            "parallel": args.parallel_parts,
                            "client_from": args.compare_client,
                            "minio": [stack.minio_endpoint, stack.minio_access_key, stack.minio_secret_key],
                            "bucket": bucket,
                            "key": f"bench/{uuid.uuid4()}",
                        }
                        reset_peak(service.proc.pid)
                        service.clock.start()
                        out = await asyncio.to_thread(run_child, spec, tmp)
                        _, service_cpu, minio_cpu = service.clock.stop()
                        arm = arms[way]
                        arm.seconds.append(out["seconds"])
                        arm.cpu.append((out["cpu"], service_cpu, minio_cpu))
                        arm.client_kib.append(out["peak_kib"])
                        arm.completing.append(out.get("completing", 0.0))
                        arm.peak_kib.append(status_kb(service.proc.pid, "VmHWM"))
                        # after timing: the stored object is the file, byte for byte
                        if way in (*CLIENT_WAYS, OTHER_CLIENT):
                            from voxtrain_datasets.domain import object_key

                            key = object_key("bench", mid, uuid.UUID(out["dataset_id"]))
                        else:
                            key = spec["key"]
                        got = await asyncio.to_thread(stored_sha256, storage, bucket, key)
                        assert got == digest, f"{way}: stored sha256 {got} is not the file's {digest}"
                        assert out.get("sha256", digest) == digest, f"{way}: the dataset records {out['sha256']}"
                        if way in (*CLIENT_WAYS, OTHER_CLIENT):
                            url = f"/v1/models/{mid}/datasets/{out['dataset_id']}"
                            r = await service.client.delete(url, headers=headers)
                            assert r.status_code == 204, r.text
                        else:
                            storage.remove_object(bucket, key)
                    print(
                        rep_line(size, rep, arms, f"session's completion {arms['session'].completing[-1]:.1f} s"),
                        flush=True,
                    )
                path.unlink()
                results.append((size, arms))
        finally:
            await service.stop()
    loads = " → ".join("/".join(f"{x:.1f}" for x in load) for load in (load_before, os.getloadavg()))
    print(
        f"\n{args.reps} interleaved repetitions per size, medians; part size {PART // MiB} MiB; session client"
        f" {args.parallel_parts} parts at once, put_object/fput_object 3 (minio-py's default); {os.cpu_count()} CPUs;"
        f" load average (1/5/15 min) {loads}; service RSS when idle {rss_idle / 1024:.0f} MiB"
    )
    print("ratio: median over the repetitions of put_object's time / the way's time")
    print("CPU s/GB: client / service / MinIO (MinIO's includes whatever else used it meanwhile; the service's,")
    print("for the direct ways, is its idle work)")
    print("| size | way | MB/s | ratio to put_object | client peak RSS | service peak RSS | CPU s/GB |")
    print("|---|---|---|---|---|---|---|")
    for size, arms in results:
        put = arms["put_object"]
        for way, arm in arms.items():
            cpu = arm.cpu_per_gb(size)
            print(
                f"| {human(size)} | {way} | {arm.rate(size):.1f} | "
                + (f"{arm.ratio_to(put):.2f}" if arm is not put else "–")
                + f" | {max(arm.client_kib) / 1024:.0f} MiB"
                + (f" | {max(arm.peak_kib) / 1024:.0f} MiB" if way in (*CLIENT_WAYS, OTHER_CLIENT) else " | –")
                + f" | {cpu[0]:.1f} / {cpu[1]:.1f} / {cpu[2]:.1f} |"
            )
    for size, arms in results:
        s = arms["session"]
        print(
            f"{human(size)}: the session's completion (the service checks the parts and assembles the object)"
            f" took {statistics.median(s.completing):.1f} s of {statistics.median(s.seconds):.1f} s (medians)"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="64 MB and 256 MB instead of 256 MB and 1 GB")
    parser.add_argument("--sizes", type=int, nargs="*", help="sizes in bytes (override)")
    parser.add_argument("--reps", type=int, default=3, help="interleaved repetitions of every way per size")
    parser.add_argument(
        "--plain-server", action="store_true", help="also upload through a replica under uvicorn's h11 + asyncio"
    )
    parser.add_argument("--parallel", type=int, default=0, help="N uploads at once: peak RSS without and with a budget")
    parser.add_argument("--parallel-size", type=int, default=128 * MB, help="bytes of each parallel upload")
    parser.add_argument("--budget", type=int, default=128 * MiB, help="upload memory budget of the --parallel run")
    parser.add_argument("--sessions", action="store_true", help="resumable sessions (voxtrain upload) vs put_object")
    parser.add_argument("--parallel-parts", type=int, default=4, help="--sessions: the client's parts at once")
    parser.add_argument("--dir", help="--sessions: where to write the files (default: the temp folder)")
    parser.add_argument(
        "--compare-client",
        metavar="DIR",
        help="--sessions: also upload with the client library found in DIR (e.g. main's client/src, unpacked)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    if args.sessions:
        await sessions(args)
        return
    if args.parallel:
        await parallel(args.parallel, args.parallel_size, args.budget)
        return
    sizes = args.sizes or ([64 * MB, 256 * MB] if args.quick else [256 * MB, 10**9])

    stack = endpoints()
    namespace, bucket = f"bench{uuid.uuid4().hex[:8]}", f"bench-{uuid.uuid4().hex[:10]}"
    schema = f"bench_{uuid.uuid4().hex[:8]}"  # replicas of one service share its schema
    minio = MinioSettings(
        endpoint=stack.minio_endpoint, access_key=stack.minio_access_key, secret_key=stack.minio_secret_key
    )
    ensure_bucket(make_client(minio), bucket)
    minio_proc = minio_pid(stack.minio_endpoint)
    services: list[Service] = []
    for label, server in [("service", None), *([("service h11+asyncio", PLAIN_SERVER)] if args.plain_server else [])]:
        port = free_port()
        services.append(
            Service(label, start_service(stack, port, namespace, bucket, schema=schema, run=server), port, minio_proc)
        )
    headers = {
        "Authorization": "Bearer " + issue_token(AuthSettings(public_key=PUBLIC_KEY, private_key=PRIVATE_KEY), "bench")
    }
    load_before = os.getloadavg()
    results: list[tuple[int, dict[str, Arm]]] = []
    try:
        for service in services:
            await wait_ready(service.client, service.proc)
        mid = await announce_model(stack, Topics(namespace), services[0].client, headers)
        rss_idle = status_kb(services[0].proc.pid, "VmRSS")
        direct_clock = CpuClock(services[0].proc.pid, minio_proc)

        async def direct_once(size: int, arm: Arm) -> None:
            direct_clock.start()
            arm.seconds.append(await asyncio.to_thread(direct, minio, bucket, size))
            arm.cpu.append(direct_clock.stop())

        ways: list[tuple[str, Callable[[int, Arm], Awaitable[None]]]] = [
            *((s.label, functools.partial(s.upload, mid, headers)) for s in services),
            ("put_object", direct_once),
        ]
        for size in sizes:
            arms = {label: Arm() for label, _ in ways}
            for rep in range(args.reps):  # rotate which goes first, so a trend in the load hits every way
                for label, run in ways[rep % len(ways) :] + ways[: rep % len(ways)]:
                    await run(size, arms[label])
                print(
                    rep_line(size, rep, arms, f"service peak RSS {arms['service'].peak_kib[-1] / 1024:.0f} MiB"),
                    flush=True,
                )
            results.append((size, arms))
    finally:
        for service in services:
            await service.stop()
    loads = " → ".join("/".join(f"{x:.1f}" for x in load) for load in (load_before, os.getloadavg()))
    print(
        f"\n{args.reps} interleaved repetitions per size, medians; part size {PART // MiB} MiB; {os.cpu_count()} CPUs;"
        f" load average (1/5/15 min) {loads}; service RSS when idle {rss_idle / 1024:.0f} MiB"
    )
    print(
        "ratio: median over the repetitions of put_object's time / the way's time; CPU s/GB: client / service / MinIO"
    )
    print("(MinIO's includes whatever else used it meanwhile)")
    print("| size | way | MB/s | ratio to put_object | service peak RSS (max) | CPU s/GB |")
    print("|---|---|---|---|---|---|")
    for size, arms in results:
        put = arms["put_object"]
        for label, arm in arms.items():
            cpu = arm.cpu_per_gb(size)
            print(
                f"| {human(size)} | {label} | {arm.rate(size):.1f}"
                + (f" | {arm.ratio_to(put):.2f} | {max(arm.peak_kib) / 1024:.0f} MiB" if arm is not put else " | – | –")
                + f" | {cpu[0]:.1f} / {cpu[1] if arm is not put else 0:.1f} / {cpu[2]:.1f} |"
            )


if __name__ == "__main__":
    asyncio.run(main())
