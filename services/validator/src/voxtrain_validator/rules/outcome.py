"""What a content check returns: pass or fail, a code, a message a person can act on, and where.

Pure values, no I/O. Failures carry the spec's error codes; details and warnings are capped so a
file with a million bad lines still produces a small event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from voxtrain_shared.vocab import ErrorCode

MAX_DETAILS = 50
MAX_WARNINGS = 20


class SourceReadError(Exception):
    """Reading the stream itself failed (storage, network): not the file's fault, so no outcome.

    Every rule function re-raises a failure of ``stream.read``/``seek`` as this error instead of
    blaming the content; the caller retries the message or dead-letters it.
    """


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem, located as precisely as the format allows."""

    message: str
    line: int | None = None
    byte_offset: int | None = None
    field: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form without empty keys (for ``ErrorInfo.details``)."""
        out: dict[str, Any] = {"message": self.message}
        if self.line is not None:
            out["line"] = self.line
        if self.byte_offset is not None:
            out["byte_offset"] = self.byte_offset
        if self.field is not None:
            out["field"] = self.field
        return out


@dataclass(frozen=True, slots=True)
class Outcome:
    """The verdict on one dataset file; ``metadata`` is JSON-ready and must be treated as read-only."""

    passed: bool
    code: ErrorCode | None = None
    message: str | None = None
    details: tuple[Finding, ...] = ()
    details_dropped: int = 0
    warnings: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (code as its string value)."""
        return {
            "passed": self.passed,
            "code": str(self.code) if self.code is not None else None,
            "message": self.message,
            "details": [f.to_dict() for f in self.details],
            "details_dropped": self.details_dropped,
            "warnings": list(self.warnings),
            "metadata": self.metadata,
        }


class Report:
    """Collects findings and warnings while a file is read, keeping only the first few of each.

    Not shared between threads: each validation builds its own.
    """

    def __init__(self, max_details: int = MAX_DETAILS, max_warnings: int = MAX_WARNINGS) -> None:
        self._max_details = max_details
        self._max_warnings = max_warnings
        self.findings: list[Finding] = []
        self.error_count = 0
        self._warnings: list[str] = []
        self._warning_count = 0

    def error(
        self, message: str, *, line: int | None = None, byte_offset: int | None = None, field: str | None = None
    ) -> None:
        """Record a problem that makes the file fail."""
        self.error_count += 1
        if len(self.findings) < self._max_details:
            self.findings.append(Finding(message, line=line, byte_offset=byte_offset, field=field))

    def warn(self, message: str) -> None:
        """Record something suspicious that does not make the file fail."""
        self._warning_count += 1
        if len(self._warnings) < self._max_warnings:
            self._warnings.append(message)

    @property
    def failed(self) -> bool:
        return self.error_count > 0

    def warnings(self) -> tuple[str, ...]:
        dropped = self._warning_count - len(self._warnings)
        if dropped:
            return (*self._warnings, f"… and {dropped} more warnings")
        return tuple(self._warnings)

    def outcome(self, code: ErrorCode, metadata: dict[str, Any], summary: str | None = None) -> Outcome:
        """The verdict: failed with ``code`` if any error was recorded, else passed.

        The failure's message is ``summary`` or, by default, the first finding's message (with a
        count of the others), so a person reads the most important problem first.
        """
        if not self.failed:
            return passed(metadata, self.warnings())
        if summary is None:
            summary = self.findings[0].message
            if self.error_count > 1:
                summary += f" (and {plural(self.error_count - 1, 'more problem')})"
        return Outcome(
            passed=False,
            code=code,
            message=summary,
            details=tuple(self.findings),
            details_dropped=self.error_count - len(self.findings),
            warnings=self.warnings(),
            metadata=metadata,
        )


def passed(metadata: dict[str, Any], warnings: tuple[str, ...] = ()) -> Outcome:
    """A file that is fine (perhaps with warnings)."""
    return Outcome(passed=True, warnings=warnings, metadata=metadata)


def failed(
    code: ErrorCode,
    message: str,
    *,
    details: tuple[Finding, ...] = (),
    metadata: dict[str, Any] | None = None,
    warnings: tuple[str, ...] = (),
) -> Outcome:
    """A file that is not usable, with one summary ``message`` (also the first detail if none given)."""
    return Outcome(
        passed=False,
        code=code,
        message=message,
        details=details or (Finding(message),),
        warnings=warnings,
        metadata=metadata or {},
    )


def plural(count: int, word: str, plural_word: str | None = None) -> str:
    """``plural(1, "line") == "1 line"``, ``plural(3, "line") == "3 lines"``."""
    return f"{count} {word if count == 1 else (plural_word or word + 's')}"


def clock(seconds: float) -> str:
    """Seconds as a person reads a media position: ``75.25 -> "1:15.25"``, ``3725.0 -> "1:02:05.00"``."""
    seconds = max(0.0, seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours >= 1:
        return f"{int(hours)}:{int(minutes):02d}:{secs:05.2f}"
    return f"{int(minutes)}:{secs:05.2f}"
