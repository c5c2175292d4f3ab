"""The console in docker-compose.yml and deploy/Dockerfile, and in `make run` (no Docker engine needed)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from unittest import mock

import yaml

from voxtrain_console.settings import ConsoleSettings
from voxtrain_devstack import Ports
from voxtrain_devstack.config import Secrets
from voxtrain_devstack.services import SERVICES, service_env
from voxtrain_shared.settings import env_var_names

REPO = Path(__file__).resolve().parents[2]


def console_service() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["console"]


def test_compose_runs_the_console_from_the_one_dockerfile_after_the_apis() -> None:
    svc = console_service()
    assert svc["build"] == {
        "context": ".",
        "dockerfile": "deploy/Dockerfile",
        "target": "service",
        "args": {"SERVICE": "console"},
    }
    assert {"kafka", "models", "datasets", "trainer"} <= set(svc["depends_on"])
    assert all(c == {"condition": "service_healthy"} for c in svc["depends_on"].values())
    port = svc["environment"]["VOXTRAIN_HTTP__PORT"]
    assert port == "8100" and any(p.endswith(f":{port}") for p in svc["ports"])
    assert f":{port}/health/live" in " ".join(svc["healthcheck"]["test"])


def test_compose_sets_only_real_console_settings_and_no_secret_value() -> None:
    env = console_service()["environment"]
    assert set(env) <= env_var_names(ConsoleSettings)
    assert {
        "VOXTRAIN_AUTH__PUBLIC_KEY",
        "VOXTRAIN_KAFKA__BOOTSTRAP_SERVERS",
        "VOXTRAIN_MODELS_URL",
        "VOXTRAIN_DATASETS_URL",
        "VOXTRAIN_TRAINER_URL",
    } <= set(env)
    assert re.fullmatch(r"\$\{VOXTRAIN_SIGNING_PUBLIC_KEY:\?[^}]*\}", env["VOXTRAIN_AUTH__PUBLIC_KEY"])
    assert "VOXTRAIN_AUTH__PRIVATE_KEY" not in env


def test_the_image_build_knows_the_console_package() -> None:
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    assert "COPY services/console/pyproject.toml services/console/" in dockerfile


def test_make_run_starts_the_console_pointed_at_the_local_apis() -> None:
    assert "console" in SERVICES
    ports = Ports()
    env = service_env(
        "console",
        {"VOXTRAIN_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:19092"},
        ports,
        Secrets.generate(),
    )
    assert "VOXTRAIN_AUTH__PRIVATE_KEY" not in env, "only the identity service gets the signing key"
    with mock.patch.dict(os.environ, env, clear=True):
        s = ConsoleSettings()
    assert s.http.port == 8100 == ports.console
    assert (s.upstream("models"), s.upstream("datasets"), s.upstream("trainer"), s.upstream("identity")) == (
        "http://127.0.0.1:8101",
        "http://127.0.0.1:8102",
        "http://127.0.0.1:8104",
        "http://127.0.0.1:8106",
    )
    assert s.kafka.bootstrap_servers == "127.0.0.1:19092"
