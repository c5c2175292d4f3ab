"""Errors clients see: an HTTP status, a code from the spec/design, and a message a person can act on."""

from __future__ import annotations

from typing import Any

from .vocab import ErrorCode


class ApiError(Exception):
    """Raised anywhere in a request; rendered as ``{"error": {"code", "message", "details"}}``."""

    def __init__(self, status: int, code: ErrorCode, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    def body(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": str(self.code), "message": self.message}
        if self.details is not None:
            err["details"] = self.details
        return {"error": err}
