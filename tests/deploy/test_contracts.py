"""The committed contracts (docs/asyncapi.json, docs/openapi/*.json) are what the code generates, the
AsyncAPI document is valid AsyncAPI 3.0, and real envelopes of every message type validate against it."""

from __future__ import annotations

import enum
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import types
import typing
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from voxtrain_contracts.cli import app as cli
from voxtrain_contracts.files import contract_documents, docs_drift
from voxtrain_contracts.services import SERVICES
from voxtrain_shared import events as ev
from voxtrain_shared.topics import TOPIC_KEYS, Topics

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
#: The AsyncAPI Initiative's JSON Schemas of the specification, from the npm registry.
ASYNCAPI_SPECS = ("@asyncapi/specs", "6.11.1")
ASYNCAPI_SCHEMA_FILE = "package/schemas/3.0.0-without-$id.json"
#: DESIGN.md's "consumes" column: which service reads which topic.
CONSUMES = {
    "models": {"datasets", "validation", "training_events", "model_commands"},
    "datasets": {"models", "status"},
    "validator": {"datasets"},
    "trainer": {"training_commands"},
    "webhooks": {"status", "training_events"},
    "identity": set(),
}


@pytest.fixture(scope="module")
def generated() -> dict[str, dict[str, Any]]:
    return contract_documents()


@pytest.fixture(scope="module")
def asyncapi() -> dict[str, Any]:
    return json.loads((DOCS / "asyncapi.json").read_text())


def test_committed_contracts_are_what_the_code_generates(generated: dict) -> None:
    drift = docs_drift(DOCS)
    assert not drift, "docs/ is out of date; run `make docs` and commit the result:\n" + "\n".join(drift)
    assert set(generated) == {"asyncapi.json", *(f"openapi/{s}.json" for s in SERVICES)}


def asyncapi_spec_schema() -> dict[str, Any] | None:
    """AsyncAPI 3.0.0's JSON Schema, cached under ``${XDG_CACHE_HOME:-~/.cache}/voxtrain`` (npm pack, once)."""
    name, version = ASYNCAPI_SPECS
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "voxtrain" / "asyncapi-specs" / version
    target = cache / "3.0.0.json"
    if not target.is_file():
        npm = shutil.which("npm")
        if npm is None:
            return None
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            done = subprocess.run(
                [npm, "pack", f"{name}@{version}", "--silent"], cwd=tmp, capture_output=True, text=True, timeout=300
            )
            if done.returncode != 0:
                pytest.fail(f"npm pack {name}@{version} failed: {done.stderr[-1000:]}")
            with tarfile.open(Path(tmp) / done.stdout.strip().splitlines()[-1]) as tar:
                data = tar.extractfile(ASYNCAPI_SCHEMA_FILE).read()
            (Path(tmp) / "schema.json").write_bytes(data)
            os.replace(Path(tmp) / "schema.json", target)
    return json.loads(target.read_text())


def test_the_asyncapi_document_is_valid_asyncapi_3(asyncapi: dict) -> None:
    schema = asyncapi_spec_schema()
    if schema is None:
        pytest.skip("npm is not here to fetch the AsyncAPI specification's JSON Schema")
    errors = [
        f"{'/'.join(map(str, e.path))}: {e.message[:300]}"
        for e in jsonschema.Draft7Validator(schema).iter_errors(asyncapi)
    ]
    assert not errors, "\n".join(errors)


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref":
                yield v
            else:
                yield from _refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from _refs(v)


def test_every_reference_resolves(asyncapi: dict) -> None:
    for ref in set(_refs(asyncapi)):
        node: Any = asyncapi
        for part in ref.removeprefix("#/").split("/"):
            assert isinstance(node, dict) and part in node, f"{ref} does not resolve"
            node = node[part]


def test_every_topic_is_a_channel_with_exactly_its_messages(asyncapi: dict) -> None:
    names = Topics("{namespace}")
    by_topic: dict[str, set[str]] = {}
    for cls in ev.REGISTRY.classes():
        by_topic.setdefault(cls.TOPIC, set()).add(cls.TYPE)
    assert [names.by_key(k) for k in TOPIC_KEYS] == Topics("{namespace}").all()
    assert set(by_topic) <= set(TOPIC_KEYS)
    for key in TOPIC_KEYS:
        channel = asyncapi["channels"][key]
        assert channel["address"] == names.by_key(key)
        documented = {asyncapi["components"]["messages"][m]["name"] for m in channel["messages"]}
        assert documented == by_topic[key], key
        assert asyncapi["channels"][f"{key}_dlt"]["address"] == names.by_key(key) + ".dlt"


def test_receive_operations_include_what_design_says_each_service_consumes(asyncapi: dict) -> None:
    received: dict[str, set[str]] = {}
    for op_id, op in asyncapi["operations"].items():
        if op["action"] == "receive":
            service = op_id.split("_")[1]
            received.setdefault(service, set()).add(op["channel"]["$ref"].rsplit("/", 1)[1])
            group = op["bindings"]["kafka"]["groupId"]["enum"][0]
            assert group.startswith("{namespace}." + service + ".")
    for service, topics in CONSUMES.items():
        assert topics <= received.get(service, set()), f"{service} must consume {topics - received.get(service, set())}"


def sample(annotation: Any) -> Any:
    """A valid value of a payload field's type (enough to build every message type)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return sample(next(a for a in typing.get_args(annotation) if a is not type(None)))
    if origin is list:
        return [sample(typing.get_args(annotation)[0])]
    if origin is dict or annotation is dict:
        return {"key": "value"}
    if origin is typing.Literal:
        return typing.get_args(annotation)[0]
    if isinstance(annotation, type):
        if issubclass(annotation, enum.Enum):
            return next(iter(annotation))
        if issubclass(annotation, BaseModel):
            return annotation(**{n: sample(f.annotation) for n, f in annotation.model_fields.items()})
        if issubclass(annotation, bool):
            return True
        if issubclass(annotation, uuid.UUID):
            return uuid.uuid4()
        if issubclass(annotation, datetime):
            return datetime.now()
        if issubclass(annotation, (int, float)):
            return annotation(1)
        if issubclass(annotation, str):
            return "text"
    if annotation is Any:
        return "anything"
    raise AssertionError(f"no sample for {annotation!r}")


def _validator(asyncapi: dict, message: str) -> jsonschema.Draft202012Validator:
    root = {"$ref": f"#/components/messages/{message}/payload", "components": asyncapi["components"]}
    return jsonschema.Draft202012Validator(root, format_checker=jsonschema.FormatChecker())


@pytest.mark.parametrize("cls", sorted(ev.REGISTRY.classes(), key=lambda c: c.TYPE), ids=lambda c: c.TYPE)
def test_a_real_envelope_of_each_type_validates_against_its_documented_schema(
    cls: type[ev.Message], asyncapi: dict
) -> None:
    payload = cls(**{n: sample(f.annotation) for n, f in cls.model_fields.items()})
    env = ev.wrap(payload, tenant_id="acme", model_id=uuid.uuid4(), correlation_id=uuid.uuid4())
    wire = json.loads(env.to_bytes())
    assert ev.REGISTRY.parse(env.to_bytes()) == env
    message = next(m for m, d in asyncapi["components"]["messages"].items() if d.get("name") == cls.TYPE)
    assert not list(_validator(asyncapi, message).iter_errors(wire))
    other = next(c for c in ev.REGISTRY.classes() if c is not cls)
    assert list(_validator(asyncapi, other.TYPE).iter_errors(wire)), "another type's schema must refuse it"
    broken = {**wire, "data": {**wire["data"], "unexpected": 1}}
    assert list(_validator(asyncapi, message).iter_errors(broken)), "payloads are closed (extra='forbid')"


def test_openapi_documents_cover_each_services_routes() -> None:
    docs = {s: json.loads((DOCS / "openapi" / f"{s}.json").read_text()) for s in SERVICES}
    for doc in docs.values():
        assert doc["openapi"].startswith("3.") and {"/health/ready", "/health/live", "/metrics"} <= set(doc["paths"])
    assert "/v1/models" in docs["models"]["paths"] and "/v1/models/{model_id}/train" in docs["models"]["paths"]
    assert any(p.startswith("/v1/models/{model_id}/datasets") for p in docs["datasets"]["paths"])
    assert "/v1/models/{model_id}/transcriptions" in docs["trainer"]["paths"]
    assert {p for p in docs["validator"]["paths"] if p.startswith("/v1/")} == set()


def test_the_docs_command_writes_and_checks(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "asyncapi.json").is_file() and len(list((tmp_path / "openapi").glob("*.json"))) == len(SERVICES)
    assert runner.invoke(cli, ["--check", "--out", str(tmp_path)]).exit_code == 0
    doc = json.loads((tmp_path / "openapi" / "models.json").read_text())
    doc["paths"].pop("/v1/models")
    (tmp_path / "openapi" / "models.json").write_text(json.dumps(doc))
    result = runner.invoke(cli, ["--check", "--out", str(tmp_path)])
    assert result.exit_code == 1 and "models.json: differs" in result.output
