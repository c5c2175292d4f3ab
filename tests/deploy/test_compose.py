"""docker-compose.yml and deploy/Dockerfile: parsed and checked (no Docker engine needed)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from voxtrain_devstack import versions
from voxtrain_shared import settings
from voxtrain_shared.storage_access import STORAGE_SERVICES

REPO = Path(__file__).resolve().parents[2]
SETTINGS = {
    "models": settings.ModelsSettings,
    "datasets": settings.DatasetsSettings,
    "validator": settings.ValidatorSettings,
    "trainer": settings.TrainerSettings,
    "webhooks": settings.WebhooksSettings,
    "identity": settings.IdentitySettings,
}
SERVERS = ("kafka", "postgres", "minio")
#: One-shot jobs: they run to completion (no healthcheck); what needs them waits for service_completed_successfully.
JOBS = ("storage",)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def dockerfile_stages() -> dict[str, list[tuple[str, str]]]:
    """``{stage name: [(INSTRUCTION, arguments), ...]}``, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (REPO / "deploy" / "Dockerfile").read_text())
    stages: dict[str, list[tuple[str, str]]] = {"": []}
    current = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            match = re.fullmatch(r"(\S+)\s+AS\s+(\S+)", args.strip(), re.IGNORECASE)
            assert match, f"every stage is named: FROM {args}"
            current = match.group(2)
            stages[current] = []
        stages[current].append((instruction, args.strip()))
    return stages


def test_all_servers_and_services_are_there(compose: dict) -> None:
    assert set(compose["services"]) == {*SERVERS, *SETTINGS, *JOBS, "console"}  # the console: tests/console


def test_servers_run_the_pinned_versions(compose: dict) -> None:
    services = compose["services"]
    assert services["kafka"]["image"] == versions.KAFKA_IMAGE
    assert services["postgres"]["image"] == versions.POSTGRES_IMAGE
    assert services["minio"]["build"]["target"] == "minio"
    assert services["minio"]["build"]["args"]["MINIO_VERSION"] == versions.MINIO_VERSION
    args = [a for i, a in dockerfile_stages()["minio-build"] if i == "ARG"]
    assert f"MINIO_VERSION={versions.MINIO_VERSION}" in args
    assert any(versions.MINIO_MODULE in a for i, a in dockerfile_stages()["minio-build"] if i == "RUN")


def test_every_container_has_a_healthcheck(compose: dict) -> None:
    for name, service in compose["services"].items():
        if name in JOBS:
            assert service["restart"] == "no", f"{name} runs once"
            continue
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


@pytest.mark.parametrize("name", SETTINGS)
def test_services_start_after_the_servers_they_use_are_healthy(compose: dict, name: str) -> None:
    depends = compose["services"][name]["depends_on"]
    assert {"kafka", "postgres"} <= set(depends)
    for server, condition in depends.items():
        if server in JOBS:
            assert condition == {"condition": "service_completed_successfully"}, f"{name} -> {server}"
            continue
        assert condition == {"condition": "service_healthy"}, f"{name} -> {server}"
        assert compose["services"][server]["healthcheck"]["test"]


@pytest.mark.parametrize("name", SETTINGS)
def test_service_env_vars_are_real_settings_fields(compose: dict, name: str) -> None:
    env = compose["services"][name]["environment"]
    voxtrain_vars = {k for k in env if k.startswith("VOXTRAIN_")}
    known = settings.env_var_names(SETTINGS[name])
    assert voxtrain_vars <= known, f"{name} sets variables its settings do not read: {voxtrain_vars - known}"
    required = {
        "VOXTRAIN_KAFKA__BOOTSTRAP_SERVERS",
        "VOXTRAIN_POSTGRES__DSN",
        "VOXTRAIN_AUTH__PUBLIC_KEY",
        "VOXTRAIN_HTTP__HOST",
        "VOXTRAIN_HTTP__PORT",
    }
    if "VOXTRAIN_MINIO__ENDPOINT" in known:
        required |= {"VOXTRAIN_MINIO__ENDPOINT", "VOXTRAIN_MINIO__ACCESS_KEY", "VOXTRAIN_MINIO__SECRET_KEY"}
    assert required <= voxtrain_vars
    # only the issuer holds the signing key
    assert ("VOXTRAIN_AUTH__PRIVATE_KEY" in voxtrain_vars) == (name == "identity")


def test_each_storage_service_has_its_own_minio_user_and_only_the_storage_job_the_root_key(compose: dict) -> None:
    services = compose["services"]
    root = services["minio"]["environment"]["MINIO_ROOT_USER"]
    job = services["storage"]
    assert job["command"] == ["voxtrain", "storage", "provision"]
    assert job["environment"]["VOXTRAIN_MINIO__ACCESS_KEY"] == root
    own = set()
    for name in STORAGE_SERVICES:
        env = services[name]["environment"]
        assert (
            env["VOXTRAIN_MINIO__ACCESS_KEY"]
            == job["environment"][f"VOXTRAIN_STORAGE_USERS__{name.upper()}__ACCESS_KEY"]
        )
        assert (
            env["VOXTRAIN_MINIO__SECRET_KEY"]
            == job["environment"][f"VOXTRAIN_STORAGE_USERS__{name.upper()}__SECRET_KEY"]
        )
        assert services[name]["depends_on"]["storage"] == {"condition": "service_completed_successfully"}
        own.add(env["VOXTRAIN_MINIO__ACCESS_KEY"])
    assert root not in own and len(own) == len(STORAGE_SERVICES)
    for name, service in services.items():
        if name not in (*STORAGE_SERVICES, "storage"):
            assert "VOXTRAIN_MINIO__ACCESS_KEY" not in (service.get("environment") or {}), name


@pytest.mark.parametrize("name", SETTINGS)
def test_service_port_is_published_and_probed(compose: dict, name: str) -> None:
    service = compose["services"][name]
    port = str(service["environment"]["VOXTRAIN_HTTP__PORT"])
    assert any(p.endswith(f":{port}") for p in service["ports"])
    assert f":{port}/health/live" in " ".join(service["healthcheck"]["test"])


@pytest.mark.parametrize("name", SETTINGS)
def test_services_are_built_from_the_one_dockerfile(compose: dict, name: str) -> None:
    build = compose["services"][name]["build"]
    assert build["dockerfile"] == "deploy/Dockerfile"
    assert build["target"] == "service"
    assert build["args"] == {"SERVICE": name}


def test_no_secret_value_is_committed(compose: dict) -> None:
    secret = re.compile(r"PASSWORD|SECRET|ACCESS_KEY|DSN")
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if secret.search(key):
                required_variable = re.search(r"\$\{[A-Z_]+:\?[^}]*\}", str(value))
                assert required_variable, f"{name}: {key} must come from a required variable, not a value"


def test_dockerfile_builds_each_service_with_the_lock_file_as_a_non_root_user() -> None:
    stages = dockerfile_stages()
    assert {"minio-build", "minio", "build", "service"} <= set(stages)
    syncs = [a for i, a in stages["build"] if i == "RUN" and "uv sync" in a]
    assert syncs and all("--frozen" in a and "--no-dev" in a and '--package "voxtrain-${SERVICE}"' in a for a in syncs)
    for stage in ("service", "minio"):
        users = [a for i, a in stages[stage] if i == "USER"]
        assert users and users[-1] not in ("root", "0"), f"stage {stage} must run as a non-root user"
    cmd = [a for i, a in stages["service"] if i == "CMD"][-1]
    assert "voxtrain-${SERVICE}" in cmd
    assert stages["service"][0][1].startswith("${PYTHON_IMAGE}")
