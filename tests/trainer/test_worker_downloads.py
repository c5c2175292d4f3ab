"""The training worker downloads only the recordings a run reads: text and manifests first, then the AUDIO datasets a
manifest line names or a same-named .vtt/.srt goes with (an unpaired 10 GB recording is never fetched)."""

from __future__ import annotations

import hashlib
import io
import json
import queue
import uuid
from pathlib import Path

import pytest

from tests.support import settings_for
from tests.trainer.medical_domain import TRAINING_TEXT
from voxtrain_shared import events as ev
from voxtrain_shared.settings import TrainerSettings
from voxtrain_shared.storage import ensure_bucket, make_client
from voxtrain_shared.vocab import DatasetType
from voxtrain_trainer import worker
from voxtrain_trainer.inputs import LocalDataset, audio_to_read
from voxtrain_trainer.ml.errors import TrainingError
from voxtrain_trainer.ml.types import TrainingSettings
from voxtrain_trainer.processes import training_settings


def _ds(tmp: Path, kind: DatasetType, name: str, text: str | None = None) -> LocalDataset:
    ds = LocalDataset(uuid.uuid4().hex, kind, name, tmp / f"{uuid.uuid4().hex}{Path(name).suffix}")
    if text is not None:
        ds.path.write_text(text, encoding="utf-8")
    return ds  # AUDIO paths are never written: audio_to_read must not need them


def test_only_recordings_named_by_a_manifest_or_a_same_named_subtitle_file_are_read(tmp_path: Path) -> None:
    by_cues = _ds(tmp_path, DatasetType.AUDIO, "Talk.MP3")
    by_name = _ds(tmp_path, DatasetType.AUDIO, "long.flac")
    by_id = _ds(tmp_path, DatasetType.AUDIO, "other.wav")
    alone = _ds(tmp_path, DatasetType.AUDIO, "alone.wav")
    same_stem_plain_text = _ds(tmp_path, DatasetType.AUDIO, "notes.m4a")
    lines = [
        {"audio": "long.flac", "offset": 5, "duration": 2.5, "text": "hello there"},
        "not json {",
        {"audio": "missing.wav", "text": "a line naming no dataset is build_inputs' to refuse"},
        {"audio": "notes.txt", "text": "names a transcript, not a recording"},
        {"audio": by_id.dataset_id, "text": "by id"},
    ]
    manifest = _ds(
        tmp_path,
        DatasetType.MANIFEST,
        "segments.jsonl",
        "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n\n",
    )
    datasets = [
        by_cues,
        by_name,
        by_id,
        alone,
        same_stem_plain_text,
        manifest,
        _ds(tmp_path, DatasetType.TEST, "talk.vtt", "WEBVTT\n\n00:00.000 --> 00:01.000\nhi\n"),
        _ds(tmp_path, DatasetType.TRANSCRIPT, "notes.txt", "some text\n"),
    ]
    assert audio_to_read(datasets) == {by_cues.dataset_id, by_name.dataset_id, by_id.dataset_id}


def test_without_manifest_or_subtitles_no_recording_is_read(tmp_path: Path) -> None:
    datasets = [
        _ds(tmp_path, DatasetType.AUDIO, "a.wav"),
        _ds(tmp_path, DatasetType.TRANSCRIPT, "a.txt", "text\n"),
        _ds(tmp_path, DatasetType.TRANSCRIPT, "b.srt", "1\n00:00:00,000 --> 00:00:01,000\nhi\n"),
    ]
    assert audio_to_read(datasets) == set()


def test_files_that_fit_the_disk_budget_pass_and_say_what_they_need() -> None:
    assert worker.fits_on_disk([("a.txt", 10), ("b.wav", 20)], 10**10) == 30 + worker.RUN_DISK_RESERVE_BYTES


def test_files_over_the_disk_budget_are_refused_naming_the_largest() -> None:
    files = [("notes.txt", 10**6), ("talk.wav", 9 * 10**9), ("long.flac", 8 * 10**9), ("x.mp3", 10**9)]

    with pytest.raises(TrainingError) as refused:
        worker.fits_on_disk(files, 12 * 10**9)

    assert refused.value.code == "inputs_too_large" and refused.value.stage == "download"
    assert refused.value.message.startswith("This training needs about 20.1 GB of working disk for the 4 files it ")
    assert "(the largest: talk.wav (9.0 GB), long.flac (8.0 GB), x.mp3 (1.0 GB))" in refused.value.message
    assert "more than the 12.0 GB a training has here" in refused.value.message
    assert "VOXTRAIN_WORK_DISK_MB" in refused.value.message


@pytest.mark.parametrize(("left_mb", "limit_mb"), [(100_000, 32768), (5000, 5000), (10, 64)])
def test_the_lm_spill_limit_is_cut_to_the_disk_the_downloads_leave(left_mb: int, limit_mb: int) -> None:
    assert worker.within_disk(TrainingSettings(), left_mb * 2**20).lm_spill_limit_mb == limit_mb


ABSENT = None  # an object that is not in the bucket: fetching it would fail the run with NoSuchKey


def _run(stack, tmp_path: Path, files: list[tuple[DatasetType, str, bytes | None, int]], **env: str) -> dict:
    """One worker run on the real storage of datasets (type, name, bytes or ABSENT, declared size)."""
    settings = settings_for(TrainerSettings, stack, VOXTRAIN_WORK_DIR=str(tmp_path / "work"), **env)
    client = make_client(settings.minio)
    bucket = settings.minio.bucket
    ensure_bucket(client, bucket)
    datasets = []
    for kind, name, data, size in files:
        key = f"tenants/acme/models/m/datasets/{uuid.uuid4()}/data"
        if data is not None:
            client.put_object(bucket, key, io.BytesIO(data), len(data))
        digest = hashlib.sha256(data or b"").hexdigest()
        datasets.append(
            ev.DatasetObject(
                dataset_id=uuid.uuid4(),
                dataset_type=kind,
                file_name=name,
                bucket=bucket,
                object_key=key,
                size=size,
                sha256=digest,
            )
        )
    request = ev.wrap(
        ev.TrainingRequested(run_id=uuid.uuid4(), language="en-US", datasets=datasets),
        tenant_id="acme",
        model_id=uuid.uuid4(),
    ).to_bytes()
    minio = {
        "endpoint": settings.minio.endpoint,
        "access_key": settings.minio.access_key.get_secret_value(),
        "secret_key": settings.minio.secret_key.get_secret_value(),
        "secure": settings.minio.secure,
        "region": settings.minio.region,
    }
    try:
        return worker.execute(
            request, 1, minio, bucket, str(tmp_path / "work"), training_settings(settings), queue.Queue()
        )
    finally:
        for o in client.list_objects(bucket, recursive=True):
            client.remove_object(bucket, o.object_name)
        client.remove_bucket(bucket)


def test_a_run_whose_recordings_exceed_the_disk_budget_fails_before_fetching_them(stack, tmp_path: Path) -> None:
    """The paired 10 GiB recording is ABSENT: fetching it would fail with NoSuchKey, not the budget."""
    cues = b"WEBVTT\n\n00:00.000 --> 00:02.000\nthe patient was discharged\n"
    files = [
        (DatasetType.AUDIO, "talk.flac", ABSENT, 10 * 1024**3),
        (DatasetType.TRANSCRIPT, "talk.vtt", cues, len(cues)),
    ]

    result = _run(stack, tmp_path, files, VOXTRAIN_WORK_DISK_MB="8192")

    assert result["error"]["code"] == "inputs_too_large", result
    assert result["error"]["stage"] == "download"
    assert "for the 2 files it reads (the largest: talk.flac (10.7 GB)" in result["error"]["message"]
    assert "more than the 8.6 GB a training has here" in result["error"]["message"]
    assert not list((tmp_path / "work" / "runs").iterdir())  # the work directory is gone


def test_a_worker_on_real_storage_trains_without_fetching_an_unpaired_recording(stack, tmp_path: Path) -> None:
    """The unpaired recording is ABSENT: fetching it would fail the run (NoSuchKey)."""
    text = (TRAINING_TEXT * 3).encode()
    files = [
        (DatasetType.AUDIO, "long.flac", ABSENT, 10 * 1024**3),
        (DatasetType.TRANSCRIPT, "notes.txt", text, len(text)),
    ]

    result = _run(stack, tmp_path, files)

    assert "error" not in result, result.get("error")
    assert result["used"]["train_pairs"] == 0
    assert result["metrics"]["data"]["pairing"]["unused_audio"] == ["long.flac"]
