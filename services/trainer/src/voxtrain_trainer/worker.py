"""What runs inside a training worker process: download, train, upload artifacts.

Runs in a child process (spawned), so the service's event loop keeps consuming, heartbeating and
answering health checks. Reports progress as ``(stage, percent)`` on a queue and returns a plain
dict: ``{"metrics", "artifacts", "used"}`` on success or ``{"error": {"code", "message", "stage"}}``.
"""

from __future__ import annotations

import shutil
import traceback
from pathlib import Path
from typing import Any

from voxtrain_shared import events as ev
from voxtrain_shared.settings import MinioSettings
from voxtrain_shared.storage import artifact_prefix, make_client

from .inputs import LocalDataset, build_inputs
from .ml.errors import TrainingError
from .ml.types import TrainingSettings


def execute(request: bytes, minio: dict[str, Any], bucket: str, work_root: str, order: int, progress: Any) -> dict:
    """Train the model a TrainingRequested asks for (see module contract)."""
    stage = "download"

    def report(name: str, percent: float) -> None:
        nonlocal stage
        stage = name
        progress.put((name, float(percent)))

    try:
        from .ml.pipeline import run_training

        env = ev.REGISTRY.parse(request)
        req: ev.TrainingRequested = env.payload()  # type: ignore[assignment]
        client = make_client(MinioSettings.model_validate(minio))
        work = Path(work_root) / str(req.run_id)
        shutil.rmtree(work, ignore_errors=True)
        (work / "data").mkdir(parents=True)
        local: list[LocalDataset] = []
        for i, d in enumerate(req.datasets):
            report("download", 100.0 * i / max(1, len(req.datasets)))
            suffix = Path(d.file_name).suffix.lower()
            path = work / "data" / f"{d.dataset_id}{suffix}"  # never the user's file name as a path
            client.fget_object(d.bucket, d.object_key, str(path))
            local.append(LocalDataset(str(d.dataset_id), d.dataset_type, d.file_name, path))
        report("gather", 0.0)
        inputs, used = build_inputs(local)
        result = run_training(inputs, work / "model", TrainingSettings(order=order), progress=report)
        report("store", 0.0)
        prefix = artifact_prefix(env.tenant_id, env.model_id, req.run_id)
        artifacts: dict[str, str] = {}
        for name, path in sorted(result.artifacts.items()):
            key = prefix + Path(path).name
            client.fput_object(bucket, key, str(path))
            artifacts[name] = f"s3://{bucket}/{key}"
        report("store", 100.0)
        shutil.rmtree(work, ignore_errors=True)
        return {"metrics": result.metrics, "artifacts": artifacts, "used": used}
    except TrainingError as exc:
        return {"error": {"code": exc.code, "message": exc.message, "stage": exc.stage or stage}}
    except Exception as exc:  # anything else: name the stage, keep the trace in the log
        traceback.print_exc()
        return {"error": {"code": "stage_failed", "stage": stage,
                          "message": f"The {stage} stage failed: {exc}. Check the datasets and train again."}}


def child_main(request: bytes, minio: dict[str, Any], bucket: str, work_root: str, order: int,
               progress: Any, results: Any) -> None:
    """Process entry point: run :func:`execute` and put its dict on ``results``."""
    results.put(execute(request, minio, bucket, work_root, order, progress))
