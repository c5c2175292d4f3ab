"""A typed client of voxtrain's public HTTP API (one base URL: the Ingress, or the console locally).

Every refusal becomes an :class:`ApiError` with the API's error code and message. Transient failures
(connection errors, 502/503/504, and an upload part storage received damaged) are retried with exponential
backoff; nothing else is.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import os
import tarfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Protocol, cast

import google_crc32c
import httpx
from httpx_sse import connect_sse
from pydantic import BaseModel, ConfigDict
from tenacity import (
    Retrying,
    retry,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
    wait_fixed,
)

from .auth import AuthError, auth_for
from .config import ClientConfig

RETRIED_STATUS = {502, 503, 504}
#: bytes read from a file per write while a part is sent
SEND_CHUNK = 1024 * 1024
#: The checksum algorithms an upload session's parts can carry (chosen when it starts): storage verifies each part's
#: bytes against the checksum sent with it (in :func:`checksum_header`), and refuses the part without it. The client
#: asks for CRC32C (hardware-accelerated: the part checksum costs next to nothing beside the file's SHA-256, which
#: identifies the dataset); a session started with SHA256 (the console's, or an older client's) is resumed with that.
SHA256, CRC32C = "SHA256", "CRC32C"
PART_CHECKSUM = CRC32C
#: seconds to wait for the answer to an upload's completion (a file given without its SHA-256 is read back and hashed by
#: the server first: up to 10 files × 10 GB)
COMPLETE_READ_TIMEOUT = 3600.0
#: the checksum manifest of an exported model (``sha256sum -c`` format)
MANIFEST = "SHA256SUMS"


class ApiError(Exception):
    """voxtrain refused a request: ``status``, the error ``code`` and a ``message`` meant for a person."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message, self.details = status, code, message, details


class _View(BaseModel):
    model_config = ConfigDict(extra="allow")


class Model(_View):
    id: str
    name: str
    language: str
    description: str | None = None
    auto_train: bool = True
    status: dict[str, Any]
    last_error: dict[str, Any] | None = None
    run: dict[str, Any] | None = None
    cost: dict[str, Any] | None = None

    @property
    def code(self) -> int:
        return int(self.status["code"])

    @property
    def progress(self) -> dict[str, Any]:
        """The running training's stage, percent, message, eta_seconds (any may be missing)."""
        found = (self.run or {}).get("progress") or (self.model_extra or {}).get("progress")
        return dict(found or {})


class CreditEntry(_View):
    id: int
    kind: str  # grant, reserve, charge, refund, expire
    amount: int  # always positive: the kind says which way the credits moved
    balance_after: int | None = None
    model_id: str | None = None
    run_id: str | None = None
    actor: str | None = None
    reason: str | None = None
    created_at: datetime | None = None


class Credits(_View):
    tenant_id: str
    balance: int  # what trainings can still reserve
    held: int = 0  # reserved by trainings at 2 or 3
    spent: int = 0  # charged for trainings that succeeded
    entries: list[CreditEntry]
    next_before: int | None = None  # ``before`` for the next, older page


class Webhook(_View):
    id: str
    url: str
    events: list[str]
    description: str | None = None
    enabled: bool
    disabled_reason: str | None = None
    secret_hint: str
    secret: str | None = None  # only in the answer to create and rotate


class Delivery(_View):
    id: str
    event_id: str
    event_type: str
    model_id: str | None = None
    state: str
    attempts: int
    next_attempt_at: datetime | None = None
    last_status: int | None = None
    last_error: str | None = None
    last_latency_ms: int | None = None
    finished_at: datetime | None = None
    log: list[dict[str, Any]] = []


class LiveEvent(_View):
    """One server-sent event of a model: ``name`` is ready, status, progress or expired; ``data`` its JSON."""

    name: str
    data: dict[str, Any]


class Truncated(Exception):
    """A download ended before all of it arrived (the partial file was removed)."""


class Dataset(_View):
    id: str
    type: str
    file_name: str
    size: int
    sha256: str | None = None
    status: str
    validation: dict[str, Any] | None = None


class PartUrl(_View):
    part_number: int
    size: int
    url: str


@dataclass(frozen=True)
class Completion:
    """What completes an upload session: the file's SHA-256 (hex) and the base64 checksums (of the session's
    ``checksum_algorithm``) of the parts sent."""

    upload_id: str
    sha256: str | None
    part_checksums: dict[int, str] = field(default_factory=dict)
    checksum_algorithm: str = SHA256


class Upload(_View):
    id: str
    dataset_id: str
    file_name: str
    size: int
    part_size: int
    part_count: int
    state: str
    missing_parts: list[int]
    part_urls: list[PartUrl]
    checksum_algorithm: str = SHA256  #: what each part is sent with (the server's choice for the session)


#: progress(bytes just received, total bytes or None when the server did not say)
DownloadProgress = Callable[[int, int | None], None]


class PartDamaged(Exception):
    """Storage received other bytes for a part than the ones sent (their checksum differs): sent again."""


class HeaderNotSigned(Exception):
    """Storage refused a part because its URL does not sign the checksum header (AWS S3 does; MinIO verifies the
    header either way): the part needs a URL that signs it (:meth:`Client.sign_parts`)."""


def checksum_header(algorithm: str) -> str:
    """The header a part of an upload with this checksum algorithm is sent with."""
    return f"x-amz-checksum-{algorithm.lower()}"


def checksum_field(algorithm: str) -> str:
    """The name of a part's checksum of this algorithm in the API's bodies."""
    return f"checksum_{algorithm.lower()}"


class Crc32c:
    """CRC32C fed in pieces (google-crc32c's C implementation, hardware-accelerated), with hashlib's
    ``update``/``digest``: the digest is the 4 bytes of the CRC, big-endian, as S3 checksums it."""

    def __init__(self) -> None:
        self._crc = 0

    def update(self, data: bytes | memoryview) -> None:
        # google-crc32c takes immutable bytes only: a piece of a mutable buffer is copied (1 MiB at a time, in cache)
        self._crc = google_crc32c.extend(self._crc, data if isinstance(data, bytes) else bytes(data))

    def digest(self) -> bytes:
        return self._crc.to_bytes(4, "big")


class PartHash(Protocol):
    def update(self, data: bytes | memoryview, /) -> None: ...
    def digest(self) -> bytes: ...


def part_hasher(algorithm: str) -> PartHash:
    """A fresh hash of a part for this checksum algorithm (SHA256 or CRC32C)."""
    if algorithm == CRC32C:
        return Crc32c()
    if algorithm == SHA256:
        return hashlib.sha256()
    raise ValueError(f"unknown part checksum algorithm {algorithm!r}")


def part_checksum(data: bytes | memoryview, algorithm: str = SHA256) -> str:
    """A part's checksum as storage verifies it (:func:`checksum_header`): the base64 of its SHA-256 or CRC32C."""
    h = part_hasher(algorithm)
    h.update(data)
    return base64.b64encode(h.digest()).decode()


def _part_checksums(checksums: dict[int, str], algorithm: str) -> list[dict[str, Any]]:
    return [{"part_number": n, checksum_field(algorithm): c} for n, c in sorted(checksums.items())]


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, httpx.TransportError | PartDamaged):
        return True
    return isinstance(exc, ApiError) and exc.status in RETRIED_STATUS


retry_transient = retry(
    retry=retry_if_exception(_transient),
    wait=wait_exponential(multiplier=0.5, max=20),
    stop=stop_after_attempt(8),
    reraise=True,
)


def raise_for(response: httpx.Response) -> httpx.Response:
    """The response if it succeeded, else an :class:`ApiError` from the API's error body."""
    if response.is_success:
        return response
    try:
        err = response.json().get("error", {})
    except ValueError:
        err = {}
    code = err.get("code") or f"http_{response.status_code}"
    message = err.get("message") or response.text[:500] or response.reason_phrase
    raise ApiError(response.status_code, code, message, err.get("details"))


class Client:
    """voxtrain for programs. Use as a context manager, or call :meth:`close`."""

    def __init__(
        self, config: ClientConfig, *, transport: httpx.BaseTransport | None = None, timeout: float = 60.0
    ) -> None:
        self.config = config
        self._http = httpx.Client(
            base_url=config.url,
            auth=auth_for(config.url, config.token, config.api_key),
            timeout=timeout,
            transport=transport,
        )
        # Presigned part URLs point at object storage: no voxtrain credentials go there.
        self._storage = httpx.Client(timeout=timeout, transport=transport)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()
        self._storage.close()

    @retry_transient
    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return raise_for(self._http.request(method, path, **kwargs))
        except AuthError as exc:
            raise ApiError(exc.status, exc.code, exc.message) from None

    # ------------------------------------------------------------ models

    def create_model(
        self, name: str, language: str = "en-US", description: str | None = None, auto_train: bool = True
    ) -> Model:
        body = {"name": name, "language": language, "description": description, "auto_train": auto_train}
        return Model.model_validate(self._call("POST", "/v1/models", json=body).json())

    def list_models(self, status: int | None = None) -> list[Model]:
        models: list[Model] = []
        offset = 0
        while True:
            params: dict[str, Any] = {"limit": 100, "offset": offset}
            if status is not None:
                params["status"] = status
            page = self._call("GET", "/v1/models", params=params).json()
            models += [Model.model_validate(m) for m in page["items"]]
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                return models

    def get_model(self, model_id: str) -> Model:
        return Model.model_validate(self._call("GET", f"/v1/models/{model_id}").json())

    def update_model(self, model_id: str, **fields: Any) -> Model:
        body = {k: v for k, v in fields.items() if v is not None}
        return Model.model_validate(self._call("PATCH", f"/v1/models/{model_id}", json=body).json())

    def delete_model(self, model_id: str) -> None:
        self._call("DELETE", f"/v1/models/{model_id}")

    def train(self, model_id: str, *, registration_wait: float = 10.0) -> dict[str, Any]:
        """Start training. An upload answered a moment ago reaches the model within seconds (events), so a
        ``no_datasets`` refusal is asked again for up to ``registration_wait`` seconds before it is raised."""
        result: dict[str, Any] = {}
        for attempt in Retrying(
            retry=retry_if_exception(lambda e: isinstance(e, ApiError) and e.code == "no_datasets"),
            stop=stop_after_delay(registration_wait),
            wait=wait_fixed(0.5),
            reraise=True,
        ):
            with attempt:
                result = self._call("POST", f"/v1/models/{model_id}/train").json()
        return result

    def cancel(self, model_id: str) -> Model:
        """Stop a model's validation or training (at 2 or 3); it ends at 5 with the code ``cancelled``."""
        return Model.model_validate(self._call("POST", f"/v1/models/{model_id}/cancel").json())

    @contextmanager
    def events(self, model_id: str, *, read_timeout: float = 60.0) -> Iterator[Iterator[LiveEvent]]:
        """The live events of one model as they happen (``GET /v1/models/{id}/events``, Server-Sent Events).

        The first event is ``ready``: whatever happened before it is in the model's current state. Raises
        :class:`ApiError` when the stream is refused, ``httpx.TransportError`` when it breaks or stays silent
        for ``read_timeout`` seconds (the server sends a heartbeat more often than that).
        """
        timeout = httpx.Timeout(10.0, read=read_timeout)
        try:
            with connect_sse(self._http, "GET", f"/v1/models/{model_id}/events", timeout=timeout) as source:
                if not source.response.is_success:
                    source.response.read()
                    raise_for(source.response)
                yield (
                    LiveEvent(name=e.event, data=e.json() if e.data else {})
                    for e in source.iter_sse()
                    if e.event != "message" or e.data
                )
        except AuthError as exc:
            raise ApiError(exc.status, exc.code, exc.message) from None

    def export(self, model_id: str, dest: Path | None = None, progress: DownloadProgress | None = None) -> Path:
        """Download the model's archive (``GET /v1/models/{id}/export``) to ``dest`` (a file, or a folder for the
        server's file name; default: the current folder). The bytes go to ``<dest>.part`` first and are renamed
        only once all arrived: as many as Content-Length said, the gzip stream complete (end marker, CRC) and each
        file matching the archive's SHA256SUMS. Otherwise :class:`Truncated`, and no partial file is left."""
        advance = progress or (lambda *_: None)
        with self._http.stream("GET", f"/v1/models/{model_id}/export", timeout=httpx.Timeout(30.0)) as r:
            if not r.is_success:
                r.read()
                raise_for(r)
            name = _attachment_name(r.headers.get("content-disposition")) or f"voxtrain-model-{model_id}.tar.gz"
            target = dest / name if dest is not None and dest.is_dir() else dest or Path(name)
            expected = int(r.headers["content-length"]) if "content-length" in r.headers else None
            partial = target.with_name(target.name + ".part")
            received = 0
            try:
                with partial.open("wb") as f:
                    for chunk in r.iter_raw():
                        f.write(chunk)
                        received += len(chunk)
                        advance(len(chunk), expected)
                if expected is not None and received != expected:
                    raise Truncated(f"the download ended after {received:,} of {expected:,} bytes; run it again")
                check_archive(partial)
            except BaseException:
                partial.unlink(missing_ok=True)
                raise
            os.replace(partial, target)
        return target

    # ------------------------------------------------------------ datasets

    def list_datasets(self, model_id: str) -> list[Dataset]:
        body = self._call("GET", f"/v1/models/{model_id}/datasets").json()
        return [Dataset.model_validate(d) for d in body["datasets"]]

    def upload_files(self, model_id: str, paths: Iterable[Path], dataset_type: str = "auto") -> list[Dataset]:
        """Small files in one streamed multipart request (1-10 files; one upload, one batch)."""
        handles: list[BinaryIO] = [p.open("rb") for p in paths]
        try:
            files = [("files", (Path(h.name).name, h, "application/octet-stream")) for h in handles]
            r = self._http.post(f"/v1/models/{model_id}/datasets", params={"type": dataset_type}, files=files)
            return [Dataset.model_validate(d) for d in raise_for(r).json()["datasets"]]
        finally:
            for h in handles:
                h.close()

    def start_upload(
        self,
        model_id: str,
        file_name: str,
        size: int,
        dataset_type: str = "auto",
        checksum_algorithm: str = PART_CHECKSUM,
    ) -> Upload:
        """Open a resumable upload session whose parts carry ``checksum_algorithm`` checksums (SHA256 or CRC32C)."""
        body = {"file_name": file_name, "size": size, "type": dataset_type, "checksum_algorithm": checksum_algorithm}
        return Upload.model_validate(self._call("POST", f"/v1/models/{model_id}/uploads", json=body).json())

    def get_upload(self, model_id: str, upload_id: str) -> Upload:
        return Upload.model_validate(self._call("GET", f"/v1/models/{model_id}/uploads/{upload_id}").json())

    def sign_parts(
        self, model_id: str, upload_id: str, checksums: dict[int, str], algorithm: str = SHA256
    ) -> list[PartUrl]:
        """URLs for parts of an upload that sign each part's checksum (:func:`part_checksum`, of the session's
        ``algorithm``) with its length: storage takes a part only with that checksum, and only when its bytes match
        it."""
        body = {"parts": _part_checksums(checksums, algorithm)}
        r = self._call("POST", f"/v1/models/{model_id}/uploads/{upload_id}/part-urls", json=body)
        return [PartUrl.model_validate(u) for u in r.json()["part_urls"]]

    @retry_transient
    def put_part(
        self, url: str, data: bytes | memoryview, checksum: str | None = None, algorithm: str = SHA256
    ) -> None:
        """PUT a part to its presigned URL with its exact length and its checksum (:func:`part_checksum`, of the
        session's ``algorithm``), which storage verifies: a part damaged on the way is refused by storage and sent
        again."""
        view = memoryview(data).cast("B")
        headers = {"Content-Length": str(len(view))}
        if checksum is not None:
            headers[checksum_header(algorithm)] = checksum
        pieces = (view[i : i + SEND_CHUNK] for i in range(0, len(view), SEND_CHUNK))
        # (httpx hands each piece to h11, which takes any bytes-like object: no copy of the part here)
        r = self._storage.put(url, content=cast(Iterable[bytes], pieces), headers=headers)
        if r.status_code == 400 and b"XAmzContentChecksumMismatch" in r.content:
            raise PartDamaged(f"storage received other bytes than were sent to {url.split('?')[0]}")
        if r.status_code == 403 and b"were not signed" in r.content:
            raise HeaderNotSigned(r.text[:300])
        raise_for(r)

    def complete_uploads(self, model_id: str, uploads: list[Completion]) -> list[Dataset]:
        """Complete several sessions as one upload (one batch: training waits for all of them)."""
        body = {
            "uploads": [
                {
                    "id": u.upload_id,
                    "sha256": u.sha256,
                    "parts": _part_checksums(u.part_checksums, u.checksum_algorithm),
                }
                for u in uploads
            ]
        }
        # Given the file's SHA-256 the server reads nothing back (storage verified each part on arrival); without
        # it, it reads every object back to hash it: minutes for 10 GB on a busy store, and a retry after a read
        # timeout would only find the upload "being completed"
        timeout = httpx.Timeout(self._http.timeout.connect, read=COMPLETE_READ_TIMEOUT)
        r = self._call("POST", f"/v1/models/{model_id}/uploads/complete", json=body, timeout=timeout)
        return [Dataset.model_validate(d) for d in r.json()["datasets"]]

    def cancel_upload(self, model_id: str, upload_id: str) -> None:
        self._call("DELETE", f"/v1/models/{model_id}/uploads/{upload_id}")

    # ------------------------------------------------------------ credits

    def credits(self, limit: int = 20, before: int | None = None) -> Credits:
        """The tenant's balance and ledger entries, newest first (``before``: an entry id, for the next page)."""
        params: dict[str, Any] = {"limit": limit}
        if before is not None:
            params["before"] = before
        return Credits.model_validate(self._call("GET", "/v1/credits", params=params).json())

    # ------------------------------------------------------------ webhooks

    def create_webhook(self, url: str, events: list[str], description: str | None = None) -> Webhook:
        body = {"url": url, "events": events, "description": description}
        return Webhook.model_validate(self._call("POST", "/v1/webhooks", json=body).json())

    def list_webhooks(self) -> list[Webhook]:
        return [Webhook.model_validate(w) for w in self._call("GET", "/v1/webhooks").json()]

    def delete_webhook(self, webhook_id: str) -> None:
        self._call("DELETE", f"/v1/webhooks/{webhook_id}")

    def rotate_webhook_secret(self, webhook_id: str) -> Webhook:
        return Webhook.model_validate(self._call("POST", f"/v1/webhooks/{webhook_id}/rotate-secret").json())

    def ping_webhook(self, webhook_id: str) -> Delivery:
        return Delivery.model_validate(self._call("POST", f"/v1/webhooks/{webhook_id}/ping").json())

    def webhook_deliveries(self, webhook_id: str, limit: int = 100) -> list[Delivery]:
        r = self._call("GET", f"/v1/webhooks/{webhook_id}/deliveries", params={"limit": limit})
        return [Delivery.model_validate(d) for d in r.json()]

    def redeliver(self, webhook_id: str, delivery_id: str) -> Delivery:
        path = f"/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver"
        return Delivery.model_validate(self._call("POST", path).json())

    # ------------------------------------------------------------ transcription

    def transcribe(self, model_id: str, audio: Path) -> dict[str, Any]:
        with audio.open("rb") as f:
            r = self._http.post(f"/v1/models/{model_id}/transcriptions", files={"file": (audio.name, f)}, timeout=None)
        result: dict[str, Any] = raise_for(r).json()
        return result


def _attachment_name(disposition: str | None) -> str | None:
    """The file name of a ``Content-Disposition: attachment; filename=…`` header, without any folder part."""
    if not disposition:
        return None
    for part in disposition.split(";"):
        key, _, value = part.strip().partition("=")
        if key.lower() == "filename" and value:
            return Path(value.strip().strip('"')).name or None
    return None


def check_archive(path: Path) -> None:
    """:class:`Truncated` unless ``path`` is a complete gzip stream (end marker reached, CRC and length right)
    and, when the archive has a ``SHA256SUMS`` member (``sha256sum -c`` format, names relative to its folder),
    every file it lists is in the archive with that digest."""
    digests: dict[PurePosixPath, str] = {}
    manifests: dict[PurePosixPath, str] = {}
    try:
        with gzip.open(path, "rb") as f:
            while f.read(1024 * 1024):
                pass
        with tarfile.open(path, "r|gz") as tar:
            for member in tar:
                data = tar.extractfile(member) if member.isfile() else None
                if data is None:
                    continue
                name = PurePosixPath(member.name)
                if name.name == MANIFEST:
                    manifests[name.parent] = data.read().decode()
                    continue
                h = hashlib.sha256()
                while block := data.read(1024 * 1024):
                    h.update(block)
                digests[name] = h.hexdigest()
    except (EOFError, OSError, zlib.error, tarfile.TarError, UnicodeDecodeError) as exc:
        raise Truncated(f"the archive is incomplete or damaged ({exc}); run the export again") from None
    for folder, text in manifests.items():
        for line in text.splitlines():
            digest, _, listed = line.strip().partition("  ")
            if not listed:
                continue
            if digests.get(folder / listed.lstrip("*")) != digest:
                raise Truncated(f"{listed} in the archive does not match its {MANIFEST} entry; run the export again")
