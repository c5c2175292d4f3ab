"""One model's way through the product, as a client would drive it while a component is down."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from voxtrain_shared.auth import issue_token
from voxtrain_shared.settings import AuthSettings

TEXT = (
    "the patient presents with acute chest pain radiating to the left arm. "
    "an electrocardiogram shows st elevation in the anterior leads. "
    "start aspirin and heparin and call the cardiology team. "
    "blood pressure is one hundred forty over ninety. "
) * 3
SPOKEN = "the patient presents with acute chest pain"
#: HTTP statuses a client can act on when they come with a code and a message (never a bare 500).
CLEAR_STATUSES = {400, 401, 403, 404, 409, 413, 415, 422, 429, 503}


@dataclass
class UploadAnswer:
    status: int | None  #: None: the connection was lost before an answer
    code: str | None
    clear: bool
    stored: int | None  #: datasets the model had afterwards (None: could not be checked)


@dataclass
class ModelRun:
    name: str
    id: uuid.UUID | None = None
    uploaded: bool = False
    answers: list[UploadAnswer] = field(default_factory=list)
    final: dict[str, Any] | None = None  #: the model as GET /v1/models/{id} showed it last
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)  #: requests that never got the answer they needed

    @property
    def status(self) -> int | None:
        return self.final["status"]["code"] if self.final else None

    @property
    def error_code(self) -> str | None:
        err = (self.final or {}).get("last_error") or {}
        return err.get("code")


def make_files(work: Path) -> list[tuple[str, tuple[str, bytes, str]]]:
    """notes.txt, one short espeak-ng WAV and a manifest pairing it with its text (made once, cached)."""
    from tests.trainer.medical_domain import speak

    work.mkdir(parents=True, exist_ok=True)
    wav = work / "ward00.wav"
    if not wav.exists():
        speak(SPOKEN, wav, "en-us")
    manifest = json.dumps({"audio": wav.name, "text": SPOKEN, "split": "test"}) + "\n"
    return [
        ("files", ("notes.txt", TEXT.encode(), "text/plain")),
        ("files", (wav.name, wav.read_bytes(), "audio/wav")),
        ("files", ("pairs.jsonl", manifest.encode(), "application/jsonl")),
    ]


class Api:
    """Public HTTP APIs over the replicas of each service: a request that cannot connect tries another replica."""

    def __init__(self, urls: dict[str, list[str]], signing: AuthSettings, tenant: str) -> None:
        self.urls = urls
        token = issue_token(signing, tenant)
        self.headers = {"Authorization": f"Bearer {token}"}
        self.client = httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=3.0))

    async def close(self) -> None:
        await self.client.aclose()

    async def call(self, service: str, method: str, path: str, **kw: Any) -> httpx.Response:
        """One request; raises httpx.TransportError when no replica answered."""
        urls = random.sample(self.urls[service], len(self.urls[service]))
        last: Exception | None = None
        for url in urls:
            try:
                return await self.client.request(method, url + path, headers=self.headers, **kw)
            except httpx.ConnectError as exc:  # nothing listens: try another replica
                last = exc
        assert last is not None
        raise last

    async def until(
        self,
        service: str,
        method: str,
        path: str,
        deadline: float,
        ok: tuple[int, ...] = (200,),
        notes: list[str] | None = None,
        **kw: Any,
    ) -> httpx.Response | None:
        """Repeat a request until it answers one of ``ok`` (a read, or a write that is safe to repeat).

        When it never does, the last answer goes to ``notes``."""
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                r = await self.call(service, method, path, **kw)
                if r.status_code in ok:
                    return r
                last = f"{r.status_code} {r.text[:200]}"
            except httpx.TransportError as exc:
                last = repr(exc)
            await asyncio.sleep(1.0)
        if notes is not None:
            notes.append(f"{method} {path.split('?')[0]} never answered {ok}; last: {last}")
        return None


def _answer(r: httpx.Response | None) -> tuple[int | None, str | None, bool]:
    if r is None:
        return None, None, False
    try:
        err = r.json()["error"]
        code, clear = err["code"], bool(err["code"]) and bool(err["message"])
    except (ValueError, KeyError, TypeError):
        code, clear = None, False
    return r.status_code, code, clear and r.status_code in CLEAR_STATUSES


async def drive(api: Api, name: str, files: list[Any], deadline: float) -> ModelRun:
    """Create a model, upload its datasets (again after a refusal), then wait until it ends at 4 or 5."""
    run = ModelRun(name)
    started = time.monotonic()
    r = await api.until(
        "models",
        "POST",
        "/v1/models",
        deadline,
        ok=(201, 409),
        notes=run.notes,
        json={"name": name, "language": "en-US"},
    )
    if r is not None and r.status_code == 409:  # created, but the answer was lost: find it by name
        page = await api.until("models", "GET", "/v1/models?limit=200", deadline)
        found = [m for m in (page.json()["items"] if page else []) if m["name"] == name]
        run.id = uuid.UUID(found[0]["id"]) if found else None
    elif r is not None:
        run.id = uuid.UUID(r.json()["id"])
    if run.id is None:
        return run
    path = f"/v1/models/{run.id}/datasets"
    while not run.uploaded and time.monotonic() < deadline:
        response: httpx.Response | None = None
        with contextlib.suppress(httpx.TransportError):  # no answer: judged by what was stored, below
            response = await api.call("datasets", "POST", path, files=files)
        if response is not None and response.status_code == 201:
            run.uploaded = True
            break
        status, code, clear = _answer(response)
        listed = await api.until("datasets", "GET", path, deadline, notes=run.notes)
        stored = len(listed.json()["datasets"]) if listed is not None else None
        run.answers.append(UploadAnswer(status, code, clear, stored))
        if stored:  # it was kept after all (the answer was lost): the upload succeeded
            run.uploaded = True
            break
        await asyncio.sleep(1.0)
    while time.monotonic() < deadline:
        got = await api.until("models", "GET", f"/v1/models/{run.id}", deadline, notes=run.notes)
        if got is None:
            break
        run.final = got.json()
        if run.status in (4, 5):
            break
        await asyncio.sleep(1.0)
    run.seconds = time.monotonic() - started
    return run
