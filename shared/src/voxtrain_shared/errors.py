"""Errors clients see: an HTTP status, a code from the spec/design, and a message a person can act on."""

from __future__ import annotations

from typing import Any

from .vocab import ErrorCode


class ApiError(Exception):
    """Raised anywhere in a request; rendered as ``{"error": {"code", "message", "details"}}``."""

    def __init__(
        self, status: int, code: ErrorCode, message: str, details: Any = None, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers  # sent with the answer (e.g. Retry-After)

    def body(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": str(self.code), "message": self.message}
        if self.details is not None:
            err["details"] = self.details
        return {"error": err}


class Rejected(Exception):
    """A domain rule refuses a request: an :class:`ErrorCode` and a message that says what to do.

    Raised by pure domain code (it knows no HTTP); each service's HTTP layer maps codes to statuses
    (:func:`voxtrain_shared.http.answer_refusals`), and Kafka consumers turn it into a rejection event.
    """

    def __init__(self, code: ErrorCode, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
