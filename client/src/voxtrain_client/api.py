"""A typed client of voxtrain's public HTTP API (one base URL: the Ingress, or the console locally).

Every refusal becomes an :class:`ApiError` with the API's error code and message. Transient failures
(connection errors, 502/503/504) are retried with exponential backoff; nothing else is.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

import httpx
from pydantic import BaseModel, ConfigDict
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

from .config import ClientConfig

RETRIED_STATUS = {502, 503, 504}


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


class Dataset(_View):
    id: str
    type: str
    file_name: str
    size: int
    status: str
    validation: dict[str, Any] | None = None


class PartUrl(_View):
    part_number: int
    size: int
    url: str


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


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, httpx.TransportError):
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
            headers={"Authorization": f"Bearer {config.token}"},
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
        return raise_for(self._http.request(method, path, **kwargs))

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

    def train(self, model_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", f"/v1/models/{model_id}/train").json()
        return result

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

    def start_upload(self, model_id: str, file_name: str, size: int, dataset_type: str = "auto") -> Upload:
        body = {"file_name": file_name, "size": size, "type": dataset_type}
        return Upload.model_validate(self._call("POST", f"/v1/models/{model_id}/uploads", json=body).json())

    def get_upload(self, model_id: str, upload_id: str) -> Upload:
        return Upload.model_validate(self._call("GET", f"/v1/models/{model_id}/uploads/{upload_id}").json())

    @retry_transient
    def put_part(self, url: str, data: bytes) -> None:
        raise_for(self._storage.put(url, content=data))

    def complete_uploads(self, model_id: str, uploads: list[tuple[str, str | None]]) -> list[Dataset]:
        """Complete several sessions as one upload (one batch: training waits for all of them)."""
        body = {"uploads": [{"id": u, "sha256": sha} for u, sha in uploads]}
        r = self._call("POST", f"/v1/models/{model_id}/uploads/complete", json=body)
        return [Dataset.model_validate(d) for d in r.json()["datasets"]]

    def cancel_upload(self, model_id: str, upload_id: str) -> None:
        self._call("DELETE", f"/v1/models/{model_id}/uploads/{upload_id}")

    # ------------------------------------------------------------ transcription

    def transcribe(self, model_id: str, audio: Path) -> dict[str, Any]:
        with audio.open("rb") as f:
            r = self._http.post(f"/v1/models/{model_id}/transcriptions", files={"file": (audio.name, f)}, timeout=None)
        result: dict[str, Any] = raise_for(r).json()
        return result
