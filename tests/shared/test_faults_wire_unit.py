"""Pure parts: which errors are transient, bounded decoding, events cut to size, the HTTP answer to an outage."""

from __future__ import annotations

import uuid

import asyncpg
import httpx
import pytest
from aiokafka import errors as kafka_errors
from fastapi import FastAPI
from minio.error import S3Error
from pydantic import BaseModel
from urllib3.exceptions import MaxRetryError, NewConnectionError

from voxtrain_shared import events as ev
from voxtrain_shared import http, wire
from voxtrain_shared.faults import KAFKA, MINIO, POSTGRES, Kind, PermanentError, backoff, classify
from voxtrain_shared.health import Health
from voxtrain_shared.vocab import ErrorCode, ModelStatus


def _s3(code: str) -> S3Error:
    return S3Error(None, code, "m", "r", "req", "host")  # no HTTP response in a unit test


@pytest.mark.parametrize(
    "exc, kind, dependency",
    [
        (asyncpg.exceptions.CannotConnectNowError("the database system is starting up"), Kind.TRANSIENT, POSTGRES),
        (asyncpg.exceptions.AdminShutdownError("terminating connection"), Kind.TRANSIENT, POSTGRES),
        (asyncpg.exceptions.ConnectionDoesNotExistError("closed in the middle"), Kind.TRANSIENT, POSTGRES),
        (asyncpg.exceptions.SerializationError("could not serialize"), Kind.TRANSIENT, POSTGRES),
        (asyncpg.exceptions.DeadlockDetectedError("deadlock"), Kind.TRANSIENT, POSTGRES),
        (asyncpg.exceptions.QueryCanceledError("statement timeout"), Kind.TRANSIENT, POSTGRES),
        (asyncpg.exceptions.TooManyConnectionsError("too many"), Kind.TRANSIENT, POSTGRES),
        (asyncpg.exceptions.InterfaceError("connection is closed"), Kind.TRANSIENT, POSTGRES),
        (asyncpg.exceptions.UniqueViolationError("duplicate key"), Kind.PERMANENT, ""),
        (asyncpg.exceptions.InvalidTextRepresentationError("bad uuid"), Kind.PERMANENT, ""),
        (asyncpg.exceptions.UndefinedTableError("no table"), Kind.UNKNOWN, ""),
        (kafka_errors.KafkaConnectionError("no broker"), Kind.TRANSIENT, KAFKA),
        (kafka_errors.NotLeaderForPartitionError(), Kind.TRANSIENT, KAFKA),
        (kafka_errors.KafkaTimeoutError(), Kind.TRANSIENT, KAFKA),
        (kafka_errors.MessageSizeTooLargeError(), Kind.PERMANENT, ""),
        (_s3("SlowDown"), Kind.TRANSIENT, MINIO),
        (_s3("NoSuchKey"), Kind.UNKNOWN, ""),
        (MaxRetryError(None, "/b/k", NewConnectionError(None, "refused")), Kind.TRANSIENT, MINIO),
        (PermanentError("wrong"), Kind.PERMANENT, ""),
        (RuntimeError("bug"), Kind.UNKNOWN, ""),
        (KeyError("bug"), Kind.UNKNOWN, ""),
        (TimeoutError(), Kind.TRANSIENT, ""),
        (ConnectionResetError("reset by peer"), Kind.TRANSIENT, ""),
    ],
)
def test_classify(exc: BaseException, kind: Kind, dependency: str) -> None:
    fault = classify(exc)
    assert (fault.kind, fault.dependency) == (kind, dependency)


def test_classify_follows_the_cause_and_names_the_dependency_from_the_traceback() -> None:
    try:
        try:
            raise ConnectionRefusedError("refused")
        except ConnectionRefusedError as inner:
            raise ValueError("could not load the dataset") from inner
    except ValueError as exc:
        assert classify(exc).kind is Kind.TRANSIENT
    try:
        raise PermanentError("no such dataset") from ConnectionRefusedError()
    except PermanentError as exc:
        assert classify(exc).kind is Kind.PERMANENT  # an explicit verdict wins over its cause


def test_a_pydantic_validation_error_is_permanent() -> None:
    class M(BaseModel):
        n: int

    with pytest.raises(Exception) as info:
        M.model_validate({"n": "x"})
    assert classify(info.value).kind is Kind.PERMANENT


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff(n, base=1, cap=10) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
    assert backoff(10_000, base=0.2, cap=30) == 30


def test_json_depth_ignores_brackets_in_strings() -> None:
    assert wire.json_depth(b'{"a": [1, {"b": "[[[[{{{{"}]}') == 3
    assert wire.json_depth(b'"\\"[[["') == 0
    assert wire.json_depth(b"[" * 100_000) == 100_000


def test_decode_gives_an_envelope_or_poison_and_nothing_else() -> None:
    env = ev.wrap(ev.ModelDeleted(), tenant_id="a", model_id=uuid.uuid4())
    assert wire.decode(env.to_bytes()) == env
    for raw in (b"", b"[" * 100, b"\x00", b"[1]", b"null", b"{}", b"1e999999"):
        with pytest.raises(wire.Poison):
            wire.decode(raw)
    with pytest.raises(wire.Poison, match="header 'x' is not UTF-8"):
        wire.decode_headers([("x", b"\xc3\x28")])
    assert wire.decode_headers([("Authorization", b"Bearer t"), ("empty", None)]) == {
        "authorization": "Bearer t",
        "empty": "",
    }


def _failed_status(datasets: int, findings: int) -> ev.Envelope:
    details = [
        {
            "dataset_id": str(uuid.uuid4()),
            "file_name": f"f{i}.txt",
            "code": "invalid_transcript_format",
            "message": "line 3 is not valid UTF-8",
            "details": [{"line": n, "message": "not a cue: " + "x" * 40} for n in range(findings)],
        }
        for i in range(datasets)
    ]
    error = ev.ErrorInfo(code=ErrorCode.VALIDATION_FAILED, message="datasets failed validation", details=details)
    return ev.wrap(
        ev.TrainingStatusChanged(
            old_status=ModelStatus.READY_TO_RUN,
            new_status=ModelStatus.FAILED,
            status_name="FAILED",
            badge="red",
            reason="failed",
            error=error,
        ),
        tenant_id="a",
        model_id=uuid.uuid4(),
    )


def test_fit_leaves_small_events_alone() -> None:
    env = _failed_status(2, 3)
    assert wire.fit(env) is env


def test_fit_cuts_long_finding_lists_with_counts_and_the_result_still_parses() -> None:
    env = _failed_status(300, 50)
    assert wire.size(env) > 1024 * 1024  # over Kafka's limit: this event would jam the outbox
    fitted = wire.fit(env)
    assert wire.size(fitted) <= wire.MAX_EVENT_BYTES
    parsed = wire.decode(fitted.to_bytes())
    msg = parsed.payload()
    assert isinstance(msg, ev.TrainingStatusChanged) and msg.error is not None
    kept_datasets = len(msg.error.details)
    assert kept_datasets + msg.error.details_truncated == 300
    kept_findings = sum(len(d["details"]) for d in msg.error.details)
    dropped_findings = sum(d.get("details_truncated", 0) for d in msg.error.details)
    assert kept_findings + dropped_findings == kept_datasets * 50
    assert msg.error.message == "datasets failed validation" and parsed.id == env.id


async def test_http_answers_503_with_a_code_while_a_dependency_is_away_and_500_with_a_code_otherwise() -> None:
    app = FastAPI()
    health = Health()

    async def ok() -> None:
        return None

    http.install(app, {"postgres": ok}, health)

    @app.get("/down")
    async def down() -> None:
        raise asyncpg.exceptions.CannotConnectNowError("the database system is starting up")

    @app.get("/bug")
    async def bug() -> None:
        raise RuntimeError("boom")

    # raise_app_exceptions=False: what an HTTP client sees (in-process, Starlette re-raises after answering)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        r = await client.get("/down")
        assert r.status_code == 503 and r.headers["Retry-After"] == "5"
        assert r.json()["error"]["code"] == "dependency_unavailable"
        assert r.json()["error"]["details"] == {"dependency": "postgres"}
        r = await client.get("/bug")
        assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"
        assert r.headers[http.CORRELATION_HEADER] in r.json()["error"]["message"]
        assert (await client.get("/health/ready")).status_code == 200
        health.blocked("consumer g", "minio", "SlowDown")
        r = await client.get("/health/ready")
        assert r.status_code == 503 and r.json()["missing"] == ["minio"]
        assert "object storage" in r.json()["blocked"]["consumer g"]
        health.clear("consumer g")
        assert (await client.get("/health/ready")).status_code == 200
