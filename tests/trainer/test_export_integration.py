"""Export on real Kafka, PostgreSQL and MinIO: train a small real model (text, audio pairs for tuning and
acoustic adaptation, test audio), export it over HTTP, and decode an utterance that is in no dataset with
the `pocketsphinx` package alone — in a separate Python process that imports nothing from voxtrain.
Progress events carry an ETA on the way (its predicted vs actual time left is printed: `pytest -s`)."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile
import uuid

import pytest

from tests.support import TopicReader, auth_headers
from tests.trainer.medical_domain import ADAPTATION_SENTENCES, TEST_SENTENCES, TRAINING_TEXT, speak, speak_all
from tests.trainer.test_service_integration import finished, put, request, started_trainer
from voxtrain_shared import events as ev
from voxtrain_shared.ops.readmodels import list_runs
from voxtrain_shared.vocab import DatasetType, Scope

pytestmark = pytest.mark.integration
ACME = auth_headers("acme")
NEW_SENTENCE = "Continue warfarin and check the international normalized ratio."  # in no dataset

# What a customer runs (cf. the README): stock PocketSphinx, the archive's settings, nothing of voxtrain.
DECODE = """
import json, sys, wave
from pathlib import Path
from pocketsphinx import Decoder

root, audio = Path(sys.argv[1]), sys.argv[2]
s = json.loads((root / "pocketsphinx.json").read_text())
decoder = Decoder(**{k: str(root / v) for k, v in s["files"].items()}, **s["options"], loglevel="FATAL")
with wave.open(audio) as w:  # 16 kHz mono 16-bit
    decoder.start_utt()
    decoder.process_raw(w.readframes(w.getnframes()), full_utt=True)
    decoder.end_utt()
assert not [m for m in sys.modules if m.startswith("voxtrain")]
print(decoder.hyp().hypstr if decoder.hyp() else "")
"""


@pytest.fixture
async def trainer(stack, tmp_path):
    async with started_trainer(stack, tmp_path) as t:
        yield t


def eta_table(got: list[ev.Envelope]) -> list[tuple[str, float, float | None, float]]:
    """(stage, percent, predicted seconds left, actual seconds left) of every progress event."""
    end = got[-1].occurred_at
    return [
        (p.stage, p.percent, p.eta_seconds, (end - e.occurred_at).total_seconds())
        for e in got
        if e.type == "TrainingProgress" and (p := e.payload())
    ]


async def test_an_exported_model_decodes_with_plain_pocketsphinx_like_the_trainer_does(
    trainer, stack, tmp_path
) -> None:
    model = uuid.uuid4()
    train = ADAPTATION_SENTENCES[:12]
    objs = [put(trainer, "acme", model, DatasetType.TRANSCRIPT, "notes.txt", TRAINING_TEXT.encode())]
    lines = []
    for split, sentences in (("train", train), ("test", TEST_SENTENCES[:4])):
        for i, (path, text) in enumerate(zip(speak_all(sentences, tmp_path / split, split), sentences, strict=True)):
            o = put(trainer, "acme", model, DatasetType.AUDIO, f"{split}{i}.wav", path.read_bytes())
            objs.append(o)
            lines.append(json.dumps({"audio": str(o.dataset_id), "text": text, "split": split}))
    objs.append(put(trainer, "acme", model, DatasetType.MANIFEST, "pairs.jsonl", "\n".join(lines).encode()))
    async with TopicReader(stack.kafka_bootstrap, trainer.topics.training_events) as reader:
        before = await trainer.client.get(f"/v1/models/{model}/export", headers=ACME)
        assert before.status_code == 404 and before.json()["error"]["code"] == "not_found"  # no training yet
        await request(trainer, stack, model, objs)
        got = await finished(reader, timeout=600)
    assert got[-1].type == "TrainingSucceeded", got[-1]

    # progress carried an estimate of the time left: present once the run is under way, never negative, ~0 at
    # the end; how close it was is printed for the record
    table = eta_table(got)
    assert table and all(eta is None or eta >= 0 for _, _, eta, _ in table)
    assert any(eta for _, _, eta, _ in table) and table[-1][2] is not None and table[-1][2] <= 5.0, table
    print("\nstage          percent  predicted_left  actual_left")
    for stage, percent, eta, actual in table:
        print(f"{stage:14} {percent:7.1f} {eta if eta is not None else float('nan'):15.1f} {actual:12.1f}")

    # the run's stored progress (`voxtrain runs`) carries the last estimate too
    runs = await list_runs(trainer.settings.postgres.dsn.get_secret_value(), trainer.svc.schema)
    (row,) = [r for r in runs if r["model_id"] == str(model)]
    assert (row["stage"], row["percent"], row["eta_seconds"]) == table[-1][:3], (row, table[-1])

    # another tenant does not see it; an unknown id is not found; a bad id is not found
    other = await trainer.client.get(f"/v1/models/{model}/export", headers=auth_headers("other"))
    assert other.status_code == 404, other.text
    assert (await trainer.client.get(f"/v1/models/{uuid.uuid4()}/export", headers=ACME)).status_code == 404
    assert (await trainer.client.get("/v1/models/base/export", headers=ACME)).status_code == 404
    assert (await trainer.client.get(f"/v1/models/{model}/export")).status_code == 401

    async with trainer.client.stream("GET", f"/v1/models/{model}/export", headers=ACME) as r:
        assert r.status_code == 200, await r.aread()
        assert r.headers["content-type"] == "application/gzip"
        assert f'filename="voxtrain-model-{model}.tar.gz"' in r.headers["content-disposition"]
        body = b"".join([chunk async for chunk in r.aiter_bytes()])
    out = tmp_path / "export"
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        tar.extractall(out, filter="data")
    root = out / f"voxtrain-model-{model}"

    # every file is in the manifest with its SHA-256, and nothing else is in the archive
    files = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    sums = dict(reversed(line.split("  ", 1)) for line in (root / "SHA256SUMS").read_text().splitlines())
    assert set(sums) == files - {"SHA256SUMS"}
    for name, digest in sums.items():
        assert hashlib.sha256((root / name).read_bytes()).hexdigest() == digest, name
    settings = json.loads((root / "pocketsphinx.json").read_text())
    needed = {"mdef", "means", "variances", "transition_matrices", "sendump", "feat.params", "noisedict", "README"}
    assert {f"acoustic-model/{n}" for n in needed} <= files
    assert {"lm.bin", "lm.arpa", "lexicon.dict", "metrics.json", "MODEL_CARD.md"} <= files
    metrics = json.loads((root / "metrics.json").read_text())
    # the weights that ship: tuned again with the adapted acoustic model when one ships, else the text-only ones
    shipped = metrics["decoder"]["adapted_tuning"] or metrics["decoder"]
    search = metrics["decoder"]["search"]["options"]
    assert search and settings["options"] == {"lw": shipped["lw"], "wip": shipped["wip"], **search}
    method = metrics["acoustic"]["method"]
    # an MLLR transform ships as its own file only alone: mllr+map adapts MLLR-shifted means, which ship as means
    assert ("mllr" in settings["files"]) == (method == "mllr"), (method, settings)
    card = (root / "MODEL_CARD.md").read_text()
    assert str(model) in card and "BSD" in card and "Word error rate" in card

    # decode an utterance in no dataset with pocketsphinx alone: the domain words come out, and exactly what
    # the trainer's own transcription of the same file says
    wav = speak(NEW_SENTENCE, tmp_path / "new.wav", "en-us+m3")
    decoded = subprocess.run(
        [sys.executable, "-I", "-c", DECODE, str(root), str(wav)], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert {"warfarin", "international", "normalized", "ratio"} <= set(decoded.split()), decoded
    r = await trainer.client.post(
        f"/v1/models/{model}/transcriptions", headers=ACME, files={"file": ("new.wav", wav.read_bytes(), "audio/wav")}
    )
    assert r.status_code == 200 and r.json()["text"] == decoded, (r.text, decoded)


async def test_a_model_whose_training_did_not_succeed_is_not_exported(trainer, stack, tmp_path) -> None:
    model = uuid.uuid4()
    wav = speak("hello there", tmp_path / "a.wav", "en-us+m3")
    objs = [put(trainer, "acme", model, DatasetType.AUDIO, "a.wav", wav.read_bytes())]  # no text: it fails
    async with TopicReader(stack.kafka_bootstrap, trainer.topics.training_events) as reader:
        await request(trainer, stack, model, objs)
        got = await finished(reader, timeout=120)
    assert got[-1].type == "TrainingFailed"
    r = await trainer.client.get(f"/v1/models/{model}/export", headers=ACME)
    assert r.status_code == 409 and r.json()["error"]["code"] == "invalid_status", r.text
    assert (await trainer.client.get(f"/v1/models/{model}/export", headers=auth_headers("other"))).status_code == 404
    # export needs the read scope (a key with only write and train is refused before anything is looked up)
    no_read = auth_headers("acme", scopes=frozenset({Scope.WRITE, Scope.TRAIN}))
    r = await trainer.client.get(f"/v1/models/{model}/export", headers=no_read)
    assert r.status_code == 403 and "'read' scope" in r.json()["error"]["message"], r.text
    reader = auth_headers("acme", scopes=frozenset({Scope.READ}))
    assert (await trainer.client.get(f"/v1/models/{model}/export", headers=reader)).status_code == 409
