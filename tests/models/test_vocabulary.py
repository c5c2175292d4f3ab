"""GET /v1/vocabulary: the product's rules for clients (the console shows them instead of copying them)."""

from __future__ import annotations

import pytest

from tests.support import running, settings_for
from voxtrain_models.bootstrap import SUPPORTED_LANGUAGES, build
from voxtrain_models.http import vocabulary
from voxtrain_shared.settings import ModelsSettings
from voxtrain_shared.vocab import DatasetType, ModelStatus


def test_the_vocabulary_states_the_specs_rules() -> None:
    v = vocabulary(("en-US", "xx-YY")).model_dump()
    by_code = {s["code"]: s for s in v["statuses"]}
    assert [(s["code"], s["label"], s["badge"]) for s in v["statuses"]] == [
        (1, "Not Running", "zinc"),
        (2, "Ready to Run", "amber"),
        (3, "Running", "sky"),
        (4, "Success", "emerald"),
        (5, "Failed", "red"),
    ]
    assert [c for c, s in by_code.items() if s["can_train"]] == [1, 5]
    assert [c for c, s in by_code.items() if s["locked"]] == [2, 3]
    assert [c for c, s in by_code.items() if s["accepts_datasets"]] == [1, 5]
    assert v["languages"] == [{"code": "en-US", "name": "English (en-US)"}, {"code": "xx-YY", "name": "xx-YY"}]
    types = {t["name"]: t for t in v["dataset_types"]}
    assert types["AUDIO"] == {
        "code": 3,
        "name": "AUDIO",
        "extensions": [".wav", ".mp3", ".m4a", ".flac"],
        "auto_detected": True,
    }
    assert not types["TEST"]["auto_detected"] and types["TRANSCRIPT"]["auto_detected"]
    assert [t["code"] for t in v["dataset_types"]] == [t.value for t in DatasetType]


@pytest.mark.integration
async def test_the_models_service_serves_it_without_a_token(stack) -> None:
    async with running(build(settings_for(ModelsSettings, stack))) as client:
        r = await client.get("/v1/vocabulary")
    assert r.status_code == 200, r.text
    body = r.json()
    assert [s["name"] for s in body["statuses"]] == [s.name for s in ModelStatus]
    assert [lang["code"] for lang in body["languages"]] == list(SUPPORTED_LANGUAGES)
