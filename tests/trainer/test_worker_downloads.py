"""The training worker downloads the text and manifests of a run, within its disk budget, and reads recordings where
they are stored: ranged reads around the segments it decodes (an unpaired 10 GB recording is never read)."""

from __future__ import annotations

import hashlib
import io
import queue
import uuid
from pathlib import Path

import pytest

from tests.support import settings_for
from tests.trainer.medical_domain import ADAPTATION_SENTENCES, TRAINING_TEXT
from tests.trainer.recordings import long_recordings
from voxtrain_shared import events as ev
from voxtrain_shared.settings import TrainerSettings
from voxtrain_shared.storage import ensure_bucket, make_client
from voxtrain_shared.vocab import DatasetType
from voxtrain_trainer import worker
from voxtrain_trainer.ml.errors import TrainingError
from voxtrain_trainer.ml.types import TrainingSettings
from voxtrain_trainer.processes import training_settings


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


def test_a_run_whose_text_exceeds_the_disk_budget_fails_before_fetching_it(stack, tmp_path: Path) -> None:
    """The 10 GiB transcript is ABSENT: fetching it would fail with NoSuchKey, not the budget. The 10 GiB recording
    (ABSENT too) takes no disk: it would be read where it is stored."""
    text = (TRAINING_TEXT * 3).encode()
    files = [
        (DatasetType.AUDIO, "talk.flac", ABSENT, 10 * 1024**3),
        (DatasetType.TRANSCRIPT, "notes.txt", text, len(text)),
        (DatasetType.TRANSCRIPT, "all-notes.txt", ABSENT, 10 * 1024**3),
    ]

    result = _run(stack, tmp_path, files, VOXTRAIN_WORK_DISK_MB="8192")

    assert result["error"]["code"] == "inputs_too_large", result
    assert result["error"]["stage"] == "download"
    assert "for the 2 files it reads (the largest: all-notes.txt (10.7 GB), notes.txt" in result["error"]["message"]
    assert "more than the 8.6 GB a training has here" in result["error"]["message"]
    assert not list((tmp_path / "work" / "runs").iterdir())  # the work directory is gone


def test_a_run_reads_its_recordings_from_storage_and_trains_on_them(stack, tmp_path: Path) -> None:
    """Two espeak-ng recordings with timed .vtt transcripts on the real MinIO: the worker cuts them by their cues
    through ranged reads (nothing of them is downloaded) and trains on the pairs."""
    recorded = long_recordings(ADAPTATION_SENTENCES[:6], tmp_path / "rec", per_recording=3)
    text = TRAINING_TEXT.encode()
    files = [(DatasetType.TRANSCRIPT, "notes.txt", text, len(text))]
    for wav, vtt in recorded:
        files += [
            (DatasetType.AUDIO, wav.name, wav.read_bytes(), wav.stat().st_size),
            (DatasetType.TRANSCRIPT, vtt.name, vtt.read_bytes(), vtt.stat().st_size),
        ]

    result = _run(stack, tmp_path, files, VOXTRAIN_WORK_DISK_MB="4096")

    assert "error" not in result, result.get("error")
    assert result["used"]["train_pairs"] == 6
    assert result["metrics"]["data"]["pairing"]["unused_audio"] == []


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
