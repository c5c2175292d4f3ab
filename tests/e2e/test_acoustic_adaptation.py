"""Through the public APIs: a model trained on text + audio (long recordings with VTT transcripts,
paired by base name) transcribes held-out speech better than the same text alone."""

import json
from pathlib import Path

import pytest

from tests.support import auth_headers, eventually
from tests.trainer.medical_domain import ADAPTATION_SENTENCES, TRAINING_TEXT
from tests.trainer.recordings import long_recordings, spoken
from voxtrain_trainer.ml.wer import word_error_rate

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
ACME = auth_headers("acme")

ADAPT = ADAPTATION_SENTENCES[:24]  # three recordings of eight sentences, about 80 s of speech
HELD_OUT = [  # never in the training text nor the adaptation audio; never uploaded
    "The nurse noticed the patient was confused this morning.",
    "Blood pressure was controlled with metoprolol.",
    "Chest x-ray shows left lower lobe pneumonia.",
    "The doctor explained the risks of the surgery.",
    "Oxygen saturation was ninety percent on room air.",
    "The patient slept well and ate most of breakfast.",
    "Remove the bandage and keep the wound clean and dry.",
    "His daughter will bring the medication list tomorrow.",
    "Start heparin for the pulmonary embolism.",
    "Hold metformin before the procedure.",
]


async def _train(models, datasets, name: str, files: list) -> str:
    r = await models.post("/v1/models", json={"name": name, "language": "en-US"}, headers=ACME)
    assert r.status_code == 201, r.text
    mid = r.json()["id"]
    r = await datasets.post(f"/v1/models/{mid}/datasets", files=files, headers=ACME)
    assert r.status_code == 201, r.text
    return mid


async def _finished(models, mid: str) -> dict:
    async def done():
        body = (await models.get(f"/v1/models/{mid}", headers=ACME)).json()
        return body if body["status"]["code"] in (4, 5) else None

    body = await eventually(done, timeout=900, interval=2.0)
    assert body["status"]["code"] == 4, body
    return body


async def test_text_and_audio_beats_text_alone_on_held_out_speech(system, tmp_path: Path) -> None:
    models, datasets, trainer = system["models"], system["datasets"], system["trainer"]
    notes = ("notes.txt", TRAINING_TEXT.encode(), "text/plain")
    recordings = long_recordings(ADAPT, tmp_path / "recordings", 8)
    with_audio = [("files", notes)]
    for wav, vtt in recordings:
        with_audio += [("files", (wav.name, wav.read_bytes(), "audio/wav"))]
        with_audio += [("files", (vtt.name, vtt.read_bytes(), "text/vtt"))]
    text_model = await _train(models, datasets, "notes only", [("files", notes)])
    audio_model = await _train(models, datasets, "notes and recordings", with_audio)
    text_run = (await _finished(models, text_model))["run"]["metrics"]
    audio_run = (await _finished(models, audio_model))["run"]["metrics"]

    assert text_run["acoustic"]["method"] == "none"
    pairing = audio_run["data"]["pairing"]
    assert pairing["recordings_paired"] == 3 and pairing["cues_cut"] == len(ADAPT), pairing
    assert audio_run["acoustic"]["method"] in {"mllr", "map", "mllr+map"}, audio_run["acoustic"]
    wer = audio_run["evaluation"]["wer"]  # the held-out train pairs: base / text only / text + audio
    assert wer["models"] == ["base", "text_only", "text_audio"]
    assert {"substitutions", "deletions", "insertions"} <= set(wer["text_audio"])

    held_out = spoken(HELD_OUT, tmp_path / "held-out", "h", offset=1)
    hyps: dict[str, list[str]] = {text_model: [], audio_model: []}
    for path, _ in held_out:
        for mid in hyps:
            upload = {"file": (path.name, path.read_bytes(), "audio/wav")}
            r = await trainer.post(f"/v1/models/{mid}/transcriptions", headers=ACME, files=upload)
            assert r.status_code == 200, r.text
            hyps[mid].append(r.json()["text"])
    refs = [text for _, text in held_out]
    text_wer = word_error_rate(refs, hyps[text_model]).wer
    audio_wer = word_error_rate(refs, hyps[audio_model]).wer
    print(
        f"\nheld-out WER via the API: text only {text_wer:.3f}, text + audio {audio_wer:.3f}; "
        f"adaptation {json.dumps(audio_run['acoustic']['dev_wer'])}; "
        f"LM {json.dumps(audio_run['lm']['general_english'])}; in-run {json.dumps(wer['steps'])}"
    )
    assert audio_wer < text_wer, (text_wer, audio_wer, hyps)
    assert wer["text_audio"]["wer"] <= wer["text_only"]["wer"], wer
