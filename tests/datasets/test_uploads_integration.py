"""Streamed form uploads against real MinIO, PostgreSQL and Kafka: records, objects, events, refusals."""

import hashlib
import os
import uuid

import httpx
import pytest

from tests.datasets.conftest import LIMIT, MiB
from tests.support import TopicReader, auth_headers, eventually, publish
from voxtrain_shared import events as ev
from voxtrain_shared.vocab import DatasetType, ErrorCode, ModelStatus

pytestmark = pytest.mark.integration
ACME = auth_headers("acme")


def _uploaded_bytes() -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("voxtrain_upload_bytes_total", {"mode": "stream"}) or 0.0


def uploads_of(records, mid) -> list[ev.Envelope]:
    out = [ev.REGISTRY.parse(r.value) for r in records]
    return [e for e in out if e.model_id == mid]


async def test_a_multi_file_upload_stores_records_objects_and_events(datasets, stack) -> None:
    mid = await datasets.new_model()
    files = [
        ("notes.txt", b"the patient presents with chest pain\n"),
        ("dictation.wav", os.urandom(300_000)),
        ("pairs.jsonl", b'{"audio": "dictation.wav", "text": "hello"}\n'),
        ("big.flac", os.urandom(11 * MiB)),
    ]  # crosses the 5 MiB part size: a real multipart upload
    before = _uploaded_bytes()
    async with TopicReader(stack.kafka_bootstrap, datasets.topics.datasets) as reader:
        r = await datasets.upload(mid, files)
        assert r.status_code == 201, r.text
        got = r.json()["datasets"]
        records = await reader.read(len(files))
    assert _uploaded_bytes() - before == sum(len(d) for _, d in files)  # the voxtrain_upload_bytes_total metric
    assert [(g["file_name"], g["type"], g["type_code"]) for g in got] == [
        ("notes.txt", "TRANSCRIPT", 1),
        ("dictation.wav", "AUDIO", 3),
        ("pairs.jsonl", "MANIFEST", 4),
        ("big.flac", "AUDIO", 3),
    ]
    for g, (_, data) in zip(got, files, strict=True):
        assert g["size"] == len(data) and g["sha256"] == hashlib.sha256(data).hexdigest()
        assert g["status"] == "uploaded" and g["source"] == "form" and g["validation"] is None
        key = f"tenants/acme/models/{mid}/datasets/{g['id']}/data"
        assert await datasets.object_bytes(key) == data

    events = uploads_of(records, mid)
    assert [e.type for e in events] == ["DatasetUploaded"] * 4
    first = events[0].payload().dataset
    assert first.dataset_id == uuid.UUID(got[0]["id"]) and first.dataset_type is DatasetType.TRANSCRIPT
    assert first.object_key.endswith(f"/datasets/{got[0]['id']}/data") and first.bucket == datasets.store.bucket
    assert first.sha256 == got[0]["sha256"] and events[0].payload().content_type.startswith("text/plain")
    assert {r.key for r in records} == {str(mid).encode()}  # keyed by model: a model's events stay ordered
    # Once its DatasetUploaded is on Kafka, each dataset is with the validator.
    await eventually(lambda: _all(datasets, mid, "validating"))


async def _all(datasets, mid, status: str) -> bool:
    return all(d["status"] == status for d in await datasets.listing(mid))


async def test_more_than_ten_files_or_none_are_refused_and_nothing_is_kept(datasets) -> None:
    mid = await datasets.new_model()
    r = await datasets.upload(mid, [(f"f{i}.txt", b"words") for i in range(11)])
    assert r.status_code == 422 and r.json()["error"]["code"] == "too_many_files"
    r = await datasets.client.post(
        f"/v1/models/{mid}/datasets",
        headers=ACME,
        data={"type": "auto"},
        files=[("files", ("", b"", "application/octet-stream"))],
    )  # an empty file input
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_failed"
    assert "1-10 files" in r.json()["error"]["message"]
    assert await datasets.listing(mid) == []
    assert await datasets.store.leftovers(datasets.prefix(mid)) == []


@pytest.mark.parametrize(
    ("kind", "name", "code"),
    [
        ("TRANSCRIPT", "a.wav", "invalid_transcript_format"),
        ("TEST", "a.mp3", "invalid_transcript_format"),
        ("AUDIO", "a.txt", "invalid_audio_format"),
        ("3", "a.vtt", "invalid_audio_format"),
        ("MANIFEST", "a.txt", "validation_failed"),
        ("auto", "a.docx", "validation_failed"),
    ],
)
async def test_a_wrong_extension_rejects_the_whole_request(datasets, kind: str, name: str, code: str) -> None:
    mid = await datasets.new_model()
    good = {
        "TRANSCRIPT": "ok.txt",
        "TEST": "ok.srt",
        "AUDIO": "ok.wav",
        "3": "ok.flac",
        "MANIFEST": "ok.jsonl",
        "auto": "ok.vtt",
    }[kind]
    r = await datasets.upload(mid, [(good, b"x" * 1000), (name, b"y" * 1000)], type_=kind)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == code and name in err["message"]
    assert await datasets.listing(mid) == []
    assert await datasets.store.leftovers(datasets.prefix(mid)) == []  # the good file's object is gone too


async def test_auto_detects_every_extension_and_type_can_come_as_a_query(datasets) -> None:
    mid = await datasets.new_model()
    names = ["a.vtt", "b.SRT", "c.txt", "d.wav", "e.mp3", "f.m4a", "g.flac", "h.jsonl"]
    r = await datasets.upload(mid, [(n, n.encode()) for n in names] + [("empty.txt", b"")])
    assert r.status_code == 201, r.text
    assert [d["type"] for d in r.json()["datasets"]] == ["TRANSCRIPT"] * 3 + ["AUDIO"] * 4 + ["MANIFEST", "TRANSCRIPT"]
    assert r.json()["datasets"][-1]["size"] == 0  # content checks (non-empty text) are the validator's job
    assert [d["content_type"] for d in r.json()["datasets"]][3:5] == ["audio/wav", "audio/mpeg"]
    r = await datasets.client.post(
        f"/v1/models/{mid}/datasets?type=TEST", headers=ACME, files=[("files", ("eval.vtt", b"WEBVTT\n", "text/vtt"))]
    )
    assert r.status_code == 201 and r.json()["datasets"][0]["type"] == "TEST"
    # A type field after the files is refused (its files were checked against another type).
    body = httpx.Request(
        "POST", "http://x", files=[("files", ("a.txt", b"1", "text/plain")), ("type", (None, "AUDIO"))]
    )
    r = await datasets.client.post(f"/v1/models/{mid}/datasets", headers={**ACME, **body.headers}, content=body.read())
    assert r.status_code == 422 and "before the files" in r.json()["error"]["message"]
    assert len(await datasets.listing(mid)) == 10


async def test_an_oversize_file_is_stopped_while_streaming(datasets, stack) -> None:
    mid = await datasets.new_model()
    async with TopicReader(stack.kafka_bootstrap, datasets.topics.datasets) as reader:
        r = await datasets.upload(mid, [("fine.wav", os.urandom(MiB)), ("huge.wav", os.urandom(LIMIT + 1))])
        assert r.status_code == 413, r.text
        assert r.json()["error"] == {
            "code": "file_too_large",
            "message": "File size exceeds 12MB limit: huge.wav",
            "details": {"file_name": "huge.wav", "limit_bytes": LIMIT},
        }
        await reader.settle(1.5)
    assert uploads_of(reader.records, mid) == []
    assert await datasets.listing(mid) == []
    assert len([k for k in datasets.store.written if str(mid) in k]) == 2  # both were on their way
    assert await datasets.store.leftovers(datasets.prefix(mid)) == []  # object deleted, multipart aborted
    assert [k for k in await datasets.pending_objects() if str(mid) in k] == []


async def test_unsafe_file_names_are_displayed_safely_and_never_reach_keys(datasets) -> None:
    mid = await datasets.new_model()
    boundary = "b0undary"
    names = [
        "../../../etc/passwd.txt",
        "..\\..\\boot.ini.txt",
        "a\x01b\x7f.txt",
        "\u202etxt.exe.wav",
        "..",
        "tab\there.vtt",
    ]
    parts = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{n}"\r\n\r\n'.encode() + b"data\r\n"
        for n in names
        if n != ".."
    )
    parts += f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename=".."\r\n\r\nx\r\n'.encode()
    r = await datasets.client.post(
        f"/v1/models/{mid}/datasets",
        content=parts + f"--{boundary}--\r\n".encode(),
        headers={**ACME, "content-type": f"multipart/form-data; boundary={boundary}"},
    )
    # ".." has no extension to detect: refused, and with it the whole request.
    assert r.status_code == 422 and r.json()["error"]["message"].startswith("unnamed:")
    body = parts.split(f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename=".."'.encode())[0]
    r = await datasets.client.post(
        f"/v1/models/{mid}/datasets",
        content=body + f"--{boundary}--\r\n".encode(),
        headers={**ACME, "content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert r.status_code == 201, r.text
    got = r.json()["datasets"]
    assert [g["file_name"] for g in got] == ["passwd.txt", "boot.ini.txt", "ab.txt", "txt.exe.wav", "tab here.vtt"]
    assert [g["original_name"] for g in got][2:4] == ["a\\u0001b\\u007f.txt", "\\u202etxt.exe.wav"]
    assert got[0]["original_name"] == "../../../etc/passwd.txt"
    keys = sorted(await datasets.store.keys(datasets.prefix(mid)))
    assert keys == sorted(f"tenants/acme/models/{mid}/datasets/{g['id']}/data" for g in got)


async def test_another_tenant_sees_nothing_and_tokens_are_required(datasets) -> None:
    mid = await datasets.new_model("acme")
    r = await datasets.upload(mid, [("a.txt", b"secret words")])
    ds = r.json()["datasets"][0]["id"]
    other = auth_headers("other")
    calls = [
        ("GET", f"/v1/models/{mid}/datasets"),
        ("GET", f"/v1/models/{mid}/datasets/{ds}"),
        ("GET", f"/v1/models/{mid}/datasets/{ds}/download"),
        ("DELETE", f"/v1/models/{mid}/datasets/{ds}"),
    ]
    for method, url in calls:
        r = await datasets.client.request(method, url, headers=other)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", (method, url, r.text)
        assert (await datasets.client.request(method, url)).status_code == 401
    r = await datasets.upload(mid, [("b.txt", b"x")], tenant="other")
    assert r.status_code == 404
    r = await datasets.client.post(f"/v1/models/{mid}/uploads", headers=other, json={"file_name": "a.wav", "size": 10})
    assert r.status_code == 404
    assert (await datasets.client.post(f"/v1/models/{mid}/datasets", files={"f": ("a.txt", b"1")})).status_code == 401
    assert [d["id"] for d in await datasets.listing(mid)] == [ds]  # still there, untouched
    r = await datasets.client.get(f"/v1/models/{uuid.uuid4()}/datasets", headers=ACME)
    assert r.status_code == 404


async def test_datasets_cannot_change_while_training_or_once_trained(datasets) -> None:
    mid = await datasets.new_model()
    ds = (await datasets.upload(mid, [("a.txt", b"words")])).json()["datasets"][0]["id"]
    for status, code in [
        (ModelStatus.READY_TO_RUN, "model_locked"),
        (ModelStatus.RUNNING, "model_locked"),
        (ModelStatus.SUCCESS, "invalid_status"),
    ]:
        await datasets.set_status(mid, status)
        r = await datasets.upload(mid, [("b.txt", b"more words")])
        assert r.status_code == 409 and r.json()["error"]["code"] == code, r.text
        r = await datasets.client.delete(f"/v1/models/{mid}/datasets/{ds}", headers=ACME)
        assert r.status_code == 409 and r.json()["error"]["code"] == code
        r = await datasets.client.post(
            f"/v1/models/{mid}/uploads", headers=ACME, json={"file_name": "a.wav", "size": 10}
        )
        assert r.status_code == 409 and r.json()["error"]["code"] == code
    listed = await datasets.client.get(f"/v1/models/{mid}/datasets", headers=ACME)
    assert listed.json()["model"] == {"id": str(mid), "status": 4, "status_name": "SUCCESS", "accepts_datasets": False}
    failed = await datasets.new_model(status=ModelStatus.FAILED)  # a failed model takes new datasets
    assert (await datasets.upload(failed, [("c.txt", b"retry")])).status_code == 201
    assert (await datasets.client.get(f"/v1/models/{mid}/datasets/{ds}/download", headers=ACME)).status_code == 200


async def test_validation_verdicts_show_in_the_listing(datasets, stack) -> None:
    mid = await datasets.new_model()
    got = (await datasets.upload(mid, [("good.txt", b"fine"), ("bad.wav", b"not audio")])).json()["datasets"]
    good, bad = (uuid.UUID(g["id"]) for g in got)
    passed = ev.ValidationPassed(
        dataset_id=good,
        dataset_type=DatasetType.TRANSCRIPT,
        file_name="good.txt",
        metadata={"lines": 1},
        warnings=["short"],
    )
    failed = ev.ValidationFailed(
        dataset_id=bad,
        dataset_type=DatasetType.AUDIO,
        file_name="bad.wav",
        error=ev.ErrorInfo(code=ErrorCode.INVALID_AUDIO_FORMAT, message="not a RIFF/WAVE file", dataset_id=bad),
    )
    envs = [ev.wrap(m, tenant_id="acme", model_id=mid) for m in (passed, failed)]
    await publish(stack.kafka_bootstrap, datasets.topics.validation, *envs, envs[0])  # one redelivered

    async def verdicts():
        items = {d["file_name"]: d for d in await datasets.listing(mid)}
        return items if {d["status"] for d in items.values()} == {"valid", "invalid"} else None

    items = await eventually(verdicts)
    assert items["good.txt"]["validation"]["warnings"] == ["short"]
    assert items["good.txt"]["validation"]["metadata"] == {"lines": 1}
    assert items["bad.wav"]["validation"]["error"]["code"] == "invalid_audio_format"
    assert items["bad.wav"]["validation"]["error"]["message"] == "not a RIFF/WAVE file"
    one = await datasets.client.get(f"/v1/models/{mid}/datasets/{bad}", headers=ACME)
    assert one.json()["status"] == "invalid"


async def test_delete_removes_the_object_and_publishes_dataset_deleted(datasets, stack) -> None:
    mid = await datasets.new_model()
    data = os.urandom(2000)
    got = (await datasets.upload(mid, [("a.wav", data), ("b.txt", b"stay")])).json()["datasets"]
    ds = got[0]["id"]
    r = await datasets.client.get(f"/v1/models/{mid}/datasets/{ds}/download", headers=ACME)
    assert r.status_code == 200 and r.json()["file_name"] == "a.wav"
    async with httpx.AsyncClient() as outside:  # the presigned URL works for anyone holding it
        fetched = await outside.get(r.json()["url"])
    assert fetched.content == data and "a.wav" in fetched.headers["content-disposition"]
    async with TopicReader(stack.kafka_bootstrap, datasets.topics.datasets) as reader:
        assert (await datasets.client.delete(f"/v1/models/{mid}/datasets/{ds}", headers=ACME)).status_code == 204
        await reader.read(3)
        await reader.settle(0.5)
    deleted = [e for e in uploads_of(reader.records, mid) if e.type == "DatasetDeleted"]
    assert len(deleted) == 1 and deleted[0].payload().dataset_id == uuid.UUID(ds)
    assert deleted[0].payload().dataset_type is DatasetType.AUDIO
    kept = f"tenants/acme/models/{mid}/datasets/{got[1]['id']}/data"
    assert await datasets.store.keys(datasets.prefix(mid)) == [kept]
    assert (await datasets.client.get(f"/v1/models/{mid}/datasets/{ds}", headers=ACME)).status_code == 404
    assert (await datasets.client.delete(f"/v1/models/{mid}/datasets/{ds}", headers=ACME)).status_code == 404


async def test_a_deleted_model_takes_its_datasets_with_it(datasets, stack) -> None:
    mid = await datasets.new_model()
    await datasets.upload(mid, [("a.txt", b"words"), ("b.wav", b"sound")])
    await publish(
        stack.kafka_bootstrap, datasets.topics.models, ev.wrap(ev.ModelDeleted(), tenant_id="acme", model_id=mid)
    )

    async def gone() -> bool:
        r = await datasets.client.get(f"/v1/models/{mid}/datasets", headers=ACME)
        return r.status_code == 404

    await eventually(gone)
    # A late status event does not bring the model back.
    late = ev.wrap(
        ev.TrainingStatusChanged(old_status=1, new_status=5, status_name="FAILED", badge="red", reason="late"),
        tenant_id="acme",
        model_id=mid,
    )
    await publish(stack.kafka_bootstrap, datasets.topics.status, late)
    await eventually(lambda: datasets.handled("status", late.id))
    await datasets.sweep()
    assert await datasets.store.keys(datasets.prefix(mid)) == []
    assert (await datasets.upload(mid, [("c.txt", b"x")])).status_code == 404


async def test_readiness_includes_minio(datasets) -> None:
    r = await datasets.client.get("/health/ready")
    assert r.status_code == 200 and r.json()["checks"]["minio"] == "ok"


async def test_a_client_that_goes_away_mid_file_leaves_nothing(datasets) -> None:
    mid = await datasets.new_model()
    boundary = "gone-boundary"

    class Dropped(Exception):
        pass

    async def body():
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="a.txt"\r\n\r\n'
            f"done\r\n--{boundary}\r\n"
            'Content-Disposition: form-data; name="files"; filename="b.wav"\r\n\r\n'
        ).encode()
        for _ in range(7):  # past the first 5 MiB part
            yield os.urandom(MiB)
        raise Dropped("connection lost")

    with pytest.raises((Dropped, ExceptionGroup)):  # in-process, the failure reaches the client as raised
        await datasets.client.post(
            f"/v1/models/{mid}/datasets",
            content=body(),
            headers={**ACME, "content-type": f"multipart/form-data; boundary={boundary}"},
        )
    assert len([k for k in datasets.store.written if str(mid) in k]) == 2
    assert await datasets.store.leftovers(datasets.prefix(mid)) == []
    assert await datasets.listing(mid) == []


async def test_an_upload_right_after_the_model_was_created_waits_for_it(datasets, stack) -> None:
    mid = uuid.uuid4()  # the models service just created it; its ModelCreated is still on its way
    await publish(
        stack.kafka_bootstrap,
        datasets.topics.models,
        ev.wrap(ev.ModelCreated(name="fresh", language="en-US"), tenant_id="acme", model_id=mid),
    )
    r = await datasets.upload(mid, [("a.txt", b"first words")])
    assert r.status_code == 201, r.text


async def test_the_upload_limits_are_public(datasets) -> None:
    r = await datasets.client.get("/v1/upload-limits")  # no token: clients check files before sending them
    assert r.status_code == 200
    assert r.json() == {"max_files": 10, "max_file_bytes": LIMIT}
