"""Many at once: N models of several tenants upload and train together, on one and then two replicas of every
service; trainings per minute, Train → RUNNING as a plain status-topic consumer sees it, lost/stuck/duplicated.

One command (the servers from ``VOXTRAIN_TEST_*`` when set — ``source /work/test-env.sh`` — else the local dev
stack)::

    uv run python -m bench.fleet.bench_fleet            # 50 models over 5 tenants
    uv run python -m bench.fleet.bench_fleet --quick    # 10 models over 2 tenants

For each replica count (1, then 2) it starts its own processes of identity, models, datasets, validator and
trainer (``voxtrain-<name>``, each replica on its own HTTP port, replicas of a service sharing its schema and
consumer group; one training at a time per trainer replica) in a fresh topic namespace, schema set and bucket.
Each tenant gets an API key from identity (created with an operator token, as ``voxtrain token`` makes) and
exchanges it for short-lived bearer tokens. Every model is created with ``auto_train: false``, gets a small
transcript (and a test transcript) uploaded, then Train; a plain aiokafka consumer of the status topic, in a
group of its own, records every ``TrainingStatusChanged``. The same workload runs on both replica counts.

It prints, per replica count: trainings per minute (first Train sent → last 4/5 received), p50/p99 of Train →
RUNNING, RUNNING → done, what one training cost (the run's stage durations and the trainer processes' CPU
seconds per training), the machine's load; the 2-vs-1 ratio; and lost / stuck / duplicated with the model ids
and their events. Results go to ``bench/results/fleet.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from bench.fleet import cpu as cpuacct
from bench.fleet.ledger import Seen, Track, Verdict, judge, occupancy, percentile
from tests._stack import from_env
from tests.support import free_ports
from voxtrain_devstack import Endpoints
from voxtrain_devstack.services import script
from voxtrain_devstack.topics import delete_topics
from voxtrain_shared.auth import generate_key_pair, issue_token
from voxtrain_shared.settings import AuthSettings
from voxtrain_shared.topics import Topics

SERVICES = ("identity", "models", "datasets", "validator", "trainer")
RESULTS = Path(__file__).resolve().parents[1] / "results" / "fleet.json"
LOGS = RESULTS.parent / "fleet-logs"  #: each phase's service logs and work directories (kept for a post-mortem)
#: The sentences every model's small transcript is drawn from (a cardiology ward's notes).
SENTENCES = [
    "the patient was started on metoprolol twenty five milligrams twice daily",
    "continue lisinopril ten milligrams once daily for hypertension",
    "the echocardiogram showed normal left ventricular function",
    "troponin was elevated on admission and trended down overnight",
    "an electrocardiogram shows st elevation in the anterior leads",
    "start aspirin and heparin and call the cardiology team",
    "blood pressure is one hundred forty over ninety",
    "the patient denies chest pain shortness of breath or palpitations",
    "atrial fibrillation with rapid ventricular response was noted",
    "warfarin was held because the international normalized ratio was high",
    "cardiac catheterization showed a ninety percent stenosis of the left anterior descending artery",
    "a drug eluting stent was placed without complications",
    "follow up in the heart failure clinic in two weeks",
    "furosemide forty milligrams intravenously was given for volume overload",
    "the chest x ray shows mild pulmonary edema",
    "repeat the basic metabolic panel in the morning",
]
#: A tenant's streamed uploads in progress at once (the datasets service's default per-tenant cap is 4).
UPLOADS_PER_TENANT = 4
#: Seconds the started fleet is watched with no work before the workload (each component's background CPU).
IDLE_SECONDS = 10.0


def say(message: str) -> None:
    print(f"[fleet {time.strftime('%H:%M:%S')}] {message}", flush=True)


def endpoints() -> Endpoints:
    """The servers named by ``VOXTRAIN_TEST_*`` (the shared test servers), else the local dev stack."""
    named = from_env()
    if named is not None:
        return named
    from voxtrain_devstack import ensure_up

    return ensure_up()


def corpus(seed: int, sentences: int) -> str:
    """A model's small transcript: ``sentences`` lines drawn from :data:`SENTENCES` (different per model)."""
    rng = random.Random(seed)
    return "\n".join(rng.choice(SENTENCES) for _ in range(sentences)) + "\n"


# ---------------------------------------------------------------------------------------------- processes


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


@dataclass
class Replica:
    service: str
    index: int
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Fleet:
    """``replicas`` processes of every service on the shared servers, in a namespace of their own."""

    servers: Endpoints
    keys: tuple[str, str]  #: (private, public): the run's token signing key; only identity gets the private one
    replicas: int
    work: Path
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    procs: dict[str, list[Replica]] = field(default_factory=dict)

    @property
    def namespace(self) -> str:
        return f"fleet{self.run_id}"

    @property
    def topics(self) -> Topics:
        return Topics(self.namespace)

    def env(self, name: str, port: int, index: int) -> dict[str, str]:
        env = {
            **os.environ,
            **self.servers.as_env(),
            "VOXTRAIN_ENVIRONMENT": "local",
            "VOXTRAIN_HTTP__HOST": "127.0.0.1",
            "VOXTRAIN_HTTP__PORT": str(port),
            "VOXTRAIN_AUTH__PUBLIC_KEY": self.keys[1],
            "VOXTRAIN_KAFKA__TOPIC_NAMESPACE": self.namespace,
            "VOXTRAIN_POSTGRES__SCHEMA": f"{name}_{self.namespace}",  # replicas of a service share theirs
            "VOXTRAIN_MINIO__BUCKET": f"fleet-{self.run_id}",
            "VOXTRAIN_WORK_DIR": str(self.work / f"{name}-{index}"),
            "VOXTRAIN_LOG_LEVEL": "INFO",
        }
        env.pop("VOXTRAIN_AUTH__PRIVATE_KEY", None)  # a shell's stack key would not match this run's public key
        if name == "identity":
            env["VOXTRAIN_AUTH__PRIVATE_KEY"] = self.keys[0]
        if name == "trainer":
            env["VOXTRAIN_PARALLEL_TRAININGS"] = "1"  # one training at a time per trainer replica
        return env

    async def start(self, timeout: float = 600.0) -> None:
        """Replica 0 of every service first (it creates the schema and topics), then the others."""
        ports = iter(free_ports(len(SERVICES) * self.replicas))
        for index in range(self.replicas):
            started = [self._spawn(name, index, next(ports)) for name in SERVICES]
            await asyncio.gather(*(self._live(r, timeout) for r in started))

    def _spawn(self, name: str, index: int, port: int) -> Replica:
        log = self.work / f"{name}-{index}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [script(name)],
                env=self.env(name, port, index),
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.work,
                start_new_session=True,
            )
        r = Replica(name, index, port, proc, log)
        self.procs.setdefault(name, []).append(r)
        return r

    async def _live(self, r: Replica, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if r.proc.poll() is not None:
                    raise SystemExit(f"{r.service}-{r.index} exited ({r.proc.returncode}); see {r.log}")
                with contextlib.suppress(httpx.TransportError):
                    # live, not ready: under load the readiness probe's 3-second Kafka ping often times out
                    # although the consumers run (the dev stack waits for live too)
                    if (await client.get(r.url + "/health/live")).status_code == 200:
                        return
                await asyncio.sleep(0.5)
        raise SystemExit(f"{r.service}-{r.index} was not live within {timeout:.0f} s; see {r.log}")

    def urls(self, name: str) -> list[str]:
        return [r.url for r in self.procs[name]]

    def started_here(self, name: str) -> dict[str, int]:
        """Per replica of ``name``: how many runs its log says it started (is the work shared?)."""
        return {
            f"{r.service}-{r.index}": r.log.read_text(errors="replace").count('"training_started"')
            for r in self.procs[name]
        }

    def cpu(self) -> cpuacct.Account:
        """CPU seconds so far per component (each service's processes, their children, the servers, the bench)."""
        return cpuacct.account({f"{r.service}-{r.index}": [r.proc.pid] for rs in self.procs.values() for r in rs})

    async def stop(self) -> None:
        """Stop every replica, then delete the phase's topics (a shared broker keeps two open files per partition)."""
        await self._stop_processes()
        await forget_topics(self.servers.kafka_bootstrap, self.namespace)

    async def _stop_processes(self) -> None:
        everyone = [r for rs in self.procs.values() for r in rs]
        for r in everyone:
            if r.proc.poll() is None:
                r.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        while any(r.proc.poll() is None for r in everyone) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        for r in everyone:
            if r.proc.poll() is None:
                r.proc.kill()
                r.proc.wait()


async def forget_topics(bootstrap: str, namespace: str) -> None:
    """Delete the topics of ``namespace`` (best effort: a failure is only reported)."""
    try:
        await delete_topics(bootstrap, lambda topic: topic.startswith(f"{namespace}."))
    except Exception as exc:  # the phase's results stand; the topics are only left behind
        say(f"could not delete the topics of {namespace}: {exc!r}")


async def partitions(bootstrap: str, topics: list[str]) -> dict[str, int]:
    """How many partitions each of ``topics`` has (what lets a second replica share the work)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    return {t["topic"]: len(t["partitions"]) for t in described}


# ---------------------------------------------------------------------------------------------- clients


class Tenant:
    """One tenant's API key (created once through identity) and the short-lived tokens it is exchanged for."""

    def __init__(self, name: str, identity: list[str], client: httpx.AsyncClient) -> None:
        self.name, self._identity, self._client = name, identity, client
        self._key = ""
        self._token, self._expires = "", 0.0
        self._lock = asyncio.Lock()
        self.uploads = asyncio.Semaphore(UPLOADS_PER_TENANT)

    async def enrol(self, signing: AuthSettings) -> None:
        operator = issue_token(signing, self.name, ttl_seconds=600)  # what `voxtrain token TENANT` prints
        r = await self._client.post(
            random.choice(self._identity) + "/v1/api-keys",
            json={"label": "fleet benchmark"},
            headers={"Authorization": f"Bearer {operator}"},
        )
        r.raise_for_status()
        self._key = r.json()["key"]

    async def headers(self) -> dict[str, str]:
        async with self._lock:
            if time.monotonic() > self._expires:
                r = await self._client.post(
                    random.choice(self._identity) + "/v1/auth/token", json={"api_key": self._key}
                )
                r.raise_for_status()
                body = r.json()
                self._token = body["access_token"]
                self._expires = time.monotonic() + body["expires_in"] * 0.75
        return {"Authorization": f"Bearer {self._token}"}


class Api:
    """Requests spread over a service's replicas at random (what a load balancer in front of them would do)."""

    def __init__(self, fleet: Fleet, client: httpx.AsyncClient) -> None:
        self._fleet, self.client = fleet, client

    async def call(self, tenant: Tenant, service: str, method: str, path: str, **kw: Any) -> httpx.Response:
        """One request; a refusal for being busy (429/503) is repeated after the wait it names."""
        while True:
            url = random.choice(self._fleet.urls(service)) + path
            r = await self.client.request(method, url, headers=await tenant.headers(), **kw)
            if r.status_code not in (429, 503):
                return r
            await asyncio.sleep(float(r.headers.get("retry-after", "1")))


@dataclass
class Workload:
    models: int
    tenants: int
    sentences: int
    test_dataset: bool
    audio_every: int = 0  # every n-th model also uploads a recording with its VTT (0: none)
    recordings: list[tuple[Path, Path]] = field(default_factory=list)  # (wav, vtt) pairs they take in turn

    def recording_of(self, index: int) -> tuple[Path, Path] | None:
        if not self.audio_every or index % self.audio_every or not self.recordings:
            return None
        return self.recordings[index // self.audio_every % len(self.recordings)]


def recordings(directory: Path, count: int, per_recording: int) -> list[tuple[Path, Path]]:
    """``count`` espeak-ng recordings of ``per_recording`` of :data:`SENTENCES` each (voices and speeds rotating,
    silence between), each with a VTT of its cues: what a customer's AUDIO dataset with its transcript is."""
    from tests.trainer.recordings import long_recordings

    sentences = [SENTENCES[(i * 5) % len(SENTENCES)] for i in range(count * per_recording)]
    return long_recordings(sentences, directory, per_recording)


async def one_model(api: Api, tenant: Tenant, index: int, work: Workload, track: dict[str, Track]) -> str | None:
    """Create, upload, Train; returns a complaint (None when all three were accepted)."""
    r = await api.call(
        tenant,
        "models",
        "POST",
        "/v1/models",
        json={"name": f"fleet-{index}", "language": "en-US", "auto_train": False},
    )
    if r.status_code != 201:
        return f"model {index}: create answered {r.status_code} {r.text[:200]}"
    mid = r.json()["id"]
    t = track.setdefault(mid, Track(mid, tenant.name))
    uploads = [("TRANSCRIPT", "notes.txt", corpus(index, work.sentences))]
    if work.test_dataset:
        uploads.append(("TEST", "test.txt", corpus(10_000 + index, max(2, work.sentences // 10))))
    files = {kind: [("files", (name, text.encode(), "text/plain"))] for kind, name, text in uploads}
    if (recording := work.recording_of(index)) is not None:  # types from the extensions: AUDIO, TRANSCRIPT
        files["TRANSCRIPT"] += [("files", (p.name, p.read_bytes(), "application/octet-stream")) for p in recording]
    for kind, parts in files.items():
        async with tenant.uploads:
            query = "" if len(parts) > 1 else f"?type={kind}"
            r = await api.call(tenant, "datasets", "POST", f"/v1/models/{mid}/datasets{query}", files=parts)
        if r.status_code != 201:
            return f"model {mid}: upload of {kind} answered {r.status_code} {r.text[:200]}"
    # The models service learns of the datasets from their DatasetUploaded events: right after the upload's 201,
    # Train may still be refused with 409 no_datasets. A client tries again (the client library does); counted.
    first = time.monotonic()
    while True:
        t.train_sent = time.time()
        r = await api.call(tenant, "models", "POST", f"/v1/models/{mid}/train")
        t.train_answer = r.status_code
        if r.status_code != 409 or r.json()["error"]["code"] != "no_datasets" or time.monotonic() - first > 60:
            break
        t.train_refusals += 1
        await asyncio.sleep(0.5)
    return None if r.status_code == 202 else f"model {mid}: Train answered {r.status_code} {r.text[:200]}"


@contextlib.asynccontextmanager
async def status_reader(bootstrap: str, topic: str, track: dict[str, Track]) -> AsyncIterator[list[dict[str, Any]]]:
    """A plain aiokafka consumer of the status topic in a group of its own, from the beginning: every
    ``TrainingStatusChanged`` goes to its model's track (also those of models not created by us: listed)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"fleet-reader-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
    )
    strays: list[dict[str, Any]] = []
    await consumer.start()

    async def read() -> None:
        async for record in consumer:
            env = json.loads(record.value)
            if env.get("type") != "TrainingStatusChanged":
                continue
            data = env["data"]
            seen = Seen(env["id"], data.get("old_status") or 0, data["new_status"], time.time())
            mid = env["model_id"]
            if mid in track:
                track[mid].events.append(seen)
            else:
                strays.append(env)

    task = asyncio.create_task(read())
    try:
        yield strays
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await consumer.stop()


@dataclass
class Phase:
    replicas: int
    verdict: Verdict
    tracks: list[Track]
    complaints: list[str]
    partitions: dict[str, int]
    trainer_cpu_seconds: float
    service_cpu_seconds: dict[str, float]  #: CPU of each service's processes (workers too) during the workload
    cpu: cpuacct.Account  #: CPU seconds per component during the workload (see bench/fleet/cpu.py)
    idle: cpuacct.Account  #: CPU seconds per component in IDLE_SECONDS before the workload
    machine_busy_percent: float
    load_before: str
    load_after: str
    stage_seconds: dict[str, float]  #: mean per stage over the successful runs (the runs' own metrics)
    failures: dict[str, int]  #: error code -> models that ended at 5 with it
    strays: int
    runs_per_trainer: dict[str, int]  #: training attempts each trainer replica started


async def run_phase(servers: Endpoints, keys: tuple[str, str], replicas: int, work: Workload, deadline: float) -> Phase:
    signing = AuthSettings(public_key=keys[1], private_key=keys[0])
    LOGS.mkdir(parents=True, exist_ok=True)
    work_dir = Path(tempfile.mkdtemp(prefix=f"{replicas}-replicas-", dir=LOGS))
    fleet = Fleet(servers, keys, replicas, work_dir)
    say(f"{replicas} replica(s): starting {len(SERVICES) * replicas} service processes in {fleet.namespace}")
    say(f"  their logs and work directories: {work_dir}")
    try:
        await fleet.start()
        return await _measure(fleet, servers, signing, work, deadline)
    finally:
        await fleet.stop()


async def _measure(fleet: Fleet, servers: Endpoints, signing: AuthSettings, work: Workload, deadline: float) -> Phase:
    topics = fleet.topics
    counts = await partitions(servers.kafka_bootstrap, topics.all())
    track: dict[str, Track] = {}
    limits = httpx.Limits(max_connections=64)
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(60.0), limits=limits) as client,
        status_reader(servers.kafka_bootstrap, topics.status, track) as strays,
    ):
        tenants = [Tenant(f"fleet-tenant-{i}", fleet.urls("identity"), client) for i in range(work.tenants)]
        await asyncio.gather(*(t.enrol(signing) for t in tenants))
        api = Api(fleet, client)
        idle_from = fleet.cpu()
        await asyncio.sleep(IDLE_SECONDS)  # the fleet's background: what every component costs with no work
        idle = fleet.cpu().minus(idle_from)
        load_before, cpu_before = loadavg(), fleet.cpu()
        say(f"{work.models} models over {work.tenants} tenants: create, upload, Train (load {load_before})")
        complaints = [
            c
            for c in await asyncio.gather(
                *(one_model(api, tenants[i % len(tenants)], i, work, track) for i in range(work.models))
            )
            if c
        ]
        for c in complaints:
            say(c)
        accepted = [t for t in track.values() if t.train_answer == 202]
        say(f"{len(accepted)} Trains accepted; waiting for 4/5 on the status topic (at most {deadline:.0f} s)")
        end = time.monotonic() + deadline
        last_report = 0.0
        while time.monotonic() < end and any(t.terminal is None for t in accepted):
            await asyncio.sleep(0.5)
            if time.monotonic() - last_report > 30:
                done = sum(t.terminal is not None for t in accepted)
                say(f"  {done}/{len(accepted)} at 4/5 (load {loadavg()})")
                last_report = time.monotonic()
        await asyncio.sleep(2.0)  # late duplicates, if any, arrive now
        used = fleet.cpu().minus(cpu_before)
        finals = await asyncio.gather(
            *(
                api.call(next(x for x in tenants if x.name == t.tenant), "models", "GET", f"/v1/models/{t.model_id}")
                for t in accepted
            )
        )
    stages: dict[str, list[float]] = {}
    failures: dict[str, int] = {}
    for r in finals:
        body = r.json()
        if body["status"]["code"] == 4:
            for stage, seconds in ((body.get("run") or {}).get("metrics") or {}).get("durations", {}).items():
                stages.setdefault(stage, []).append(seconds)
        elif body["status"]["code"] == 5:
            code = (body.get("last_error") or {}).get("code", "?")
            failures[code] = failures.get(code, 0) + 1
    verdict = judge(list(track.values()))
    return Phase(
        replicas=fleet.replicas,
        verdict=verdict,
        tracks=list(track.values()),
        complaints=complaints,
        partitions=counts,
        trainer_cpu_seconds=used.components["trainer parent"] + used.components["trainer children"],
        service_cpu_seconds={
            name: used.components[f"{name} parent"] + used.components[f"{name} children"] for name in SERVICES
        },
        cpu=used,
        idle=idle,
        machine_busy_percent=100.0 * used.busy / max(1.0, used.total),
        load_before=load_before,
        load_after=loadavg(),
        stage_seconds={k: sum(v) / len(v) for k, v in sorted(stages.items())},
        failures=failures,
        strays=len(strays),
        runs_per_trainer=fleet.started_here("trainer"),
    )


# ---------------------------------------------------------------------------------------------- report


def fmt(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f} s"


def describe(p: Phase) -> Iterator[str]:
    v = p.verdict
    yield (
        f"{p.replicas} replica(s): {v.succeeded}/{v.accepted} trained (failed {v.failed}) in {v.wall_seconds:.0f} s "
        f"= {v.per_minute:.2f} trainings/min"
    )
    to_run, to_done = v.train_to_running, v.running_to_done
    yield (
        f"  Train → RUNNING p50 {fmt(percentile(to_run, 50))}, p99 {fmt(percentile(to_run, 99))}"
        f"; RUNNING → done p50 {fmt(percentile(to_done, 50))}, p99 {fmt(percentile(to_done, 99))}"
    )
    per = p.trainer_cpu_seconds / v.succeeded if v.succeeded else 0.0
    yield (
        f"  trainer CPU {p.trainer_cpu_seconds:.0f} s ({per:.1f} s per training); machine busy "
        f"{p.machine_busy_percent:.0f}% of {os.cpu_count()} CPUs; load {p.load_before} → {p.load_after}"
    )
    if v.succeeded:
        each = {k: s / v.succeeded for k, s in p.service_cpu_seconds.items()}
        total = sum(each.values())
        yield (
            f"  CPU per training, all services: {total:.1f} s ("
            + ", ".join(f"{k} {s:.1f}" for k, s in each.items())
            + f"; shared Kafka/PostgreSQL/MinIO not counted) → at most {60 * (os.cpu_count() or 1) / total:.1f}"
            " trainings/min on this machine's CPUs"
        )
    if v.succeeded:
        yield "  CPU-s per training by component: " + ", ".join(f"{k} {s:.2f}" for k, s in per_training(p).items())
        yield "  of which background (idle CPU-s per second × the workload's seconds, per training): " + ", ".join(
            f"{k} {s:.2f}" for k, s in background(p).items()
        )
    yield "  share of the window with k trainings running: " + ", ".join(
        f"{k}: {share:.0%}" for k, share in running_shares(p).items()
    )
    yield f"  runs started per trainer replica: {p.runs_per_trainer}"
    yield "  a run's stages (mean s): " + ", ".join(f"{k} {s:.2f}" for k, s in p.stage_seconds.items())
    yield f"  lost {len(v.lost)}, stuck {len(v.stuck)}, duplicated {len(v.duplicated)} (gaps {len(v.gapped)})"
    refused = [t.train_refusals for t in p.tracks if t.train_refusals]
    if refused:
        yield (
            f"  Train right after a 201 upload refused 409 'no datasets' (the upload's event not yet seen by models): "
            f"{len(refused)} models, {sum(refused)} times"
        )
    by_id = {t.model_id: t for t in p.tracks}
    for label, ids in (("lost", v.lost), ("stuck", v.stuck), ("duplicated", v.duplicated), ("gap", v.gapped)):
        for mid in ids:
            t = by_id[mid]
            yield f"    {label} {mid} ({t.tenant}): " + ", ".join(f"{e.old}→{e.new} {e.event_id}" for e in t.events)
    if p.failures:
        yield f"  failed with: {p.failures}"
    small = {t: n for t, n in p.partitions.items() if n < 2}
    if small:
        yield f"  topics with fewer than 2 partitions (a second replica idles on them): {small}"


def per_training(p: Phase) -> dict[str, float]:
    """CPU seconds per successful training of every component, largest first; then the machine's total busy time
    and what no component accounts for (other users of the machine, the kernel)."""
    n = max(1, p.verdict.succeeded)
    parts = dict(sorted(((k, s / n) for k, s in p.cpu.components.items()), key=lambda kv: -kv[1]))
    return parts | {"other": cpuacct.other(p.cpu) / n, "machine busy": p.cpu.busy / n}


def running_shares(p: Phase) -> dict[int, float]:
    """Of the window (first Train → last 4/5), the share with k trainings running: with n replicas, k < n is a
    replica without a training (waiting for work, handing over between runs)."""
    v = p.verdict
    if v.first_train is None or v.last_terminal is None:
        return {}
    return occupancy(p.tracks, v.first_train, v.last_terminal)


def background(p: Phase) -> dict[str, float]:
    """What each component would have cost per training had it stayed as busy as when idle for the whole workload
    (the fleet's polling and heartbeats, and other users of the shared servers), largest first."""
    scale = p.verdict.wall_seconds / IDLE_SECONDS / max(1, p.verdict.succeeded)
    idle = p.idle.components | {"other": cpuacct.other(p.idle)}
    return dict(sorted(((k, s * scale) for k, s in idle.items() if s * scale >= 0.005), key=lambda kv: -kv[1]))


def to_json(p: Phase) -> dict[str, Any]:
    v = p.verdict
    return {
        "replicas": p.replicas,
        "models": v.accepted,
        "succeeded": v.succeeded,
        "failed": v.failed,
        "failures": p.failures,
        "seconds": round(v.wall_seconds, 2),
        "trainings_per_minute": round(v.per_minute, 3),
        "train_to_running_p50": percentile(v.train_to_running, 50),
        "train_to_running_p99": percentile(v.train_to_running, 99),
        "running_to_done_p50": percentile(v.running_to_done, 50),
        "running_to_done_p99": percentile(v.running_to_done, 99),
        "lost": v.lost,
        "stuck": v.stuck,
        "duplicated": v.duplicated,
        "gapped": v.gapped,
        "trainer_cpu_seconds": round(p.trainer_cpu_seconds, 1),
        "service_cpu_seconds": {k: round(s, 1) for k, s in p.service_cpu_seconds.items()},
        "cpu_seconds": {k: round(s, 2) for k, s in p.cpu.components.items()}
        | {"other": round(cpuacct.other(p.cpu), 2), "machine_busy": round(p.cpu.busy, 2)},
        "cpu_seconds_per_training": {k: round(s, 3) for k, s in per_training(p).items()},
        "idle_cpu_seconds": {k: round(s, 3) for k, s in p.idle.components.items()}
        | {"other": round(cpuacct.other(p.idle), 3), "seconds": IDLE_SECONDS},
        "background_cpu_seconds_per_training": {k: round(s, 3) for k, s in background(p).items()},
        "share_with_k_running": {str(k): round(s, 4) for k, s in running_shares(p).items()},
        "machine_busy_percent": round(p.machine_busy_percent, 1),
        "load_before": p.load_before,
        "load_after": p.load_after,
        "stage_seconds": {k: round(s, 3) for k, s in p.stage_seconds.items()},
        "partitions": p.partitions,
        "complaints": p.complaints,
        "stray_events": p.strays,
        "runs_per_trainer": p.runs_per_trainer,
        "train_refusals_no_datasets": sum(t.train_refusals for t in p.tracks),
        "events": {t.model_id: [asdict(e) | {"train_sent": t.train_sent} for e in t.events] for t in p.tracks},
    }


def ratios_of(phases: list[Phase]) -> dict[int, float]:
    """Trainings per minute of each replica count against one replica's, measured in the same run."""
    base = next((p for p in phases if p.replicas == 1), None)
    if base is None or base.verdict.per_minute <= 0:
        return {}
    return {p.replicas: p.verdict.per_minute / base.verdict.per_minute for p in phases if p is not base}


def write_results(work: Workload, phases: list[Phase]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    body = {
        "workload": asdict(work),
        "cpus": os.cpu_count(),
        "phases": [to_json(p) for p in phases],
        "ratio_vs_one_replica": {str(k): round(v, 3) for k, v in ratios_of(phases).items()},
    }
    results = RESULTS.with_name("fleet-audio.json") if work.audio_every else RESULTS  # the text-only run's kept
    results.write_text(json.dumps(body, indent=2, default=str) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 models over 2 tenants")
    parser.add_argument("--models", type=int, help="models (default 50; --quick 10)")
    parser.add_argument("--tenants", type=int, help="tenants the models are spread over (default 5; --quick 2)")
    parser.add_argument("--sentences", type=int, default=40, help="lines of each model's transcript")
    parser.add_argument("--no-test-dataset", action="store_true", help="upload only the transcript")
    parser.add_argument(
        "--audio-every", type=int, default=0, help="every n-th model also uploads a recording with its .vtt (0: none)"
    )
    parser.add_argument("--audio-sentences", type=int, default=8, help="sentences spoken in each such recording")
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2], help="replica counts to run, in order")
    parser.add_argument("--deadline", type=float, default=1800.0, help="seconds after the last Train to wait for 4/5")
    args = parser.parse_args()
    work = Workload(
        models=args.models or (10 if args.quick else 50),
        tenants=args.tenants or (2 if args.quick else 5),
        sentences=args.sentences,
        test_dataset=not args.no_test_dataset,
        audio_every=args.audio_every,
    )
    if work.audio_every:
        spool = Path(tempfile.mkdtemp(prefix="fleet-audio-"))
        work.recordings = recordings(spool, 4, args.audio_sentences)
        say(f"one model in {work.audio_every} uploads one of {len(work.recordings)} recordings too ({spool})")
    servers, keys = endpoints(), generate_key_pair()
    phases: list[Phase] = []
    for n in args.replicas:
        phases.append(asyncio.run(run_phase(servers, keys, n, work, args.deadline)))
        write_results(work, phases)  # what is measured is kept, even when a later phase fails
        for line in describe(phases[-1]):
            say(line)
    print()
    for phase in phases:
        for line in describe(phase):
            print(line)
    for n, ratio in ratios_of(phases).items():
        print(f"{n} replicas vs 1: {ratio:.2f}x trainings per minute (goal for 2: >= 1.7x)")
        if ratio > n:
            print(
                f"  (more than {n}x: the phases ran under different outside load, or the fleet won more of a contended"
                " CPU with more workers runnable; compare the loads and the CPU seconds per training above)"
            )
    bad = {k: sum(len(getattr(p.verdict, k)) for p in phases) for k in ("lost", "stuck", "duplicated")}
    print(", ".join(f"{k} {n}" for k, n in bad.items()))
    print(f"wrote {RESULTS.with_name('fleet-audio.json') if work.audio_every else RESULTS}")
    if any(bad.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
