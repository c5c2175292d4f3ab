"""A big training end to end through the services: upload → validation → training → status 4.

One command (the shared servers from ``VOXTRAIN_TEST_*`` when set, else the local dev stack)::

    uv run python bench/e2e/bench_big_training.py            # a 1 GB transcript, then 2 hours of audio
    uv run python bench/e2e/bench_big_training.py --quick    # 50 MB and 10 minutes
    uv run python bench/e2e/bench_big_training.py --scenario text --text-mb 200

It starts models, datasets, validator and trainer as their own processes (``voxtrain-<service>``) on a fresh
topic namespace, schema per service and bucket (the storage services with their own least-privileged MinIO
users, as deployed), signs the tenant's tokens with a key pair of this run, and grants the tenant enough credits
through the models service's free allowance. Then, per scenario:

- **text**: a transcript of ``--text-mb`` MB of English-like text (sentences of words drawn from the base
  dictionary with a Zipf distribution, some domain sentences mixed in; seeded) is generated while it is streamed
  to ``POST /v1/models/{id}/datasets`` (never held in memory);
- **audio**: ``--audio-minutes`` of espeak-ng speech (rotating voices and speeds, silences between sentences,
  MP3) with a VTT transcript of the same base name (cue times from the synthesis) and a domain text file.

It follows the model until 4 (or 5) and prints: upload time, validation time (upload done → every dataset
valid), training time (status 3 → 4) and the trainer's stage durations (run metrics), the total, the trainer's
training worker peak RSS (``VmHWM`` of the trainer's child processes, sampled; and the RSS seen during each stage)
against the training worker's memory budget (``VOXTRAIN_WORKER_MEMORY_MB``), the model artifacts' size, and for
audio the pairs cut/used/skipped and the
WER of base / text-only / text + audio on the held-out pairs. Results go to ``bench/results/big_training.json``.

``--max-worker-rss-mb`` (default 16,000) cancels a run whose worker grows past it, so that the machine's other
work survives an unbounded trainer; such a run is recorded as failed with the RSS it reached.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import wave
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # bench.* and tests.* (domain sentences) when run as a script

from bench.datasets.bench_upload import endpoints, free_port, status_kb  # noqa: E402
from bench.trainer.acoustic_domains import DOMAINS  # noqa: E402
from tests.trainer.medical_domain import ADAPTATION_SENTENCES, TRAINING_TEXT, TUNING_SENTENCES  # noqa: E402
from voxtrain_devstack import Endpoints  # noqa: E402
from voxtrain_devstack.services import script  # noqa: E402
from voxtrain_shared.auth import generate_key_pair, issue_token  # noqa: E402
from voxtrain_shared.settings import AuthSettings, MinioSettings, TrainerSettings  # noqa: E402
from voxtrain_shared.storage import make_client  # noqa: E402
from voxtrain_shared.storage_access import STORAGE_SERVICES, Credential, provision, revoke  # noqa: E402
from voxtrain_trainer.ml.base_model import base_model_files  # noqa: E402

MB = 1000**2
SERVICES = ("models", "datasets", "validator", "trainer")
RESULTS = REPO / "bench" / "results" / "big_training.json"
VOICES = ("en-us+m3", "en-us+f2", "en-us+m1", "en-us+f3", "en-us+m7")
SPEEDS = (150, 165, 140, 175)
GAP_SECONDS = 1.0
ESPEAK_RATE = 22050
CHUNK = 1 << 20
READY_SECONDS = 600  # a loaded machine (load average 20 on 2 cores) took over 180 s to start the models service


# ------------------------------------------------------------------ generated inputs


def domain_sentences() -> list[str]:
    lines = [s.strip() for s in TRAINING_TEXT.splitlines() if s.strip()]
    for text, _, _ in DOMAINS.values():
        lines += [s.strip() for s in text.splitlines() if s.strip()]
    return lines


def dictionary_words(limit: int, rng: np.random.Generator) -> list[str]:
    """``limit`` plain words of the base dictionary, in a seeded random order (the Zipf ranks)."""
    words = []
    with open(base_model_files().dictionary, encoding="utf-8") as f:
        for line in f:
            w = line.split(" ", 1)[0]
            if w.isalpha() and w.isascii() and "(" not in w:
                words.append(w.lower())
    words = sorted(set(words))
    order = rng.permutation(len(words))[:limit]
    return [words[i] for i in order]


def text_chunks(size: int, seed: int, vocabulary: int = 60_000, zipf: float = 1.1) -> Iterator[bytes]:
    """Exactly ``size`` bytes of sentences (one a line), made batch by batch: memory holds one batch.

    Words are drawn by a Zipf law over ``vocabulary`` words of the base dictionary; sentences have 4-19 words;
    about one sentence in twenty is followed by a domain sentence (medical, aviation)."""
    rng = np.random.default_rng(seed)
    words = dictionary_words(vocabulary, rng)
    phrases = [s.lower().rstrip(".") + "\n" for s in domain_sentences()]
    # one token table: a word followed by a space, the same word ending its sentence, then the domain sentences
    table = np.array([w + " " for w in words] + [w + "\n" for w in words] + phrases, dtype=object)
    cdf = np.cumsum(np.arange(1, len(words) + 1, dtype=np.float64) ** -zipf)
    cdf /= cdf[-1]
    sent = 0
    while sent < size:
        ids = np.minimum(np.searchsorted(cdf, rng.random(400_000)), len(words) - 1)
        ends = np.cumsum(rng.integers(4, 20, size=len(ids) // 4))
        ends = ends[ends <= len(ids)] - 1
        ids = ids[: ends[-1] + 1]
        ids[ends] += len(words)
        domain = ends[rng.random(len(ends)) < 0.05]
        ids = np.insert(ids, domain + 1, 2 * len(words) + rng.integers(len(phrases), size=len(domain)))
        block = "".join(table[ids].tolist()).encode()
        if sent + len(block) >= size:
            block = block[: size - sent - 1] + b"\n"
        sent += len(block)
        yield block


def _stamp(t: float) -> str:
    """VTT time of ``t`` seconds, from whole milliseconds (59.9996 s is 00:01:00.000, never 00:00:60.000)."""
    ms = round(t * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def _espeak(job: tuple[str, str, int]) -> bytes:
    """16-bit mono PCM at 22,050 Hz of one sentence."""
    text, voice, speed = job
    out = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "--stdout", text], capture_output=True, check=True
    )
    with wave.open(_BytesReader(out.stdout)) as w:
        assert w.getframerate() == ESPEAK_RATE and w.getsampwidth() == 2 and w.getnchannels() == 1
        return w.readframes(w.getnframes())


class _BytesReader:
    """A seekable file over bytes whose WAV header may claim an unknown length (espeak-ng --stdout)."""

    def __init__(self, data: bytes) -> None:
        import io

        fixed = bytearray(data)
        if len(fixed) >= 44 and fixed[40:44] in (b"\xff\xff\xff\x7f", b"\x00\x00\x00\x00", b"\xff\xff\xff\xff"):
            fixed[40:44] = (len(fixed) - 44).to_bytes(4, "little")
            fixed[4:8] = (len(fixed) - 8).to_bytes(4, "little")
        self._f = io.BytesIO(bytes(fixed))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)


def recording(minutes: float, directory: Path, seed: int) -> tuple[Path, Path, int]:
    """``(talk.mp3, talk.vtt, cues)``: espeak-ng sentences with silences between, cue times from the synthesis.

    Cached in ``directory`` (synthesis of two hours takes minutes): the same minutes and seed give the same files."""
    directory.mkdir(parents=True, exist_ok=True)
    mp3, vtt = directory / "talk.mp3", directory / "talk.vtt"
    if mp3.exists() and vtt.exists():
        return mp3, vtt, vtt.read_text(encoding="utf-8").count(" --> ")
    rng = np.random.default_rng(seed)
    pool = ADAPTATION_SENTENCES + TUNING_SENTENCES + domain_sentences()
    raw = directory / "talk.s16"
    gap = b"\x00\x00" * int(GAP_SECONDS * ESPEAK_RATE)
    cues, t, total = [], GAP_SECONDS, minutes * 60
    with open(raw, "wb") as out, ThreadPoolExecutor(2) as pool_exec:
        out.write(gap)
        while t < total:
            batch = [
                (pool[int(rng.integers(len(pool)))], VOICES[int(rng.integers(5))], SPEEDS[int(rng.integers(4))])
                for _ in range(32)
            ]
            for (text, _, _), pcm in zip(batch, pool_exec.map(_espeak, batch), strict=True):
                length = len(pcm) / 2 / ESPEAK_RATE
                cues.append(f"{_stamp(t)} --> {_stamp(t + length)}\n{text}\n")
                out.write(pcm + gap)
                t += length + GAP_SECONDS
                if t >= total:
                    break
    subprocess.run(
        [
            *("ffmpeg", "-v", "error", "-y", "-f", "s16le", "-ar", str(ESPEAK_RATE), "-ac", "1", "-i", str(raw)),
            *("-ar", "16000", "-c:a", "libmp3lame", "-b:a", "32k", str(mp3)),
        ],
        check=True,
    )
    raw.unlink()
    vtt.write_text("WEBVTT\n\n" + "\n".join(cues), encoding="utf-8")
    return mp3, vtt, len(cues)


# ------------------------------------------------------------------ the services


@dataclass
class System:
    """The four services as processes of this run, on the shared servers."""

    stack: Endpoints
    work: Path
    extra_env: dict[str, dict[str, str]]
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.private_key, self.public_key = generate_key_pair()
        self.bucket = f"bigbench-{self.run_id}"
        self.admin = MinioSettings(
            endpoint=self.stack.minio_endpoint,
            access_key=self.stack.minio_access_key,
            secret_key=self.stack.minio_secret_key,
            bucket=self.bucket,
        )
        self.credentials = {svc: Credential.generate(svc) for svc in STORAGE_SERVICES}

    def token(self, tenant: str) -> dict[str, str]:
        auth = AuthSettings(public_key=self.public_key, private_key=self.private_key)
        return {"Authorization": "Bearer " + issue_token(auth, tenant)}

    def env(self, name: str) -> dict[str, str]:
        env = {
            **os.environ,
            "VOXTRAIN_ENVIRONMENT": "test",
            "VOXTRAIN_KAFKA__BOOTSTRAP_SERVERS": self.stack.kafka_bootstrap,
            "VOXTRAIN_KAFKA__TOPIC_NAMESPACE": f"bigbench{self.run_id}",
            "VOXTRAIN_KAFKA__TOPIC_PARTITIONS": "1",
            "VOXTRAIN_POSTGRES__DSN": self.stack.postgres_dsn,
            "VOXTRAIN_POSTGRES__SCHEMA": f"bigbench_{name}_{self.run_id}",
            "VOXTRAIN_MINIO__ENDPOINT": self.stack.minio_endpoint,
            "VOXTRAIN_MINIO__BUCKET": self.bucket,
            "VOXTRAIN_AUTH__PUBLIC_KEY": self.public_key,
            "VOXTRAIN_HTTP__HOST": "127.0.0.1",
            "VOXTRAIN_HTTP__PORT": str(self.ports[name]),
            "VOXTRAIN_LOG_LEVEL": "INFO",
        }
        if name in self.credentials:
            c = self.credentials[name]
            env |= {"VOXTRAIN_MINIO__ACCESS_KEY": c.access_key, "VOXTRAIN_MINIO__SECRET_KEY": c.secret_key}
        return env | self.extra_env.get(name, {})

    def start(self) -> None:
        provision(self.admin, self.credentials)
        for name in SERVICES:
            self.ports[name] = free_port()
            log = open(self.work / f"{name}.log", "wb")  # noqa: SIM115 - kept open for the process's life
            self.procs[name] = subprocess.Popen(
                [script(name)], env=self.env(name), stdout=log, stderr=subprocess.STDOUT, cwd=self.work
            )
        for name in SERVICES:
            self._wait_ready(name)

    def _wait_ready(self, name: str) -> None:
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            if self.procs[name].poll() is not None:
                tail = (self.work / f"{name}.log").read_text(errors="replace")[-3000:]
                raise SystemExit(f"voxtrain-{name} exited:\n{tail}")
            try:
                # a loaded machine answered /health/ready in 7-15 s (the models service's Kafka check)
                if httpx.get(self.url(name) + "/health/ready", timeout=60).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise SystemExit(f"voxtrain-{name} was not ready within {READY_SECONDS} s (log: {self.work / f'{name}.log'})")

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def stop(self) -> None:
        """Stop the services and remove the run's users, policies and bucket (whatever ``start`` got to)."""
        for p in self.procs.values():
            p.terminate()
        for p in self.procs.values():
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        revoke(self.admin, [c.access_key for c in self.credentials.values()], services=list(self.credentials))
        client = make_client(self.admin)
        if not client.bucket_exists(self.bucket):
            return
        for obj in client.list_objects(self.bucket, recursive=True):
            client.remove_object(self.bucket, obj.object_name)
        client.remove_bucket(self.bucket)


# ------------------------------------------------------------------ measuring


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


class PeakSampler(threading.Thread):
    """Peak ``VmHWM`` of every descendant of a process, sampled every ``every`` seconds."""

    def __init__(self, pid: int, every: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.peaks: dict[int, tuple[int, str]] = {}  # pid -> (KiB, command)
        self.current_max_kib = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.every):
            now = 0
            for child in descendants(self.pid):
                try:
                    hwm, rss = status_kb(child, "VmHWM"), status_kb(child, "VmRSS")
                    cmd = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:120]
                except (OSError, KeyError):
                    continue
                now = max(now, rss)
                if hwm > self.peaks.get(child, (0, ""))[0]:
                    self.peaks[child] = (hwm, cmd)
            self.current_max_kib = now

    def stop(self) -> None:
        self._halt.set()
        self.join(5)

    def worker_peak_mb(self) -> float:
        """The largest peak of a Python child (the training worker, a multiprocessing spawn process)."""
        python = [kib for kib, cmd in self.peaks.values() if "python" in cmd or "spawn" in cmd]
        return round(max(python, default=0) / 1024, 1)

    def other_peaks(self) -> list[dict[str, Any]]:
        top = sorted(self.peaks.items(), key=lambda kv: -kv[1][0])[:6]
        return [{"pid": pid, "peak_rss_mb": round(kib / 1024, 1), "command": cmd} for pid, (kib, cmd) in top]


def multipart(files: list[tuple[str, str, int, Iterator[bytes]]]) -> tuple[str, int, Iterator[bytes]]:
    """A streamed multipart/form-data body of ``(name, content type, size, chunks)``: boundary, length, body."""
    boundary = secrets.token_hex(16)
    heads = [
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
            f"Content-Type: {ctype}\r\n\r\n"
        ).encode()
        for name, ctype, _, _ in files
    ]
    tail = f"--{boundary}--\r\n".encode()
    length = sum(len(h) + size + 2 for h, (_, _, size, _) in zip(heads, files, strict=True)) + len(tail)

    def body() -> Iterator[bytes]:
        for head, (_, _, size, chunks) in zip(heads, files, strict=True):
            yield head
            sent = 0
            for chunk in chunks:
                sent += len(chunk)
                yield chunk
            assert sent == size, (sent, size)
            yield b"\r\n"
        yield tail

    return boundary, length, body()


def file_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


@dataclass
class Scenario:
    name: str
    files: list[tuple[str, str, int, Iterator[bytes]]]
    described: dict[str, Any]
    #: uploaded second as TEST datasets (the model then trains on Train, not on its first upload)
    test_files: list[tuple[str, str, int, Iterator[bytes]]] = field(default_factory=list)


def worker_budget_mb() -> int:
    """The training worker's memory budget the trainer runs with (``VOXTRAIN_WORKER_MEMORY_MB`` or its default)."""
    return int(os.environ.get("VOXTRAIN_WORKER_MEMORY_MB", TrainerSettings.model_fields["worker_memory_mb"].default))


def run_scenario(system: System, sc: Scenario, timeout: float, max_rss_mb: float, budget_mb: int) -> dict[str, Any]:
    headers = system.token("bigbench")
    models, datasets = system.url("models"), system.url("datasets")
    model = {"name": sc.name, "language": "en-US", "auto_train": not sc.test_files}
    r = httpx.post(f"{models}/v1/models", json=model, headers=headers, timeout=30)
    r.raise_for_status()
    mid = r.json()["id"]
    total_bytes = sum(size for _, _, size, _ in sc.files + sc.test_files)
    print(f"\n--- {sc.name}: model {mid}, uploading {total_bytes / MB:,.1f} MB", flush=True)
    sampler = PeakSampler(system.procs["trainer"].pid)
    sampler.start()
    started = time.perf_counter()
    for files, query in ((sc.files, ""), (sc.test_files, "?type=TEST")):
        if not files:
            continue
        boundary, length, body = multipart(files)
        r = httpx.post(
            f"{datasets}/v1/models/{mid}/datasets{query}",
            content=body,
            headers={
                **headers,
                "content-type": f"multipart/form-data; boundary={boundary}",
                "content-length": str(length),
            },
            timeout=None,
        )
        if r.status_code != 201:
            break
    if r.status_code == 201 and sc.test_files:  # Train once both uploads are in (refused 409 until they are seen)
        while (t := httpx.post(f"{models}/v1/models/{mid}/train", headers=headers, timeout=60)).status_code == 409:
            time.sleep(1)
        print(f"Train answered {t.status_code}", flush=True)
    uploaded = time.perf_counter()
    result: dict[str, Any] = {"scenario": sc.name, "model_id": mid, **sc.described, "upload_bytes": total_bytes}
    if r.status_code != 201:
        sampler.stop()
        return result | {"outcome": "upload_refused", "error": {"status": r.status_code, "body": r.text[:2000]}}
    result["upload_seconds"] = round(uploaded - started, 1)
    result["upload_mb_per_s"] = round(total_bytes / MB / (uploaded - started), 1)
    print(f"uploaded in {result['upload_seconds']} s ({result['upload_mb_per_s']} MB/s)", flush=True)

    timeline: list[dict[str, Any]] = []
    valid_at = training_at = None
    last_key: tuple[Any, ...] = ()
    body_: dict[str, Any] = {}
    cancelled = False
    deadline = uploaded + timeout
    outcome = None
    stage_rss: dict[str, int] = {}
    while time.perf_counter() < deadline:
        try:
            body_ = httpx.get(f"{models}/v1/models/{mid}", headers=headers, timeout=60).json()
        except httpx.TransportError as exc:  # a loaded machine: the next poll may get through
            print(f"  poll failed: {exc!r}", flush=True)
            continue
        except (KeyboardInterrupt, SystemExit):
            outcome = "interrupted"  # stopped by hand (or a deadline): what was reached is still recorded
            break
        now = time.perf_counter() - started
        code = body_["status"]["code"]
        progress = (body_.get("run") or {}).get("progress") or {}
        key = (code, progress.get("stage"), progress.get("attempt"))
        if progress.get("stage"):  # the largest RSS (of one process) seen while the view showed each stage
            stage_rss[progress["stage"]] = max(stage_rss.get(progress["stage"], 0), sampler.current_max_kib // 1024)
        if key != last_key:
            timeline.append({"t": round(now, 1), "status": code, "stage": progress.get("stage"), "attempt": key[2]})
            print(f"  {now:8.1f} s  status {code}  stage {progress.get('stage')}  attempt {key[2]}", flush=True)
            last_key = key
        if valid_at is None and code == 2:
            listing = httpx.get(f"{datasets}/v1/models/{mid}/datasets", headers=headers, timeout=60).json()
            if listing["datasets"] and all(d["status"] == "valid" for d in listing["datasets"]):
                valid_at = time.perf_counter()
        if code in (3, 4) and training_at is None:
            training_at = time.perf_counter()
            valid_at = valid_at or training_at
        if code in (4, 5):
            break
        if not cancelled and sampler.current_max_kib / 1024 > max_rss_mb:
            cancelled = True
            rss = sampler.current_max_kib / 1024
            print(f"  worker RSS {rss:,.0f} MB over the guard {max_rss_mb:,.0f} MB: cancelling", flush=True)
            result["guard"] = {"cancelled_at_rss_mb": round(rss), "stage": progress.get("stage")}
            httpx.post(f"{models}/v1/models/{mid}/cancel", headers=headers, timeout=30)
        try:
            time.sleep(1.0)
        except (KeyboardInterrupt, SystemExit):
            outcome = "interrupted"
            break
    finished = time.perf_counter()
    sampler.stop()
    code = body_.get("status", {}).get("code")
    result["outcome"] = outcome or {4: "trained", 5: "failed"}.get(code, "timeout")
    result["last_progress"] = (body_.get("run") or {}).get("progress")
    result["timeline"] = timeline
    result["validation_seconds"] = round(valid_at - uploaded, 1) if valid_at else None
    result["training_seconds"] = round(finished - training_at, 1) if training_at else None
    result["total_seconds"] = round(finished - started, 1)
    result["worker_peak_rss_mb"] = sampler.worker_peak_mb()
    result["trainer_children_peaks"] = sampler.other_peaks()
    result["stage_rss_mb"] = stage_rss
    result["worker_memory_budget_mb"] = budget_mb
    result["within_budget"] = result["worker_peak_rss_mb"] <= budget_mb
    result["last_error"] = body_.get("last_error")
    metrics = (body_.get("run") or {}).get("metrics") or {}
    result["stage_seconds"] = metrics.get("durations")
    artifacts = metrics.get("artifacts") or {}
    if artifacts:
        client = make_client(system.admin)
        prefix = f"s3://{system.bucket}/"  # artifacts are named by URI
        sizes = {
            name: client.stat_object(system.bucket, key.removeprefix(prefix)).size for name, key in artifacts.items()
        }
        result["artifact_bytes"] = sizes
        result["model_size_mb"] = round(sum(s or 0 for s in sizes.values()) / MB, 2)
    if metrics:
        data, lm = metrics.get("data", {}), metrics.get("lm", {})
        result["data"] = {
            k: data.get(k)
            for k in ("training_words", "training_sentences", "train_pairs", "test_pairs", "train_audio_seconds")
        }
        result["data"]["audio_skipped"] = len(data.get("audio_skipped") or [])
        result["pairing"] = data.get("pairing")
        result["lm"] = {k: lm.get(k) for k in ("order", "ngram_counts", "vocabulary_size", "pruning")}
        result["acoustic"] = {k: (metrics.get("acoustic") or {}).get(k) for k in ("method", "dev_wer")}
        wer = (metrics.get("evaluation") or {}).get("wer") or {}
        result["wer"] = {m: (wer.get(m) or {}).get("wer") for m in wer.get("models", [])}
    return result


def report(r: dict[str, Any]) -> None:
    print(f"\n=== {r['scenario']}: {r.get('outcome')} (model {r['model_id']})")
    for key in ("upload_seconds", "validation_seconds", "training_seconds", "total_seconds", "model_size_mb"):
        print(f"  {key:22} {r.get(key)}")
    print(
        f"  worker peak RSS        {r.get('worker_peak_rss_mb')} MB "
        f"(worker memory budget {r.get('worker_memory_budget_mb')} MB)"
    )
    print(f"  RSS by stage (sampled) {r.get('stage_rss_mb')}")
    print(f"  stages (run metrics)   {r.get('stage_seconds')}")
    for key in ("data", "pairing", "lm", "acoustic", "wer", "last_error", "guard"):
        if r.get(key) is not None:
            print(f"  {key:22} {json.dumps(r[key])[:600]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="50 MB of text and 10 minutes of audio")
    parser.add_argument("--scenario", choices=("text", "audio", "both"), default="both")
    parser.add_argument("--text-mb", type=float, help="transcript size in MB (default 1000, --quick 50)")
    parser.add_argument("--audio-minutes", type=float, help="audio length (default 120, --quick 10)")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="seconds from upload to 4 or 5")
    parser.add_argument("--max-worker-rss-mb", type=float, default=16_000, help="cancel a run past this (guard)")
    parser.add_argument("--audio-cache", type=Path, default=Path(tempfile.gettempdir()) / "voxtrain-bigbench-audio")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    text_mb = args.text_mb or (50 if args.quick else 1000)
    minutes = args.audio_minutes or (10 if args.quick else 120)
    budget_mb = worker_budget_mb()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the services are stopped (finally) on a kill
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started in the background (nohup ... &)
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="bigbench-"))  # the services' logs stay there; the trainer's work dir goes
    (work / "trainer-work").mkdir()
    extra = {
        "models": {"VOXTRAIN_CREDITS__FREE_ALLOWANCE": str(10**9)},
        "trainer": {"VOXTRAIN_WORK_DIR": str(work / "trainer-work")},
    }
    system = System(endpoints(), work, extra)
    try:
        system.start()
        print(f"services up (run {system.run_id}, logs in {work}); load average {load_before[0]:.1f}", flush=True)
        if args.scenario in ("text", "both"):
            size = int(text_mb * MB)
            sc = Scenario(
                f"text {text_mb:g} MB",
                [("corpus.txt", "text/plain", size, text_chunks(size, args.seed))],
                {"kind": "text", "text_bytes": size},
            )
            record(args, run_scenario(system, sc, args.timeout, args.max_worker_rss_mb, budget_mb), load_before)
        if args.scenario in ("audio", "both"):
            began = time.perf_counter()
            mp3, vtt, cues = recording(minutes, args.audio_cache / f"{minutes:g}min-{args.seed}", args.seed)
            synth = round(time.perf_counter() - began, 1)
            notes = "\n".join(domain_sentences()).encode() + b"\n"
            sc = Scenario(
                f"audio {minutes:g} min",
                [
                    ("notes.txt", "text/plain", len(notes), iter([notes])),
                    (mp3.name, "audio/mpeg", mp3.stat().st_size, file_chunks(mp3)),
                    (vtt.name, "text/vtt", vtt.stat().st_size, file_chunks(vtt)),
                ],
                {
                    "kind": "audio",
                    "audio_minutes": minutes,
                    "cues": cues,
                    "audio_bytes": mp3.stat().st_size,
                    "synthesis_seconds": synth,
                },
            )
            record(args, run_scenario(system, sc, args.timeout, args.max_worker_rss_mb, budget_mb), load_before)
    finally:
        system.stop()
        shutil.rmtree(work / "trainer-work", ignore_errors=True)


def record(args: argparse.Namespace, result: dict[str, Any], load_before: tuple[float, float, float]) -> None:
    """Print a scenario's figures and keep them in ``args.out`` under its kind (other kinds' last runs stay)."""
    report(result)
    result |= {
        "quick": args.quick,
        "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
    }
    runs = json.loads(args.out.read_text(encoding="utf-8")).get("runs", {}) if args.out.exists() else {}
    runs[result["kind"]] = result
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"runs": runs}, indent=2) + "\n", encoding="utf-8")
    print(f"written {args.out} ({result['kind']}); {result['uptime']}", flush=True)


if __name__ == "__main__":
    main()
