"""The whole system (models, datasets, validator, trainer) on the shared real servers, for e2e tests.

Each storage service runs with its own least-privileged MinIO credential, as deployed (the bucket, users and
policies are provisioned first with the administrator's credential; models needs no storage credential)."""

from contextlib import AsyncExitStack

import pytest

from tests.support import running, settings_for, storage_users, unique
from voxtrain_datasets.bootstrap import build as build_datasets
from voxtrain_models.bootstrap import build as build_models
from voxtrain_shared.settings import DatasetsSettings, ModelsSettings, TrainerSettings, ValidatorSettings
from voxtrain_trainer.bootstrap import build as build_trainer
from voxtrain_validator.bootstrap import build as build_validator


@pytest.fixture
async def system(stack, tmp_path):
    bucket = unique("e2e").replace("_", "-")
    shared = {"VOXTRAIN_KAFKA__TOPIC_NAMESPACE": unique("e2e"), "VOXTRAIN_MINIO__BUCKET": bucket}
    async with AsyncExitStack() as stack_:
        users = stack_.enter_context(storage_users(stack, bucket))
        clients = {}
        for name, cls, build, extra in (
            ("models", ModelsSettings, build_models, {}),
            ("datasets", DatasetsSettings, build_datasets, users.env("datasets")),
            ("validator", ValidatorSettings, build_validator, users.env("validator")),
            (
                "trainer",
                TrainerSettings,
                build_trainer,
                {**users.env("trainer"), "VOXTRAIN_WORK_DIR": str(tmp_path / "trainer")},
            ),
        ):
            svc = build(settings_for(cls, stack, **shared, **extra))
            clients[name] = await stack_.enter_async_context(running(svc))
            clients["topics"] = svc.topics
        yield clients
