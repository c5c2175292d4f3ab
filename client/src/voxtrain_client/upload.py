"""Uploads of any size: resumable sessions, parallel parts, retries, and state kept on disk.

Every file goes through a resumable upload session (parts PUT straight to object storage in parallel, each
retried with backoff). Each part is read from the file once, into a buffer of its thread (memory: ``parallel``
parts, whatever the file's size), checksummed as it is read and sent with its checksum — CRC32C for the sessions
this client starts (hardware-accelerated), SHA-256 for a resumed session started that way — (to a URL that signs
it, too, where storage wants that), and storage verifies the bytes on arrival (a part damaged on the way is
refused and sent again); the same bytes feed the file's SHA-256, in part order, which the completion gives the
server as the dataset's hash — the server does not read the file back.
The plan — which files form which upload and which session each file has — is written to a state file
before any byte is sent, so a dropped connection or a killed process resumes where it stopped: the server
says which parts it already has. At most 10 files form one upload (the product's limit); more become
several uploads, which only makes sense on a model with auto-train off (otherwise the first upload would
queue the model for training and lock it).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .api import (
    PART_CHECKSUM,
    SEND_CHUNK,
    SHA256,
    ApiError,
    Client,
    Completion,
    Dataset,
    HeaderNotSigned,
    PartUrl,
    Upload,
    part_hasher,
)
from .config import state_dir

MAX_FILES_PER_UPLOAD = 10
HASH_BLOCK = 8 * 1024 * 1024

#: progress(file name, bytes just done, file size) — called from worker threads; the first call per file
#: reports what the server already had (a resumed upload).
Progress = Callable[[str, int, int], None]


class UploadRefused(Exception):
    """The upload cannot start as asked; the message says what to do instead."""


@dataclass
class FileState:
    path: str
    size: int
    mtime_ns: int
    sha256: str | None = None
    upload_id: str | None = None


@dataclass
class BatchState:
    files: list[FileState]
    datasets: list[str] = field(default_factory=list)  # dataset ids once completed

    @property
    def done(self) -> bool:
        return bool(self.datasets)


@dataclass
class Plan:
    """What is uploaded where; saved to disk after every change."""

    model_id: str
    dataset_type: str
    batches: list[BatchState]
    path: Path

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps(
                {
                    "model_id": self.model_id,
                    "dataset_type": self.dataset_type,
                    "batches": [asdict(b) for b in self.batches],
                },
                indent=1,
            )
        )
        os.replace(tmp, self.path)

    @classmethod
    def load(cls, path: Path) -> Plan:
        raw = json.loads(path.read_text())
        batches = [BatchState([FileState(**f) for f in b["files"]], b["datasets"]) for b in raw["batches"]]
        return cls(raw["model_id"], raw["dataset_type"], batches, path)


def expand(paths: Iterable[Path]) -> list[Path]:
    """Files named, and the files inside folders named (not hidden ones), in a stable order."""
    found: list[Path] = []
    for p in paths:
        if p.is_dir():
            found += sorted(
                f
                for f in p.rglob("*")
                if f.is_file() and not any(part.startswith(".") for part in f.relative_to(p).parts)
            )
        elif p.is_file():
            found.append(p)
        else:
            raise UploadRefused(f"{p}: no such file or folder")
    if not found:
        raise UploadRefused("nothing to upload: the folders named hold no files")
    return found


def plan_for(model_id: str, files: list[Path], dataset_type: str, auto_train: bool) -> Plan:
    """The plan for ``files``: resumed from disk when the same files were being uploaded to the same model."""
    states = [FileState(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    key = hashlib.sha256(
        json.dumps([model_id, dataset_type, [(s.path, s.size, s.mtime_ns) for s in states]]).encode()
    ).hexdigest()[:24]
    folder = state_dir() / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{key}.json"
    if path.is_file():
        return Plan.load(path)
    if len(files) > MAX_FILES_PER_UPLOAD and auto_train:
        raise UploadRefused(
            f"{len(files)} files are more than one upload takes ({MAX_FILES_PER_UPLOAD}), so they go as several "
            "uploads — but this model trains automatically after its first upload and would then refuse the "
            "rest. Turn auto-train off (`vt models update MODEL --no-auto-train`), upload again, then "
            "`vt train MODEL`."
        )
    batches = [BatchState(states[i : i + MAX_FILES_PER_UPLOAD]) for i in range(0, len(states), MAX_FILES_PER_UPLOAD)]
    plan = Plan(model_id, dataset_type, batches, path)
    plan.save()
    return plan


class Stopped(Exception):
    """The work was given up because another part of the upload failed."""


def sha256_of(path: Path, stop: threading.Event | None = None) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(HASH_BLOCK):
            if stop is not None and stop.is_set():
                raise Stopped(str(path))
            h.update(block)
    return h.hexdigest()


def read_part(path: Path, offset: int, into: memoryview, algorithm: str = SHA256) -> str:
    """Fill ``into`` with the bytes of ``path`` from ``offset``, checksumming them (``algorithm``) as they are read;
    returns the part's checksum (:func:`~voxtrain_client.api.part_checksum`)."""
    h = part_hasher(algorithm)
    with path.open("rb") as f:
        f.seek(offset)
        done = 0
        while done < len(into):
            n = f.readinto(into[done : done + SEND_CHUNK])
            if not n:
                raise OSError(f"{path} is shorter than it was when its upload started")
            h.update(into[done : done + n])
            done += n
    return base64.b64encode(h.digest()).decode()


class FileHash:
    """A file's SHA-256, fed its parts in order by the threads that read them (each waits for its turn, holding
    only its own part); ``stop`` ends every wait (another part failed)."""

    def __init__(self, stop: threading.Event) -> None:
        self._sha = hashlib.sha256()
        self._next = 1
        self._turn = threading.Condition()
        self._stop = stop

    def feed(self, number: int, data: memoryview) -> None:
        with self._turn:
            self._turn.wait_for(lambda: self._next == number or self._stop.is_set())
            if self._stop.is_set():
                raise Stopped(f"part {number}")
        self._sha.update(data)  # the only feeder now: the others wait for their turn
        with self._turn:
            self._next += 1
            self._turn.notify_all()

    def wake(self) -> None:
        """Let every waiting feeder see ``stop``."""
        with self._turn:
            self._turn.notify_all()

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


class Uploader:
    """Carries out a :class:`Plan` with ``parallel`` part uploads at once; the sessions it starts carry
    ``checksum_algorithm`` part checksums (a session resumed keeps the one it was started with)."""

    def __init__(
        self,
        client: Client,
        *,
        parallel: int = 4,
        progress: Progress | None = None,
        checksum_algorithm: str = PART_CHECKSUM,
    ) -> None:
        self._client, self._parallel = client, parallel
        self._checksum_algorithm = checksum_algorithm
        self._progress = progress or (lambda *_: None)
        self._buffers = threading.local()
        self._sign_checksums = False  # storage wants the part checksum signed into each part's URL
        self.earlier = 0

    def run(self, plan: Plan) -> list[Dataset]:
        """Upload what the plan has not finished yet; returns the datasets this run created
        (:attr:`earlier` counts those an earlier, interrupted run already completed)."""
        datasets: list[Dataset] = []
        self.earlier = sum(len(b.datasets) for b in plan.batches if b.done)
        for batch in plan.batches:
            if batch.done:
                continue
            sessions = [self._session(plan, f) for f in batch.files]
            stop = threading.Event()
            with ThreadPoolExecutor(self._parallel) as pool:
                sending = [
                    self._send(pool, plan.model_id, f, s, stop) for f, s in zip(batch.files, sessions, strict=True)
                ]
                for f, (parts, _, whole) in zip(batch.files, sending, strict=True):
                    for part in parts:
                        part.result()  # re-raises the first failure (the others then stop)
                    if whole is not None:
                        f.sha256 = whole.hexdigest()
                        plan.save()
            completions = [
                Completion(f.upload_id or "", f.sha256, c, s.checksum_algorithm)
                for f, s, (_, c, _) in zip(batch.files, sessions, sending, strict=True)
            ]
            created = self._client.complete_uploads(plan.model_id, completions)
            batch.datasets = [d.id for d in created]
            plan.save()
            datasets += created
        plan.path.unlink(missing_ok=True)  # finished: nothing left to resume
        return datasets

    def _session(self, plan: Plan, f: FileState) -> Upload:
        path = Path(f.path)
        st = path.stat()
        if (st.st_size, st.st_mtime_ns) != (f.size, f.mtime_ns):
            raise UploadRefused(
                f"{path} changed since its upload started; start it again without --resume "
                "(delete the state file or upload under another name)"
            )
        if f.upload_id is not None:
            try:
                return self._client.get_upload(plan.model_id, f.upload_id)
            except ApiError as exc:
                if exc.status != 404:
                    raise
                # the session expired or was cancelled: start a new one below
        session = self._client.start_upload(
            plan.model_id, path.name, f.size, plan.dataset_type, self._checksum_algorithm
        )
        f.upload_id = session.id
        plan.save()
        return session

    def _put(self, model_id: str, session: Upload, part: PartUrl, data: memoryview, checksum: str) -> None:
        """PUT a part with its checksum: to the session's URL for it (MinIO verifies the unsigned header) until
        storage refuses an unsigned header (AWS S3), then, for this part and every later one, to a URL that signs
        the checksum."""
        algorithm = session.checksum_algorithm
        if not self._sign_checksums:
            try:
                self._client.put_part(part.url, data, checksum, algorithm)
                return
            except HeaderNotSigned:
                self._sign_checksums = True
        [signed] = self._client.sign_parts(model_id, session.id, {part.part_number: checksum}, algorithm)
        self._client.put_part(signed.url, data, checksum, algorithm)

    def _buffer(self, size: int) -> memoryview:
        """This thread's part buffer (one per thread, reused for every part it sends)."""
        buffer: bytearray | None = getattr(self._buffers, "buffer", None)
        if buffer is None or len(buffer) < size:
            buffer = self._buffers.buffer = bytearray(size)
        return memoryview(buffer)[:size]

    def _send(
        self, pool: ThreadPoolExecutor, model_id: str, f: FileState, session: Upload, stop: threading.Event
    ) -> tuple[list[Future[None]], dict[int, str], FileHash | None]:
        """Queue the parts of one file: each missing part is read, hashed and sent; while the file's SHA-256 is not
        known yet, the parts storage has already are read and hashed too (in order, for it), not sent."""
        path, name = Path(f.path), Path(f.path).name
        missing = {u.part_number: u for u in session.part_urls}
        self._progress(name, f.size - sum(u.size for u in missing.values()), f.size)
        whole = FileHash(stop) if f.sha256 is None else None
        checksums: dict[int, str] = {}

        def part(number: int) -> None:
            try:
                if stop.is_set():
                    raise Stopped(f"{name} part {number}")
                size = min(session.part_size, f.size - (number - 1) * session.part_size)
                data = self._buffer(size)
                checksums[number] = read_part(path, (number - 1) * session.part_size, data, session.checksum_algorithm)
                if whole is not None:
                    whole.feed(number, data)
                if number in missing:
                    self._put(model_id, session, missing[number], data, checksums[number])
                    self._progress(name, size, f.size)
            except BaseException:
                stop.set()
                if whole is not None:
                    whole.wake()
                raise

        numbers = range(1, session.part_count + 1) if whole is not None else sorted(missing)
        return [pool.submit(part, n) for n in numbers], checksums, whole
