"""A training on the real servers with recordings in unusual but accepted encodings, cut by a manifest.

One recording of four spoken sentences is uploaded three times: as IMA ADPCM WAV, as ALAC M4A and as VBR MP3
without a Xing header. Manifest lines cut every sentence out of every file by offset and duration as test pairs.
The run must succeed, evaluate all twelve segments (none skipped), and its domain model must beat the base model on
them: a segment cut in the wrong place (ADPCM seeks drifted by seconds) or a file that does not decode would not.
"""

from __future__ import annotations

import json
import subprocess
import uuid
import wave
from pathlib import Path

import numpy as np

from tests.support import TopicReader
from tests.trainer.medical_domain import TEST_SENTENCES, TRAINING_TEXT, speak_all
from tests.trainer.test_service_integration import finished, put, request, trainer  # noqa: F401  (fixture)
from voxtrain_shared.vocab import DatasetType

GAP_SECONDS = 0.8
MARGIN_SECONDS = 0.25
ENCODINGS = {
    "ward.wav": ("-c:a", "adpcm_ima_wav"),
    "ward.m4a": ("-c:a", "alac"),
    "ward.mp3": ("-c:a", "libmp3lame", "-q:a", "4", "-write_xing", "0"),
}


def _recording(sentences: list[str], directory: Path) -> tuple[Path, list[tuple[float, float]]]:
    """The sentences spoken one after another with quiet gaps (a low noise floor), 16 kHz mono; each one's span."""
    rng = np.random.default_rng(5)
    pieces: list[np.ndarray] = []
    spans: list[tuple[float, float]] = []
    at = 0
    for path in speak_all(sentences, directory, "s"):
        with wave.open(str(path), "rb") as w:
            speech = np.frombuffer(w.readframes(w.getnframes()), "<i2")
        gap = rng.integers(-3, 4, round(GAP_SECONDS * 16000)).astype("<i2")
        pieces += [gap, speech]
        spans.append(((at + gap.size) / 16000, speech.size / 16000))
        at += gap.size + speech.size
    pieces.append(rng.integers(-3, 4, round(GAP_SECONDS * 16000)).astype("<i2"))
    out = directory / "ward-source.wav"
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.concatenate(pieces).tobytes())
    return out, spans


async def test_unusual_encodings_cut_by_a_manifest_train_and_evaluate(trainer, stack, tmp_path) -> None:  # noqa: F811
    model = uuid.uuid4()
    sentences = TEST_SENTENCES[:4]
    source, spans = _recording(sentences, tmp_path)
    objs = [put(trainer, "acme", model, DatasetType.TRANSCRIPT, "notes.txt", TRAINING_TEXT.encode())]
    lines = []
    for name, options in ENCODINGS.items():
        encoded = tmp_path / name
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(source), *options, str(encoded)], check=True)
        objs.append(put(trainer, "acme", model, DatasetType.AUDIO, name, encoded.read_bytes()))
        for (start, length), text in zip(spans, sentences, strict=True):
            offset = round(start - MARGIN_SECONDS, 3)
            cut = {"offset": offset, "duration": round(length + 2 * MARGIN_SECONDS, 3)}
            lines.append(json.dumps({"audio": name, "text": text, "split": "test", **cut}))
    objs.append(put(trainer, "acme", model, DatasetType.MANIFEST, "cuts.jsonl", "\n".join(lines).encode()))

    async with TopicReader(stack.kafka_bootstrap, trainer.topics.training_events) as reader:
        await request(trainer, stack, model, objs)
        got = await finished(reader, timeout=400)
    assert got[-1].type == "TrainingSucceeded", got[-1].payload()
    metrics = got[-1].payload().metrics
    assert metrics["data"]["test_pairs"] == 12 and metrics["data"]["audio_skipped"] == []
    wer = metrics["evaluation"]["wer"]
    assert wer["custom"]["utterances"] == 12 and wer["custom"]["skipped"] == 0, wer
    assert wer["custom"]["wer"] < wer["base"]["wer"] - 0.2, wer
