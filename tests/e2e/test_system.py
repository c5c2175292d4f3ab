"""The whole system through its public APIs and topics only: models, datasets, validator and trainer
on real Kafka, PostgreSQL and MinIO. A status subscriber follows a model from 1 to 4 (and another to 5)."""

import json
from pathlib import Path

import pytest

from tests.support import TopicReader, auth_headers
from tests.trainer.medical_domain import TEST_SENTENCES, TRAINING_TEXT, speak, speak_all
from voxtrain_shared import events as ev

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
ACME = auth_headers("acme")


def changes(reader: TopicReader) -> list[ev.TrainingStatusChanged]:
    return [ev.REGISTRY.parse(r.value).payload() for r in reader.records]


async def test_a_model_trained_on_domain_text_beats_the_base_model(system, stack, tmp_path: Path) -> None:
    models, datasets, trainer, topics = system["models"], system["datasets"], system["trainer"], system["topics"]
    async with TopicReader(stack.kafka_bootstrap, topics.status) as status:
        r = await models.post("/v1/models", json={"name": "cardiology", "language": "en-US"}, headers=ACME)
        assert r.status_code == 201, r.text
        mid = r.json()["id"]

        audio = speak_all(TEST_SENTENCES[:5], tmp_path / "test-audio", "ward")
        manifest = (
            "\n".join(
                json.dumps({"audio": p.name, "text": s, "split": "test"})
                for p, s in zip(audio, TEST_SENTENCES, strict=False)
            )
            + "\n"
        )
        files = [("files", ("notes.txt", TRAINING_TEXT.encode(), "text/plain"))]
        files += [("files", (p.name, p.read_bytes(), "audio/wav")) for p in audio]
        files += [("files", ("pairs.jsonl", manifest.encode(), "application/jsonl"))]
        r = await datasets.post(f"/v1/models/{mid}/datasets", files=files, headers=ACME)
        assert r.status_code == 201, r.text
        assert len(r.json()["datasets"]) == 7

        await status.until(
            lambda recs: any(ev.REGISTRY.parse(x.value).payload().new_status in (4, 5) for x in recs), timeout=600
        )
    assert [(c.old_status, c.new_status) for c in changes(status)] == [(1, 2), (2, 3), (3, 4)], changes(status)
    assert [c.badge for c in changes(status)] == ["amber", "sky", "emerald"]

    body = (await models.get(f"/v1/models/{mid}", headers=ACME)).json()
    assert body["status"]["code"] == 4 and body["can_train"] is False
    wer = body["run"]["metrics"]["evaluation"]["wer"]
    assert wer["custom"]["wer"] < wer["base"]["wer"] - 0.2, wer
    assert {"substitutions", "deletions", "insertions"} <= set(wer["custom"])
    listing = (await datasets.get(f"/v1/models/{mid}/datasets", headers=ACME)).json()
    assert {d["status"] for d in listing["datasets"]} == {"valid"}

    new = speak("Continue warfarin and check the international normalized ratio.", tmp_path / "new.wav", "en-us+f2")
    r = await trainer.post(
        f"/v1/models/{mid}/transcriptions", headers=ACME, files={"file": ("new.wav", new.read_bytes(), "audio/wav")}
    )
    assert r.status_code == 200, r.text
    assert "warfarin" in r.json()["text"]


async def test_a_bad_file_fails_the_model_with_its_reason(system, stack, tmp_path: Path) -> None:
    models, datasets, topics = system["models"], system["datasets"], system["topics"]
    async with TopicReader(stack.kafka_bootstrap, topics.status) as status:
        r = await models.post("/v1/models", json={"name": "radiology", "language": "en-US"}, headers=ACME)
        mid = r.json()["id"]
        png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 2000
        files = [
            ("files", ("report.txt", b"chest x-ray shows no pneumonia\n", "text/plain")),
            ("files", ("dictation.m4a", png, "audio/mp4")),
        ]
        r = await datasets.post(f"/v1/models/{mid}/datasets", files=files, headers=ACME)
        assert r.status_code == 201, r.text
        await status.until(
            lambda recs: any(ev.REGISTRY.parse(x.value).payload().new_status == 5 for x in recs), timeout=120
        )
    failed = changes(status)[-1]
    assert [(c.old_status, c.new_status) for c in changes(status)] == [(1, 2), (2, 5)]
    assert failed.error.code == "invalid_audio_format" and failed.error.file_name == "dictation.m4a"
    assert "PNG" in failed.error.message
    body = (await models.get(f"/v1/models/{mid}", headers=ACME)).json()
    assert body["status"]["badge"] == "red" and body["can_train"] is True
    assert body["last_error"]["file_name"] == "dictation.m4a"
    r = await models.post(f"/v1/models/{mid}/train", headers=ACME)  # Train again: the bad file is still there
    assert r.status_code == 202
    assert (await models.get(f"/v1/models/{mid}", headers=auth_headers("other"))).status_code == 404
