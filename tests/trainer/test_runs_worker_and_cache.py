"""The worker's way out (storage outages are transient, no URLs, no work directory left) and the serving
cache's size bound."""

import os
import queue
import time
import uuid
from pathlib import Path

from minio.error import S3Error

from tests.support import PUBLIC_KEY
from voxtrain_shared import events as ev
from voxtrain_shared.vocab import DatasetType
from voxtrain_trainer import worker
from voxtrain_trainer.ml.types import TrainingSettings
from voxtrain_trainer.model_cache import COMPLETE, ModelCache
from voxtrain_trainer.storage_errors import transient


def _request() -> bytes:
    ds = ev.DatasetObject(
        dataset_id=uuid.uuid4(),
        dataset_type=DatasetType.TRANSCRIPT,
        file_name="notes.txt",
        bucket="training-data",
        object_key="k",
        size=1,
        sha256="a" * 64,
    )
    env = ev.wrap(
        ev.TrainingRequested(run_id=uuid.uuid4(), language="en-US", datasets=[ds]),
        tenant_id="acme",
        model_id=uuid.uuid4(),
    )
    return env.to_bytes()


def test_unreachable_storage_is_a_transient_error_without_its_address_and_leaves_no_work_dir(tmp_path) -> None:
    minio = {
        "endpoint": "127.0.0.1:9",
        "access_key": "a",
        "secret_key": "secretkey",
        "secure": False,
        "region": "us-east-1",
    }
    result = worker.execute(
        _request(), 2, minio, "training-data", str(tmp_path), TrainingSettings(order=3), queue.Queue()
    )
    error = result["error"]
    assert error["transient"] is True and error["code"] == "storage_unavailable" and error["stage"] == "download"
    assert "127.0.0.1" not in error["message"] and "http" not in error["message"]
    assert list((tmp_path / "runs").iterdir()) == []


def test_which_storage_errors_are_worth_another_attempt() -> None:
    def s3(code: str) -> S3Error:
        return S3Error(None, code, "m", "r", "i", "h")  # response is not read

    assert transient(s3("SlowDown")) and transient(ConnectionRefusedError())
    assert not transient(s3("NoSuchKey")) and not transient(ValueError("bad data"))


class FakeMinio:
    def __init__(self, size: int) -> None:
        self.size, self.fetched = size, []

    def fget_object(self, bucket: str, key: str, path: str) -> None:
        self.fetched.append(key)
        Path(path).write_bytes(b"x" * self.size)


def test_the_model_cache_keeps_its_disk_under_the_bound_least_recently_used_first(tmp_path) -> None:
    minio = FakeMinio(100)
    cache = ModelCache(minio, tmp_path, max_bytes=250)  # only fget_object is used
    runs = [uuid.uuid4() for _ in range(3)]
    for i, run in enumerate(runs[:2]):
        cache.model_dir(run, {"lm": f"s3://b/{i}/lm.bin"})
        os.utime(tmp_path / str(run) / COMPLETE, (time.time() - 100 + i, time.time() - 100 + i))
    cache.model_dir(runs[0], {"lm": "s3://b/0/lm.bin"})  # used again: now the most recent
    assert len(minio.fetched) == 2
    cache.model_dir(runs[2], {"lm": "s3://b/2/lm.bin"})
    assert cache.disk_bytes() <= 250
    assert (tmp_path / str(runs[0])).exists() and not (tmp_path / str(runs[1])).exists()
    assert (tmp_path / str(runs[2]) / "lm.bin").exists()


def test_the_service_settings_reach_the_training_run() -> None:
    from voxtrain_shared.settings import TrainerSettings
    from voxtrain_trainer.processes import training_settings

    s = TrainerSettings(
        postgres={"dsn": "postgresql://x@y/z"},
        auth={"public_key": PUBLIC_KEY},
        minio={"access_key": "a", "secret_key": "b"},
        ngram_order=2,
        worker_memory_mb=1536,
        lm_memory_mb=512,
        lm_max_ngrams=10**6,
        lm_spill_limit_mb=1024,
        lm_max_vocabulary=1000,
        lm_prune_thresholds=(0, 1),
    )
    t = training_settings(s)
    assert (t.order, t.lm_memory_mb, t.lm_max_vocabulary, t.lm_prune_thresholds) == (2, 512, 1000, (0, 1))
    assert (t.lm_spill_limit_mb, t.worker_memory_mb, t.max_model_ngrams) == (1024, 1536, 10**6)


def test_a_work_dir_is_removed_even_when_a_first_pass_leaves_something_behind(tmp_path, monkeypatch) -> None:
    # Two cleaners (the unwinding main thread and the parent watchdog) can race: one rmtree then gives up on a
    # directory the other is still emptying. Removal looks again until the directory is really gone.
    work = tmp_path / "runs" / "r-a1"
    (work / "data").mkdir(parents=True)
    (work / "data" / "corpus.txt").write_text("words")
    real = worker.shutil.rmtree
    passes: list[Path] = []

    def first_pass_gives_up(path, ignore_errors=False):
        passes.append(path)
        if len(passes) > 1:
            real(path, ignore_errors=ignore_errors)

    monkeypatch.setattr(worker.shutil, "rmtree", first_pass_gives_up)
    assert worker.remove_work_dir(work)
    assert not work.exists() and len(passes) == 2
