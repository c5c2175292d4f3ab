"""The client against an in-memory voxtrain: API-key exchange, the export download's checks, and following a
model live with polling while the stream is away. (The real-server tests are test_vt_integration.py.)"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from voxtrain_client.api import ApiError, Client, Truncated
from voxtrain_client.auth import ApiKeyAuth
from voxtrain_client.config import ClientConfig
from voxtrain_client.follow import Follower, Snapshot

Handler = Callable[[httpx.Request], httpx.Response]


def client_for(handler: Handler, **config: Any) -> Client:
    return Client(ClientConfig(url="http://vt", **(config or {"token": "t"})), transport=httpx.MockTransport(handler))


# ---------------------------------------------------------------- API key -> short-lived tokens


class Issuer:
    """``POST /v1/auth/token`` and one API route that accepts only the newest token."""

    def __init__(self, expires_in: int = 600) -> None:
        self.expires_in = expires_in
        self.issued: list[str] = []
        self.revoked: set[str] = set()
        self.seen: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/auth/token":
            if json.loads(request.content) != {"api_key": "vtk_good"}:
                return httpx.Response(401, json={"error": {"code": "invalid_api_key", "message": "Unknown key."}})
            self.issued.append(f"tok{len(self.issued) + 1}")
            body = {"access_token": self.issued[-1], "token_type": "bearer", "expires_in": self.expires_in}
            return httpx.Response(200, json=body)
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        self.seen.append(token)
        assert "vtk_good" not in request.headers.get("authorization", ""), "the key goes to the token endpoint only"
        if token not in self.issued or token in self.revoked:
            return httpx.Response(401, json={"error": {"code": "unauthorized", "message": "Token not valid."}})
        return httpx.Response(200, json={"items": [], "total": 0})


def test_an_api_key_is_exchanged_once_and_the_token_reused() -> None:
    issuer = Issuer()
    with client_for(issuer, api_key="vtk_good") as c:
        c.list_models()
        c.list_models()
    assert issuer.issued == ["tok1"] and issuer.seen == ["tok1", "tok1"]


def test_a_token_near_its_expiry_is_exchanged_again_before_it_is_used() -> None:
    issuer = Issuer(expires_in=120)
    now = [0.0]
    auth = ApiKeyAuth("vtk_good", "http://vt", clock=lambda: now[0])
    with httpx.Client(base_url="http://vt", auth=auth, transport=httpx.MockTransport(issuer)) as http:
        assert http.get("/v1/models").status_code == 200
        now[0] = 80.0  # within 30 s of the 120 s lifetime
        assert http.get("/v1/models").status_code == 200
        now[0] = 100.0
        assert http.get("/v1/models").status_code == 200
    assert issuer.seen == ["tok1", "tok1", "tok2"] and auth.exchanges == 2


def test_a_401_exchanges_the_key_again_and_retries_once() -> None:
    issuer = Issuer()
    with client_for(issuer, api_key="vtk_good") as c:
        c.list_models()
        issuer.revoked.add("tok1")
        c.list_models()
        issuer.revoked.add("tok2")
        issuer.revoked.add("tok3")  # whatever it is given next is refused too: the 401 reaches the caller
        with pytest.raises(ApiError) as refused:
            c.list_models()
    assert issuer.seen == ["tok1", "tok1", "tok2", "tok2", "tok3"]
    assert refused.value.status == 401


def test_a_key_voxtrain_refuses_is_an_error_with_its_code_and_where_it_was_sent() -> None:
    with client_for(Issuer(), api_key="vtk_wrong") as c, pytest.raises(ApiError) as refused:
        c.list_models()
    assert refused.value.code == "invalid_api_key"
    assert "Unknown key." in refused.value.message and "http://vt/v1/auth/token" in refused.value.message


# ---------------------------------------------------------------- export


def archive(manifest: str | None = None) -> bytes:
    """A tar.gz like an export: ``model/lm.arpa`` and, last, ``model/SHA256SUMS`` (its true digest unless given)."""
    data = b"\\data\\\nngram 1=1\n" * 5000
    members = [("model/lm.arpa", data)]
    true = f"{hashlib.sha256(data).hexdigest()}  lm.arpa\n"
    members.append(("model/SHA256SUMS", (true if manifest is None else manifest).encode()))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, content in members:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def exporter(body: bytes, length: int | None = None, chunks: int = 7) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/models/m1/export"
        step = max(1, len(body) // chunks)
        parts = [body[i : i + step] for i in range(0, len(body), step)]
        headers = {"content-type": "application/gzip", "content-disposition": 'attachment; filename="../x.tar.gz"'}
        if length is not None:
            headers["content-length"] = str(length)
        return httpx.Response(200, headers=headers, stream=httpx.ByteStream(b"") if not parts else Chunks(parts))

    return handle


class Chunks(httpx.SyncByteStream):
    def __init__(self, parts: list[bytes]) -> None:
        self.parts = parts

    def __iter__(self) -> Iterator[bytes]:
        yield from self.parts


def test_export_writes_the_whole_archive_under_the_servers_name_in_a_folder(tmp_path: Path) -> None:
    body = archive()
    seen: list[tuple[int, int | None]] = []
    with client_for(exporter(body, len(body))) as c:
        path = c.export("m1", tmp_path, lambda n, total: seen.append((n, total)))
    assert path == tmp_path / "x.tar.gz", "the name without any folder the header tried to give"
    assert path.read_bytes() == body
    assert sum(n for n, _ in seen) == len(body) and {t for _, t in seen} == {len(body)}
    assert list(tmp_path.iterdir()) == [path]


@pytest.mark.parametrize(
    ("cut", "length", "says"),
    [
        (0.5, "full", "ended after"),  # fewer bytes than Content-Length
        (0.5, None, "incomplete or damaged"),  # no length given: the gzip stream has no end
        (1.0, None, "incomplete or damaged"),  # damaged below: the CRC does not match
    ],
)
def test_an_export_cut_short_or_damaged_is_refused_and_leaves_no_file(
    tmp_path: Path, cut: float, length: str | None, says: str
) -> None:
    body = archive()
    sent = body[: int(len(body) * cut)]
    if cut == 1.0:
        sent = sent[:100] + bytes([sent[100] ^ 0xFF]) + sent[101:]
    with client_for(exporter(sent, len(body) if length else None)) as c, pytest.raises(Truncated, match=says):
        c.export("m1", tmp_path / "model.tar.gz")
    assert list(tmp_path.iterdir()) == []
    gzip.decompress(body)  # the original is fine


@pytest.mark.parametrize(
    ("manifest", "says"),
    [
        ("0" * 64 + "  lm.arpa\n", "lm.arpa in the archive does not match"),
        (None, None),
        ("0" * 64 + "  missing.bin\n", "missing.bin in the archive does not match"),
    ],
)
def test_an_export_is_checked_against_its_checksum_manifest(
    tmp_path: Path, manifest: str | None, says: str | None
) -> None:
    body = archive(manifest)
    with client_for(exporter(body, len(body))) as c:
        if says is None:
            assert c.export("m1", tmp_path / "ok.tar.gz").read_bytes() == body
            return
        with pytest.raises(Truncated, match=says):
            c.export("m1", tmp_path / "bad.tar.gz")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- following a model


def sse(*events: tuple[str, dict]) -> list[bytes]:
    return [b"retry: 3000\n\n"] + [f"event: {n}\ndata: {json.dumps(d)}\n\n".encode() for n, d in events]


class Dropped(httpx.SyncByteStream):
    """A stream that sends ``parts`` and then breaks."""

    def __init__(self, parts: list[bytes]) -> None:
        self.parts = parts

    def __iter__(self) -> Iterator[bytes]:
        yield from self.parts
        raise httpx.ReadError("connection reset by peer")


def model(code: int, **extra: Any) -> dict[str, Any]:
    labels = {1: "Not Running", 2: "Ready To Run", 3: "Running", 4: "Success", 5: "Failed"}
    return {"id": "m1", "name": "n", "language": "en-US", "status": {"code": code, "label": labels[code]}, **extra}


class Server:
    """GET /v1/models/m1 answers ``states`` in turn (the last one stays); the events route ``streams`` in turn."""

    def __init__(self, states: list[dict[str, Any]], streams: list[httpx.Response]) -> None:
        self.states, self.streams = states, streams
        self.gets = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models/m1/events":
            return self.streams.pop(0)
        assert request.url.path == "/v1/models/m1"
        self.gets += 1
        return httpx.Response(200, json=self.states[min(self.gets, len(self.states)) - 1])


def stream_of(parts: list[bytes], drop: bool = False) -> httpx.Response:
    body = Dropped(parts) if drop else Chunks(parts)
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=body)


def follow(server: Server, interval: float = 5.0) -> tuple[Any, list[Snapshot], list[float], Follower]:
    shown: list[Snapshot] = []
    slept: list[float] = []
    with client_for(server) as c:
        f = Follower(c, "m1", shown.append, interval=interval, sleep=slept.append)
        return f.run(), shown, slept, f


def test_the_line_follows_the_stream_to_success_without_polling() -> None:
    m = "m1"
    stream = stream_of(
        sse(
            ("ready", {"tenant_id": "acme"}),
            ("status", {"model_id": "other", "new_status": 5, "label": "Failed"}),  # another model: ignored
            ("status", {"model_id": m, "new_status": 3, "label": "Running"}),
            ("progress", {"model_id": m, "stage": "adapt_am", "percent": 40.0, "eta_seconds": 95.0}),
            ("progress", {"model_id": m, "stage": "evaluate", "percent": 90.0, "eta_seconds": None}),
            ("status", {"model_id": m, "new_status": 4, "label": "Success"}),
        )
    )
    done, shown, slept, f = follow(Server([model(2), model(4, run={"metrics": {"wer": 0.2}})], [stream]))
    assert done.code == 4 and done.run == {"metrics": {"wer": 0.2}}
    assert [s.text() for s in shown] == [
        "2 Ready To Run",
        "3 Running",
        "3 Running — adapt_am 40%, about 1m35s left",
        "3 Running — evaluate 90%",
        "4 Success",
    ]
    assert {s.via for s in shown} == {"stream"} and slept == [] and f.polls == 0


def test_a_failure_ends_with_the_models_reason() -> None:
    stream = stream_of(sse(("ready", {}), ("status", {"model_id": "m1", "new_status": 5, "label": "Failed"})))
    failed = model(5, last_error={"code": "cancelled", "message": "Training was cancelled by acme."})
    done, *_ = follow(Server([model(3), failed], [stream]))
    assert done.code == 5 and done.last_error == failed["last_error"]


def test_a_dropped_stream_is_bridged_by_polling_and_connected_again() -> None:
    first = stream_of(sse(("ready", {}), ("status", {"model_id": "m1", "new_status": 3, "label": "Running"})), True)
    second = stream_of(sse(("ready", {})))
    states = [model(2), model(3, run={"progress": {"stage": "estimate_lm", "percent": 10}}), model(4)]
    done, shown, slept, f = follow(Server(states, [first, second]))
    assert done.code == 4
    assert [(s.via, s.code) for s in shown] == [("stream", 2), ("stream", 3), ("poll", 3), ("stream", 4)]
    assert shown[2].text() == "3 Running — estimate_lm 10%"
    assert slept == [5.0] and f.connections == 2 and f.polls == 1


def test_a_server_without_the_stream_is_polled_from_then_on() -> None:
    missing = httpx.Response(404, json={"error": {"code": "not_found", "message": "No API."}})
    done, shown, slept, f = follow(Server([model(2), model(3), model(5)], [missing]), interval=0.5)
    assert done.code == 5 and not f.live
    assert [s.via for s in shown] == ["poll"] * 3 and slept == [0.5, 0.5]


def test_a_stream_refused_for_the_credentials_is_not_hidden_by_polling() -> None:
    refused = httpx.Response(401, json={"error": {"code": "unauthorized", "message": "Token expired."}})
    with pytest.raises(ApiError) as exc:
        follow(Server([model(2)], [refused]))
    assert exc.value.code == "unauthorized"


def test_a_stream_ended_by_the_tokens_expiry_is_opened_again_at_once() -> None:
    first = stream_of(sse(("ready", {}), ("expired", {"message": "The token expired: sign in again."})))
    second = stream_of(sse(("ready", {})))
    done, _, slept, f = follow(Server([model(3), model(4)], [first, second]))
    assert done.code == 4 and slept == [] and f.connections == 2 and f.polls == 0


# ---------------------------------------------------------------- credits


def test_credits_are_read_page_by_page_with_the_entry_id_cursor() -> None:
    asked: list[dict[str, str]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/credits"
        asked.append(dict(request.url.params))
        entry = {"id": 7, "kind": "reserve", "amount": 12, "balance_after": 88, "model_id": "m1", "run_id": None}
        entry |= {"actor": "acme", "reason": "training of m1", "created_at": "2026-11-29T22:00:00+00:00"}
        body = {"tenant_id": "acme", "balance": 88, "held": 12, "spent": 0, "entries": [entry], "next_before": 7}
        return httpx.Response(200, json=body)

    with client_for(handle) as c:
        first = c.credits(limit=1)
        c.credits(limit=1, before=first.next_before)
    assert (first.balance, first.held, first.entries[0].kind, first.entries[0].balance_after) == (88, 12, "reserve", 88)
    assert asked == [{"limit": "1"}, {"limit": "1", "before": "7"}]


# ---------------------------------------------------------------- Train right after an upload


def _refusing_train(refusals: int) -> tuple[Handler, list[str]]:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if len(calls) <= refusals:
            error = {"code": "no_datasets", "message": "The model has no datasets yet: ..."}
            return httpx.Response(409, json={"error": error})
        return httpx.Response(202, json={"id": "m1", "status": 2})

    return handler, calls


def test_train_right_after_an_upload_asks_again_while_the_upload_is_being_registered() -> None:
    handler, calls = _refusing_train(refusals=2)
    with client_for(handler) as client:
        assert client.train("m1")["status"] == 2
    assert calls == ["/v1/models/m1/train"] * 3


def test_a_model_that_really_has_no_datasets_is_refused_once_the_wait_is_over() -> None:
    handler, calls = _refusing_train(refusals=1_000)
    with client_for(handler) as client, pytest.raises(ApiError) as exc:
        client.train("m1", registration_wait=1.2)
    assert exc.value.code == "no_datasets" and 2 <= len(calls) <= 5
