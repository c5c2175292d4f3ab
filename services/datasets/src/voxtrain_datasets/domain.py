"""The rules of dataset uploads (DESIGN.md, "Datasets"; spec, "Uploading Datasets").

Pure and synchronous: type detection by extension, extension-versus-type checks, file count and
size limits, safe display names for user-supplied file names, object keys from ids, the part plan
of a resumable upload, and which model statuses accept dataset changes. Nothing here does I/O;
a refused request raises :class:`Rejected` with the spec's error code.
"""

from __future__ import annotations

import math
import re
import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from voxtrain_shared.errors import Rejected as Rejected  # the domain's refusals are the shared kind
from voxtrain_shared.vocab import DatasetType, ErrorCode, ModelStatus

MiB = 1024**2
GiB = 1024**3
#: S3 multipart rules: every part but the last is at least 5 MiB; at most 10,000 parts.
MIN_PART_SIZE = 5 * MiB
MAX_PARTS = 10_000
MAX_NAME_CHARS = 255
UNNAMED = "unnamed"

#: Content types we store and serve, derived from the (already validated) extension. Never the
#: client's claim: a presigned download must not be served as, say, text/html.
CONTENT_TYPES = {
    ".vtt": "text/vtt; charset=utf-8",
    ".srt": "application/x-subrip",
    ".txt": "text/plain; charset=utf-8",
    ".wav": "audio/wav",
    ".mp3": "audio/mpeg",
    ".m4a": "audio/mp4",
    ".flac": "audio/flac",
    ".jsonl": "application/jsonl",
}
_REMOVED_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Zl", "Zp"}
_SPACES = re.compile(r" +")


class ChecksumAlgorithm(StrEnum):
    """The checksum each part of a resumable upload carries, chosen when the upload starts; storage verifies it
    on arrival. SHA256 (the default, what browsers can compute) or CRC32C (made for transit integrity,
    hardware-accelerated: far less CPU per byte for the uploader and storage). Either way the dataset's identity
    is the whole file's SHA-256."""

    SHA256 = "SHA256"
    CRC32C = "CRC32C"

    @property
    def header(self) -> str:
        """The request header a part is sent with (base64 of the part's checksum, big-endian bytes)."""
        return f"x-amz-checksum-{self.value.lower()}"

    @property
    def body_field(self) -> str:
        """The name of a part's checksum of this algorithm in the API's bodies."""
        return f"checksum_{self.value.lower()}"

    @property
    def label(self) -> str:
        return "SHA-256" if self is ChecksumAlgorithm.SHA256 else "CRC32C"


class DatasetStatus(StrEnum):
    """Lifecycle of one dataset in this service."""

    UPLOADED = "uploaded"  # stored and recorded; DatasetUploaded waits in the outbox
    VALIDATING = "validating"  # DatasetUploaded is on Kafka: the validator has it
    VALID = "valid"  # ValidationPassed
    INVALID = "invalid"  # ValidationFailed (details say why)


@dataclass(frozen=True)
class Dataset:
    """One uploaded file, as this service records it."""

    id: uuid.UUID
    tenant_id: str
    model_id: uuid.UUID
    type: DatasetType
    file_name: str
    original_name: str
    size: int
    sha256: str
    content_type: str
    bucket: str
    object_key: str
    source: str  #: "form" (streamed through the API) or "direct" (resumable upload)
    status: DatasetStatus = DatasetStatus.UPLOADED
    validation: dict[str, Any] | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class UploadSession:
    """A resumable upload of one file straight to storage."""

    id: uuid.UUID
    tenant_id: str
    model_id: uuid.UUID
    dataset_id: uuid.UUID
    type: DatasetType
    file_name: str
    original_name: str
    content_type: str
    object_key: str
    s3_upload_id: str
    size: int
    part_size: int
    part_count: int
    state: str
    created_at: datetime
    expires_at: datetime
    #: what each part is sent with and storage verifies (the multipart upload is opened with it)
    checksum_algorithm: ChecksumAlgorithm = ChecksumAlgorithm.SHA256

    @property
    def plan(self) -> PartPlan:
        return PartPlan(self.size, self.part_size, self.part_count)


@dataclass(frozen=True)
class Completion:
    """What an uploader says when it completes an upload session: the file's SHA-256 as it computed it while
    sending (hex; recorded as the dataset's ``sha256``) and, optionally, the base64 checksums of parts it sent, of
    ``checksum_algorithm`` (checked against the ones storage verified on arrival)."""

    session_id: uuid.UUID
    sha256: str | None = None
    part_checksums: dict[int, str] = field(default_factory=dict)
    checksum_algorithm: ChecksumAlgorithm | None = None  #: of ``part_checksums`` (None: none reported)


@dataclass(frozen=True)
class Limits:
    """Upload limits, from settings."""

    max_file_bytes: int
    max_files: int
    part_size: int
    #: streamed uploads of one tenant in progress at once (all replicas), and its open resumable sessions
    max_concurrent_per_tenant: int = 4
    max_sessions_per_tenant: int = 20


# ---------------------------------------------------------------- types and extensions


def parse_requested_type(value: str | int | None) -> DatasetType | None:
    """``auto`` (or nothing) is None; otherwise a type by name or number (raises :class:`Rejected`)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "auto")):
        return None
    try:
        return DatasetType.parse(value)
    except (KeyError, ValueError):
        names = ", ".join(f"{t.name} ({t.value})" for t in DatasetType)
        raise Rejected(
            ErrorCode.VALIDATION_FAILED, f"Unknown dataset type {str(value)[:40]!r}: use auto, {names}."
        ) from None


def extension(file_name: str) -> str:
    """The lower-case extension with its dot (``""`` when there is none)."""
    base = file_name.rsplit("/", 1)[-1]
    dot = base.rfind(".")
    return base[dot:].lower() if dot > 0 or (dot == 0 and base.count(".") > 1) else ""


def detect_type(file_name: str) -> DatasetType | None:
    """The type ``auto`` gives a file; transcripts are TRANSCRIPT (TEST must be chosen explicitly)."""
    ext = extension(file_name)
    for t in DatasetType:
        if t.auto_detected and ext in t.extensions:
            return t
    return None


def _wrong_format(t: DatasetType, file_name: str) -> Rejected:
    accepted = ", ".join(t.extensions)
    details = {"file_name": file_name, "dataset_type": t.name, "accepted_extensions": list(t.extensions)}
    if t is DatasetType.AUDIO:
        return Rejected(ErrorCode.INVALID_AUDIO_FORMAT, f"{file_name}: audio files must be {accepted}.", details)
    if t in (DatasetType.TRANSCRIPT, DatasetType.TEST):
        return Rejected(
            ErrorCode.INVALID_TRANSCRIPT_FORMAT, f"{file_name}: {t.name} files must be {accepted}.", details
        )
    return Rejected(ErrorCode.VALIDATION_FAILED, f"{file_name}: MANIFEST files must be {accepted}.", details)


def type_for_file(requested: DatasetType | None, file_name: str) -> DatasetType:
    """The type a file is stored as: the requested one if its extension fits, or the detected one."""
    if requested is not None:
        if extension(file_name) not in requested.extensions:
            raise _wrong_format(requested, file_name)
        return requested
    detected = detect_type(file_name)
    if detected is None:
        every = sorted({e for t in DatasetType for e in t.extensions})
        raise Rejected(
            ErrorCode.VALIDATION_FAILED,
            f"{file_name}: cannot detect the dataset type from the extension; "
            f"use one of {', '.join(every)} or choose a type.",
            {"file_name": file_name, "accepted_extensions": every},
        )
    return detected


def content_type_for(file_name: str) -> str:
    """The content type stored with the object, from the extension."""
    return CONTENT_TYPES.get(extension(file_name), "application/octet-stream")


# ---------------------------------------------------------------- count and size


def check_file_count(count: int, max_files: int) -> None:
    """1..max_files files per upload: none is ``validation_failed``, too many ``too_many_files``."""
    if count == 0:
        raise Rejected(
            ErrorCode.VALIDATION_FAILED, f"Select 1-{max_files} files: the form has no file part.", {"files": 0}
        )
    if count > max_files:
        raise Rejected(
            ErrorCode.TOO_MANY_FILES,
            f"Select 1-{max_files} files per upload (got more than {max_files}).",
            {"max_files": max_files},
        )


def check_concurrent_uploads(in_progress: int, limit: int) -> None:
    """A tenant streams at most ``limit`` uploads at once (``too_many_uploads``, before a byte is read)."""
    if in_progress >= limit:
        raise Rejected(
            ErrorCode.TOO_MANY_UPLOADS,
            f"Your organisation already has {in_progress} uploads in progress (the limit is {limit} at once). "
            "Wait for one of them to finish, then send this upload again.",
            {"kind": "concurrent_uploads", "limit": limit, "in_progress": in_progress},
        )


def check_open_sessions(open_sessions: int, limit: int) -> None:
    """A tenant holds at most ``limit`` open resumable upload sessions (``too_many_uploads``)."""
    if open_sessions >= limit:
        raise Rejected(
            ErrorCode.TOO_MANY_UPLOADS,
            f"Your organisation already has {open_sessions} open resumable uploads (the limit is {limit}). "
            "Complete or cancel one of them (DELETE /v1/models/{model_id}/uploads/{upload_id}), or let it expire, "
            "then start this upload again.",
            {"kind": "open_sessions", "limit": limit, "open": open_sessions},
        )


def size_text(limit: int) -> str:
    """A limit as the spec writes it (``10GB``)."""
    for unit, name in ((GiB, "GB"), (MiB, "MB"), (1024, "KB")):
        if limit % unit == 0:
            return f"{limit // unit}{name}"
    return f"{limit} bytes"


def file_too_large(file_name: str, limit: int) -> Rejected:
    """The spec's "File size exceeds 10GB limit", naming the file."""
    return Rejected(
        ErrorCode.FILE_TOO_LARGE,
        f"File size exceeds {size_text(limit)} limit: {file_name}",
        {"file_name": file_name, "limit_bytes": limit},
    )


def check_size(file_name: str, size: int, limit: int) -> None:
    if size > limit:
        raise file_too_large(file_name, limit)


def streaming_part_size(part_size: int, max_file_bytes: int) -> int:
    """Part size of a streamed upload whose length is unknown: big enough to fit the limit in 10,000 parts."""
    return max(part_size, MIN_PART_SIZE, _round_up(math.ceil(max_file_bytes / MAX_PARTS), MiB))


def _round_up(n: int, unit: int) -> int:
    return -(-n // unit) * unit


# ---------------------------------------------------------------- names and keys


def display_name(raw: str) -> str:
    """A file name safe to show and store: no directories, control or invisible characters, or ``..``.

    The name is metadata only; keys never contain it. Directory parts (``/`` or ``\\``) are
    dropped, control, format (bidi overrides, zero-width) and separator characters removed,
    whitespace collapsed, and the result cut to 255 characters keeping the extension.
    """
    name = unicodedata.normalize("NFC", raw).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(
        " " if _is_space(c) else c for c in name if _is_space(c) or unicodedata.category(c) not in _REMOVED_CATEGORIES
    )
    name = _SPACES.sub(" ", name).strip()
    if set(name) <= {"."}:
        return UNNAMED
    if len(name) > MAX_NAME_CHARS:
        ext = extension(name)[:16]
        name = name[: MAX_NAME_CHARS - len(ext)].rstrip() + ext
    return name


def _is_space(c: str) -> bool:
    return c in "\t\n\r\x0b\x0c" or unicodedata.category(c) in ("Zs", "Zl", "Zp")


def escaped_name(raw: str, limit: int = 1024) -> str:
    """The name as received, with invisible and control characters written as ``\\uXXXX`` (for audit)."""
    out = "".join(f"\\u{ord(c):04x}" if unicodedata.category(c) in _REMOVED_CATEGORIES else c for c in raw)
    return out[:limit]


def object_key(tenant_id: str, model_id: uuid.UUID, dataset_id: uuid.UUID) -> str:
    """Where a dataset's bytes live: from ids only (the same layout as ``voxtrain_shared.storage``)."""
    if not isinstance(model_id, uuid.UUID) or not isinstance(dataset_id, uuid.UUID):
        raise TypeError("object keys are built from UUIDs only")
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,62}", tenant_id):
        raise ValueError("not a tenant id")
    return f"tenants/{tenant_id}/models/{model_id}/datasets/{dataset_id}/data"


# ---------------------------------------------------------------- resumable uploads


@dataclass(frozen=True)
class PartPlan:
    """How a file of ``size`` bytes is cut into parts for a resumable upload."""

    size: int
    part_size: int
    count: int

    def part_bytes(self, number: int) -> int:
        """Expected size of part ``number`` (1-based)."""
        if not 1 <= number <= self.count:
            raise ValueError(f"part {number} is outside 1..{self.count}")
        return self.part_size if number < self.count else self.size - self.part_size * (self.count - 1)


def plan_parts(size: int, part_size: int) -> PartPlan:
    """Parts of ``part_size`` (grown in whole MiB when 10,000 would not hold the file)."""
    if size < 1:
        raise Rejected(ErrorCode.VALIDATION_FAILED, "A resumable upload needs a size of at least 1 byte.")
    chosen = max(part_size, MIN_PART_SIZE, _round_up(math.ceil(size / MAX_PARTS), MiB))
    return PartPlan(size=size, part_size=chosen, count=math.ceil(size / chosen))


def check_parts(plan: PartPlan, received: dict[int, int]) -> None:
    """Every planned part is there with its exact size, and nothing else (raises :class:`Rejected`)."""
    missing = [n for n in range(1, plan.count + 1) if n not in received]
    wrong = [
        {"part_number": n, "size": s, "expected": plan.part_bytes(n)}
        for n, s in sorted(received.items())
        if 1 <= n <= plan.count and s != plan.part_bytes(n)
    ]
    extra = sorted(n for n in received if not 1 <= n <= plan.count)
    if not (missing or wrong or extra):
        return
    problems = []
    if missing:
        problems.append(f"part{'s' if len(missing) > 1 else ''} {_ranges(missing)} missing")
    if wrong:
        problems.append(
            "part "
            + ", ".join(f"{w['part_number']} has {w['size']} bytes, expected {w['expected']}" for w in wrong[:5])
        )
    if extra:
        problems.append(f"unexpected part{'s' if len(extra) > 1 else ''} {_ranges(extra)}")
    raise Rejected(
        ErrorCode.VALIDATION_FAILED,
        f"Upload incomplete ({plan.count} parts planned): {'; '.join(problems)}.",
        {"missing_parts": missing, "wrong_size_parts": wrong, "unexpected_parts": extra},
    )


def check_part_numbers(plan: PartPlan, numbers: list[int]) -> None:
    """Every number names a part of the plan (raises :class:`Rejected`)."""
    wrong = sorted({n for n in numbers if not 1 <= n <= plan.count})
    if wrong:
        raise Rejected(
            ErrorCode.VALIDATION_FAILED,
            f"No part {', '.join(map(str, wrong[:5]))} in this upload: it has parts 1-{plan.count}.",
            {"parts": wrong[:20], "part_count": plan.count},
        )


def reported_algorithm(algorithms: set[ChecksumAlgorithm]) -> ChecksumAlgorithm | None:
    """The one algorithm of the part checksums a request gives (None: it gives none; raises :class:`Rejected` for a
    mix)."""
    if len(algorithms) > 1:
        raise Rejected(
            ErrorCode.VALIDATION_FAILED,
            "Give every part's checksum of the same algorithm: the one the upload was started with.",
            {"algorithms": sorted(algorithms)},
        )
    return next(iter(algorithms), None)


def check_checksum_algorithm(session: UploadSession, given: ChecksumAlgorithm | None) -> None:
    """Part checksums a request gives are of the session's algorithm (raises :class:`Rejected`)."""
    chosen = session.checksum_algorithm
    if given is not None and given is not chosen:
        raise Rejected(
            ErrorCode.VALIDATION_FAILED,
            f"{session.file_name}: this upload's parts carry {chosen.label} checksums (chosen when it was started), "
            f"so give each part's {chosen.body_field}, not {given.body_field}.",
            {"checksum_algorithm": chosen.value},
        )


def check_part_checksums(
    file_name: str,
    stored: dict[int, str | None],
    reported: dict[int, str],
    algorithm: ChecksumAlgorithm = ChecksumAlgorithm.SHA256,
) -> None:
    """Every part carries the checksum (of the upload's ``algorithm``) storage verified on arrival, and each part
    checksum the uploader reports is that one (raises :class:`Rejected`; the parts named are to be sent again, with
    their checksum)."""
    unchecked = sorted(n for n, c in stored.items() if not c)
    if unchecked:
        raise Rejected(
            ErrorCode.PART_CHECKSUM_MISSING,
            f"{file_name}: part{'s' if len(unchecked) > 1 else ''} {_ranges(unchecked)} reached storage without a "
            f"{algorithm.label} checksum, so nothing verified their bytes. Send them again with the header "
            f"{algorithm.header} (base64 of the part's {algorithm.label}) — `vt datasets upload` does this when you "
            "run it again — then complete the upload.",
            {"parts": unchecked, "checksum_algorithm": algorithm.value},
        )
    differ = sorted(n for n, c in reported.items() if stored.get(n) != c)
    if differ:
        raise Rejected(
            ErrorCode.PART_CHECKSUM_MISMATCH,
            f"{file_name}: storage holds other bytes than the ones you sent for part{'s' if len(differ) > 1 else ''} "
            f"{_ranges(differ)} (their {algorithm.label} differs from the one you report). Send "
            f"{'them' if len(differ) > 1 else 'it'} again, then complete the upload.",
            {"parts": [{"part_number": n, "reported": reported[n], "stored": stored.get(n)} for n in differ[:20]]},
        )


def _ranges(numbers: list[int]) -> str:
    out: list[str] = []
    start = prev = numbers[0]
    for n in [*numbers[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        out.append(str(start) if start == prev else f"{start}-{prev}")
        if n is not None:
            start = prev = n
    return ", ".join(out)


# ---------------------------------------------------------------- model status


def check_model_accepts_changes(model_id: uuid.UUID, status: ModelStatus | None) -> None:
    """Datasets may be added or removed in 1 and 5 only; None means unknown or deleted (not found)."""
    if status is None:
        raise model_not_found(model_id)
    if status.locked:
        raise Rejected(
            ErrorCode.MODEL_LOCKED,
            f"The model is {status.label} ({status.value}): datasets cannot be added or removed "
            "until training finishes.",
            {"status": status.value},
        )
    if status is ModelStatus.SUCCESS:
        raise Rejected(
            ErrorCode.INVALID_STATUS,
            "The model is trained (Success, 4) and final: its datasets cannot change; "
            "create a new model to train again.",
            {"status": status.value},
        )


def model_not_found(model_id: uuid.UUID) -> Rejected:
    return Rejected(ErrorCode.NOT_FOUND, f"No model {model_id} exists for this tenant.")
