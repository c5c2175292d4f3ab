"""deploy/k8s: rendered with the real kustomize, validated
against the Kubernetes schemas offline, and checked against the code: commands, ports, probe paths,
environment variables, Ingress routes (as ingress-nginx builds its locations), images and the dev
servers' versions and credentials — for the four services and the web console.

Nothing here talks to a cluster: `kubectl apply` itself is not exercised.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from pydantic_settings import BaseSettings
from typer.testing import CliRunner

from tests.deploy.k8s_support import pod_spec, render
from voxtrain_console import bootstrap as console_bootstrap
from voxtrain_console import http as console_http
from voxtrain_console import proxy as console_proxy
from voxtrain_console.settings import ConsoleSettings
from voxtrain_contracts.services import built_services
from voxtrain_devstack import services as devstack_services
from voxtrain_devstack import versions
from voxtrain_shared import ops, settings
from voxtrain_shared.auth import generate_key_pair
from voxtrain_shared.cli import app as cli
from voxtrain_shared.storage_access import STORAGE_SERVICES

REPO = Path(__file__).resolve().parents[2]
_PRIVATE, _PUBLIC = generate_key_pair()
#: A real key pair, as an operator would put into the Secrets (prod refuses the placeholders).
REAL_KEYS = {"VOXTRAIN_AUTH__PUBLIC_KEY": _PUBLIC, "VOXTRAIN_AUTH__PRIVATE_KEY": _PRIVATE}
K8S = REPO / "deploy" / "k8s"
OVERLAYS = {"base": K8S / "base", "dev": K8S / "overlays" / "dev", "prod": K8S / "overlays" / "prod"}
#: The services: each has a database schema, so a migration Job.
SETTINGS = {
    "models": settings.ModelsSettings,
    "datasets": settings.DatasetsSettings,
    "validator": settings.ValidatorSettings,
    "trainer": settings.TrainerSettings,
    "webhooks": settings.WebhooksSettings,
    "identity": settings.IdentitySettings,
}
#: Everything that runs as a Deployment: the services and the web console (no database, no migrations).
DEPLOYED: dict[str, type[BaseSettings]] = {**SETTINGS, "console": ConsoleSettings}
#: The oldest Kubernetes we support and a recent one; kubernetes-validate bundles both schemas.
K8S_VERSIONS = ("1.30", "1.34")
IMAGE_REGISTRY = "ghcr.io/voxtrain"
#: Containers allowed a writable root filesystem, and why.
WRITABLE_ROOT = {"kafka": "the apache/kafka image writes its server.properties from the environment at start"}


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {name: render(path) for name, path in OVERLAYS.items()}


@pytest.fixture(scope="module")
def apps() -> Iterator[dict[str, Any]]:
    """Each service's and the console's FastAPI app, built with placeholder settings (not started)."""
    console = console_bootstrap.build(
        load_settings(ConsoleSettings, {"VOXTRAIN_AUTH__PUBLIC_KEY": REAL_KEYS["VOXTRAIN_AUTH__PUBLIC_KEY"]})
    )
    try:
        with built_services() as built:
            yield {**{b.name: b.service.app for b in built}, "console": console.app}
    finally:
        asyncio.run(console.client.aclose())


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def generated(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """A generated ConfigMap/Secret by its generator name (its real name has a hash suffix)."""
    found = [d for d in docs if d["kind"] == kind and re.fullmatch(rf"{name}-[a-z0-9]{{10}}", d["metadata"]["name"])]
    assert len(found) == 1, f"generated {kind} {name}: {len(found)} found"
    return found[0]


def container(doc: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    containers = pod_spec(doc)["containers"]
    return containers[0] if name is None else next(c for c in containers if c["name"] == name)


def all_containers(docs: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for d in docs:
        if (spec := pod_spec(d)) is not None:
            for c in spec.get("initContainers", []) + spec["containers"]:
                yield d, c


def secret_values(docs: list[dict[str, Any]], name: str) -> dict[str, str]:
    named = any(d["metadata"]["name"] == name for d in docs)
    doc = one(docs, "Secret", name) if named else generated(docs, "Secret", name)
    return {k: base64.b64decode(v).decode() for k, v in doc["data"].items()}


Secrets = dict[str, dict[str, str]]  #: {Secret name: {key: value}}


def _env_file(name: str) -> dict[str, str]:
    lines = (OVERLAYS["prod"] / name).read_text().splitlines()
    return dict(ln.split("=", 1) for ln in lines if ln.strip() and not ln.startswith("#"))


def example_secrets() -> Secrets:
    """The prod Secrets as the example files describe them (one credentials Secret per service)."""
    own = _env_file("credentials.example.env")
    return {
        "voxtrain-secrets": _env_file("secrets.example.env"),
        "voxtrain-signing-key": {"VOXTRAIN_AUTH__PRIVATE_KEY": "REPLACE-ME"},  # secrets.example.env says how
        "voxtrain-storage-admin": _env_file("storage-admin.example.env"),
        **{f"voxtrain-{service}-credentials": own for service in DEPLOYED},
    }


def real_secrets() -> Secrets:
    """The example prod Secrets with a real key pair (the services refuse the placeholders)."""
    examples = example_secrets()
    return {
        **examples,
        "voxtrain-secrets": {
            **examples["voxtrain-secrets"],
            "VOXTRAIN_AUTH__PUBLIC_KEY": REAL_KEYS["VOXTRAIN_AUTH__PUBLIC_KEY"],
        },
        "voxtrain-signing-key": {"VOXTRAIN_AUTH__PRIVATE_KEY": REAL_KEYS["VOXTRAIN_AUTH__PRIVATE_KEY"]},
    }


def dev_secrets(docs: list[dict[str, Any]]) -> Secrets:
    """Every Secret the dev overlay generates, by its rendered name (as the containers refer to it)."""
    return {
        d["metadata"]["name"]: {k: base64.b64decode(v).decode() for k, v in d["data"].items()}
        for d in docs
        if d["kind"] == "Secret"
    }


def environment(docs: list[dict[str, Any]], c: dict[str, Any], secrets: Secrets | None) -> dict[str, str]:
    """The container's environment as the kubelet would build it (secrets from ``secrets`` when given)."""
    env: dict[str, str] = {}
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    for source in c.get("envFrom", []):
        ref = source["configMapRef"]["name"]
        env.update(by_name[("ConfigMap", ref)]["data"])
    for e in c.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
        elif ref := e["valueFrom"].get("configMapKeyRef"):
            env[e["name"]] = by_name[("ConfigMap", ref["name"])]["data"][ref["key"]]
        elif ref := e["valueFrom"].get("secretKeyRef"):
            values = (secrets or {}).get(ref["name"], {})
            assert ref["key"] in values, f"{c['name']}: secret {ref['name']} has no key {ref['key']}"
            env[e["name"]] = values[ref["key"]]
    return env


def required_env(cls: type[BaseSettings]) -> set[str]:
    """The variables a settings class cannot start without."""
    names = set()
    for name, f in cls.model_fields.items():
        ann = f.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel) and f.is_required():
            names |= {
                f"VOXTRAIN_{name}__{(s.alias or k)}".upper() for k, s in ann.model_fields.items() if s.is_required()
            }
        elif f.is_required():
            names.add(f"VOXTRAIN_{name}".upper())
    return names


def load_settings(cls: type[BaseSettings], env: dict[str, str]) -> Any:
    """``cls`` read from exactly ``env`` (no VOXTRAIN_* variable of this process leaks in)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VOXTRAIN_")}
    with mock.patch.dict(os.environ, {**clean, **env}, clear=True):
        return cls()


def http_routes(app: Any) -> set[str]:
    """The paths of an app's HTTP routes (not its mounts). FastAPI 0.16x keeps an included router as one
    entry (``original_router``, its prefix in ``include_context``); older ones copy its routes in."""
    paths: set[str] = set()
    todo = [("", r) for r in app.routes]
    while todo:
        prefix, r = todo.pop()
        if (inner := getattr(r, "original_router", None)) is not None:
            prefix += getattr(getattr(r, "include_context", None), "prefix", "")
            todo += [(prefix, sub) for sub in inner.routes]
        elif isinstance(r, APIRoute):
            paths.add(prefix + r.path)
    return paths


def http_port(service: str) -> int:
    return DEPLOYED[service].model_fields["http"].default.port


def project_version(service: str) -> str:
    return tomllib.loads((REPO / "services" / service / "pyproject.toml").read_text())["project"]["version"]


# ---------------------------------------------------------------- rendering and schemas


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_manifest_is_valid_for_kubernetes(overlay: str, version: str, rendered: dict) -> None:
    errors = []
    for doc in rendered[overlay]:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {'.'.join(map(str, exc.path))}: {exc.message}")
    assert not errors, "\n".join(errors)


def test_every_file_in_deploy_k8s_is_used() -> None:
    used = set()
    for folder in (K8S / "base", K8S / "overlays" / "dev", K8S / "overlays" / "prod"):
        k = yaml.safe_load((folder / "kustomization.yaml").read_text())
        used.add(folder / "kustomization.yaml")
        used |= {(folder / r).resolve() for r in k.get("resources", []) if not (folder / r).is_dir()}
        used |= {(folder / p["path"]).resolve() for p in k.get("patches", []) if "path" in p}
    documented = set(OVERLAYS["prod"].glob("*.example.env"))
    files = {p.resolve() for p in K8S.rglob("*") if p.is_file()}
    assert files - used - documented == set()


# ---------------------------------------------------------------- the services against the code


def test_the_services_and_the_console_are_all_deployed(rendered: dict) -> None:
    assert set(DEPLOYED) == set(devstack_services.SERVICES), "what `make run` starts is what Kubernetes runs"
    for overlay in ("base", "dev", "prod"):
        deployments = {d["metadata"]["name"] for d in rendered[overlay] if d["kind"] == "Deployment"}
        assert deployments == {f"voxtrain-{s}" for s in DEPLOYED}, overlay


@pytest.mark.parametrize("overlay", ["dev", "prod"])
@pytest.mark.parametrize("service", DEPLOYED)
def test_each_service_runs_its_own_command_image_and_port(overlay: str, service: str, rendered: dict) -> None:
    dep = one(rendered[overlay], "Deployment", f"voxtrain-{service}")
    c = container(dep, service)
    scripts = tomllib.loads((REPO / "services" / service / "pyproject.toml").read_text())["project"]["scripts"]
    assert c["command"] == [f"voxtrain-{service}"] and f"voxtrain-{service}" in scripts
    assert c["image"] == f"{IMAGE_REGISTRY}/voxtrain-{service}:{project_version(service)}"
    port = http_port(service)
    assert c["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    assert {"name": "VOXTRAIN_HTTP__PORT", "value": str(port)} in c["env"]
    annotations = dep["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port) and annotations["prometheus.io/path"] == "/metrics"


@pytest.mark.parametrize("overlay", ["dev", "prod"])
@pytest.mark.parametrize("service", DEPLOYED)
def test_env_vars_are_exactly_settings_the_service_reads(overlay: str, service: str, rendered: dict) -> None:
    docs = rendered[overlay]
    secrets = dev_secrets(docs) if overlay == "dev" else example_secrets()
    c = container(one(docs, "Deployment", f"voxtrain-{service}"), service)
    env = environment(docs, c, secrets)
    cls = DEPLOYED[service]
    known = settings.env_var_names(cls)  # the console's class is composed alike
    assert set(env) <= known, f"not read by {cls.__name__}: {set(env) - known}"
    assert required_env(cls) <= set(env), f"missing: {required_env(cls) - set(env)}"


@pytest.mark.parametrize("service", DEPLOYED)
def test_the_dev_environment_is_accepted_by_each_services_settings(service: str, rendered: dict) -> None:
    docs = rendered["dev"]
    c = container(one(docs, "Deployment", f"voxtrain-{service}"), service)
    s = load_settings(DEPLOYED[service], environment(docs, c, dev_secrets(docs)))
    assert s.http.port == http_port(service) and s.http.host == "0.0.0.0"
    assert s.environment is settings.Environment.LOCAL
    if "postgres" in DEPLOYED[service].model_fields:
        assert s.postgres.schema_name == service


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_the_console_reaches_each_api_through_its_service(overlay: str, rendered: dict) -> None:
    docs = rendered[overlay]
    secrets = dev_secrets(docs) if overlay == "dev" else real_secrets()
    c = container(one(docs, "Deployment", "voxtrain-console"), "console")
    env = environment(docs, c, secrets)
    s = load_settings(ConsoleSettings, env)
    assert set(console_proxy.API_NAMES) == {"models", "datasets", "trainer", "webhooks", "identity"}
    for api in console_proxy.API_NAMES:
        assert f"VOXTRAIN_{api.upper()}_URL" in env, f"{api}: the default (127.0.0.1) is no use in a pod"
        url = urlsplit(s.upstream(api))
        svc = one(docs, "Service", f"voxtrain-{api}")
        pods = one(docs, "Deployment", f"voxtrain-{api}")["spec"]["template"]["metadata"]["labels"]
        assert (url.scheme, url.hostname, url.path) == ("http", f"voxtrain-{api}", ""), "in-cluster, never the Ingress"
        assert url.port == http_port(api) and url.port in {p["port"] for p in svc["spec"]["ports"]}
        assert svc["spec"]["selector"].items() <= pods.items()
    assert (
        s.kafka.bootstrap_servers
        == generated(docs, "ConfigMap", "voxtrain-config")["data"]["VOXTRAIN_KAFKA__BOOTSTRAP_SERVERS"]
    )
    assert not [e for e in env if e.startswith(("VOXTRAIN_POSTGRES__", "VOXTRAIN_MINIO__"))], "no database, no storage"


@pytest.mark.parametrize("service", DEPLOYED)
def test_prod_refuses_the_example_secrets_and_takes_real_ones(service: str, rendered: dict) -> None:
    docs = rendered["prod"]
    c = container(one(docs, "Deployment", f"voxtrain-{service}"), service)
    with pytest.raises(ValidationError, match="PUBLIC_KEY"):
        load_settings(DEPLOYED[service], environment(docs, c, example_secrets()))
    s = load_settings(DEPLOYED[service], environment(docs, c, real_secrets()))
    assert s.environment is settings.Environment.PRODUCTION


@pytest.mark.parametrize("overlay", ["dev", "prod"])
@pytest.mark.parametrize("service", DEPLOYED)
def test_probes_and_metrics_are_routes_the_app_serves(overlay: str, service: str, rendered: dict, apps: dict) -> None:
    c = container(one(rendered[overlay], "Deployment", f"voxtrain-{service}"), service)
    routes = http_routes(apps[service])
    assert c["readinessProbe"]["httpGet"]["path"] == "/health/ready"  # checks the service's dependencies
    assert c["livenessProbe"]["httpGet"]["path"] == "/health/live"  # checks none: a restart would not help
    assert c["startupProbe"]["httpGet"]["path"] == "/health/live"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert c[probe]["httpGet"]["path"] in routes
        assert c[probe]["httpGet"]["port"] in {p["name"] for p in c["ports"]}
    assert "/metrics" in routes


@pytest.mark.parametrize("overlay", ["dev", "prod"])
@pytest.mark.parametrize("service", DEPLOYED)
def test_each_service_has_a_migration_job_running_voxtrain_migrate(overlay: str, service: str, rendered: dict) -> None:
    docs = rendered[overlay]
    if service == "console":  # no database: nothing to migrate, so no Job (and no DSN)
        assert "postgres" not in ConsoleSettings.model_fields and service not in ops.SERVICES
        image = container(one(docs, "Deployment", "voxtrain-console"), service)["image"]
        assert not [
            d
            for d in docs
            if d["kind"] == "Job"
            and (d["metadata"]["name"] == f"voxtrain-migrate-{service}" or container(d)["image"] == image)
        ]
        return
    job = one(docs, "Job", f"voxtrain-migrate-{service}")
    c = container(job)
    server = container(one(docs, "Deployment", f"voxtrain-{service}"), service)
    assert c["command"] == ["voxtrain", "migrate", service]
    assert c["image"] == server["image"], "the Job must run the service's own image (its migrations are in it)"
    assert "voxtrain" in tomllib.loads((REPO / "shared" / "pyproject.toml").read_text())["project"]["scripts"]
    assert service in ops.SERVICES and ops.migrations_folder(service).is_dir()
    dsn = [e for e in c["env"] if e["name"] == "VOXTRAIN_POSTGRES__DSN"]
    assert dsn and dsn == [e for e in server["env"] if e["name"] == "VOXTRAIN_POSTGRES__DSN"]
    assert pod_spec(job)["restartPolicy"] == "Never" and job["spec"]["backoffLimit"] >= 3


def test_the_migrate_command_exists_as_the_jobs_call_it() -> None:
    result = CliRunner().invoke(cli, ["migrate", "--help"])
    assert result.exit_code == 0 and "SERVICE" in result.output
    assert (
        CliRunner()
        .invoke(cli, ["migrate", "nope"], env={"VOXTRAIN_POSTGRES__DSN": "postgresql://x@127.0.0.1:1/x"})
        .exit_code
        == 2
    )


# ---------------------------------------------------------------- security, resources, availability


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_every_container_is_locked_down_and_sized(overlay: str, rendered: dict) -> None:
    for doc, c in all_containers(rendered[overlay]):
        where = f"{doc['kind']}/{doc['metadata']['name']}/{c['name']}"
        spec = pod_spec(doc)
        pod_sc, sc = spec.get("securityContext", {}), c.get("securityContext", {})
        assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, where
        assert isinstance(sc.get("runAsUser", pod_sc.get("runAsUser")), int), f"{where}: give the uid as a number"
        assert sc.get("allowPrivilegeEscalation") is False, where
        assert sc.get("capabilities", {}).get("drop") == ["ALL"], where
        assert pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
        if c["name"] in WRITABLE_ROOT:
            assert sc.get("readOnlyRootFilesystem") is False
        else:
            assert sc.get("readOnlyRootFilesystem") is True, where
            tmp = [m for m in c.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
            volumes = {v["name"]: v for v in spec.get("volumes", [])}
            assert tmp and "emptyDir" in volumes[tmp[0]["name"]], f"{where}: /tmp must be an emptyDir"
        for section in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(c.get("resources", {}).get(section, {})), f"{where}: {section}"
        assert spec.get("automountServiceAccountToken") is False, where
        assert spec.get("enableServiceLinks") is False, where


def _bytes(quantity: str) -> int:
    number, unit = re.fullmatch(r"(\d+)(Ki|Mi|Gi|Ti)?", quantity).groups()  # type: ignore[union-attr]  # k8s form
    return int(number) * {None: 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}[unit]


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_the_trainers_tmp_holds_a_trainings_disk_the_model_cache_and_transcription_uploads(
    overlay: str, rendered: dict
) -> None:
    docs = rendered[overlay]
    doc = one(docs, "Deployment", "voxtrain-trainer")
    c = container(doc, "trainer")
    s = load_settings(
        settings.TrainerSettings, environment(docs, c, dev_secrets(docs) if overlay == "dev" else real_secrets())
    )
    tmp = next(m for m in c["volumeMounts"] if m["mountPath"] == "/tmp")["name"]
    size = _bytes(next(v for v in pod_spec(doc)["volumes"] if v["name"] == tmp)["emptyDir"]["sizeLimit"])
    assert s.work_disk_mb is not None, "unset, a run would take the node's free disk as its own"
    work = s.work_disk_mb * 2**20
    assert work >= 21 * 10**9 + 2 * 2**30, "a 10 GB transcript needs ~21 GB with the LM's spill, plus the run's reserve"
    assert size >= work + s.model_cache_bytes + s.transcription_async_max_bytes


def test_service_pods_run_as_the_dockerfiles_user(rendered: dict) -> None:
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    uid = int(re.search(r"useradd[^\n]*--uid (\d+)[^\n]* voxtrain\b", dockerfile).group(1))
    minio_uid = int(re.search(r"useradd[^\n]*--uid (\d+)[^\n]* minio\b", dockerfile).group(1))
    for overlay in ("dev", "prod"):
        for doc in rendered[overlay]:
            if doc["kind"] in ("Deployment", "Job"):
                assert pod_spec(doc)["securityContext"]["runAsUser"] == uid, doc["metadata"]["name"]
    assert pod_spec(one(rendered["dev"], "StatefulSet", "minio"))["securityContext"]["runAsUser"] == minio_uid


@pytest.mark.parametrize("overlay", ["dev", "prod"])
@pytest.mark.parametrize("service", DEPLOYED)
def test_service_and_disruption_budget_select_the_server_pods_only(overlay: str, service: str, rendered: dict) -> None:
    docs = rendered[overlay]
    name = f"voxtrain-{service}"
    pods = one(docs, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
    svc = one(docs, "Service", name)
    assert svc["spec"]["selector"].items() <= pods.items()
    for other in docs:  # the migration Jobs' pods carry the service's name too
        if pod_spec(other) is None or (other["kind"], other["metadata"]["name"]) == ("Deployment", name):
            continue
        where = f"{other['kind']}/{other['metadata']['name']}"
        labels = other["spec"]["template"]["metadata"]["labels"]
        assert not svc["spec"]["selector"].items() <= labels.items(), f"{name}'s Service selects {where}'s pods"
    assert svc["spec"]["ports"] == [
        {"name": "http", "port": http_port(service), "targetPort": "http", "protocol": "TCP"}
    ]
    pdb = one(docs, "PodDisruptionBudget", name)
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pods.items()
    assert pdb["spec"].get("maxUnavailable") == 1, "a budget that allows no eviction blocks node drains"


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_validator_and_trainer_autoscale_and_the_others_do_not(overlay: str, rendered: dict) -> None:
    docs = rendered[overlay]
    hpas = {d["spec"]["scaleTargetRef"]["name"]: d for d in docs if d["kind"] == "HorizontalPodAutoscaler"}
    assert set(hpas) == {"voxtrain-validator", "voxtrain-trainer"}
    for name, hpa in hpas.items():
        dep = one(docs, "Deployment", name)
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert "replicas" not in dep["spec"], f"{name}: the autoscaler owns replicas; apply would reset them"
        assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
        assert "cpu" in dep["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]
    assert hpas["voxtrain-trainer"]["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 600


# ---------------------------------------------------------------- Ingress

NGINX = "nginx.ingress.kubernetes.io/"
Backend = tuple[str, str]  # (Service name, port name)


def nginx_locations(ingress: dict[str, Any]) -> list[tuple[str, str, Backend | None]]:
    """The ``location`` blocks ingress-nginx writes for ``ingress``: ``(modifier, path, backend)`` in the
    order of its nginx.conf; backend None is the controller's default backend (a 404).

    As ingress-nginx's internal/ingress/controller (controller.go, location.go, template/template.go)
    does it: a server starts with ``/`` (Prefix) to the default backend, which a path ``/`` of the same
    pathType takes over; locations are sorted by path, longest first. With ``use-regex`` (or
    ``rewrite-target``) on the host, EVERY path is written ``~* "^<path>"``, whatever its pathType (an Exact
    ``/`` is then ``^/``); without, Exact is ``= path`` and Prefix ``/p`` becomes ``/p/`` plus ``= /p``.
    """
    annotations = ingress["metadata"].get("annotations", {})
    regex = annotations.get(NGINX + "use-regex") == "true" or NGINX + "rewrite-target" in annotations
    assert len(ingress["spec"]["rules"]) == 1, "one host (one nginx server): teach nginx_locations more hosts"
    locations: list[dict[str, Any]] = [{"path": "/", "type": "Prefix", "to": None}]
    for p in ingress["spec"]["rules"][0]["http"]["paths"]:
        to = (p["backend"]["service"]["name"], p["backend"]["service"]["port"]["name"])
        same = next((loc for loc in locations if (loc["path"], loc["type"]) == (p["path"], p["pathType"])), None)
        if same is None:
            locations.append({"path": p["path"], "type": p["pathType"], "to": to})
        elif same["to"] is None:
            same["to"] = to
    locations.sort(key=lambda loc: loc["path"], reverse=True)  # stable, as Go's sort.SliceStable
    locations.sort(key=lambda loc: len(loc["path"]), reverse=True)
    if regex:
        return [("~*", "^" + loc["path"], loc["to"]) for loc in locations]
    exact = {loc["path"] for loc in locations if loc["type"] == "Exact"}
    out: list[tuple[str, str, Backend | None]] = []
    for loc in locations:
        if loc["type"] == "Exact":
            out.append(("=", loc["path"], loc["to"]))
        elif loc["type"] == "Prefix" and loc["path"] != "/":
            out.append(("", loc["path"] if loc["path"].endswith("/") else loc["path"] + "/", loc["to"]))
            if loc["path"] not in exact:
                out.append(("=", loc["path"], loc["to"]))
        else:
            out.append(("", loc["path"], loc["to"]))
    return out


def nginx_route(ingress: dict[str, Any], uri: str) -> Backend | None:
    """Where ingress-nginx sends a request for ``uri`` (a normalised path), choosing a location as nginx
    does: an exact match; else the first regular expression that matches, in order; else the longest
    prefix. None: the default backend, or no location at all — either way, nothing of ours."""
    locations = nginx_locations(ingress)
    for modifier, path, to in locations:
        if modifier == "=" and uri == path:
            return to
    for modifier, path, to in locations:
        if modifier == "~*" and re.match(path, uri, re.IGNORECASE):
            return to
    prefixes = [(len(path), to) for modifier, path, to in locations if modifier == "" and uri.startswith(path)]
    return max(prefixes, key=lambda pair: pair[0])[1] if prefixes else None


def _ingress(paths: list[tuple[str, str, str]], regex: bool) -> dict[str, Any]:
    return {
        "metadata": {"annotations": {NGINX + "use-regex": "true"} if regex else {}},
        "spec": {
            "rules": [
                {
                    "http": {
                        "paths": [
                            {
                                "path": path,
                                "pathType": kind,
                                "backend": {"service": {"name": svc, "port": {"name": "http"}}},
                            }
                            for path, kind, svc in paths
                        ]
                    }
                }
            ]
        },
    }


def test_the_ingress_model_follows_ingress_nginx() -> None:
    """The traps nginx_route must see: with use-regex, pathType means nothing."""
    root = ("/", "Exact", "page")
    assert nginx_route(_ingress([root], regex=False), "/") == ("page", "http")
    assert nginx_route(_ingress([root], regex=False), "/health/live") is None
    # use-regex: the Exact `/` is `^/`, after the default backend's own `^/` -- the page is a 404
    assert nginx_route(_ingress([root], regex=True), "/") is None
    # ... and a Prefix `/` takes the default backend's place: everything is routed, /metrics too
    assert nginx_route(_ingress([("/", "Prefix", "page")], regex=True), "/metrics") == ("page", "http")
    # ... a Prefix is a plain string prefix (and any case), not whole segments
    static = [("/static", "Prefix", "page")]
    assert nginx_route(_ingress(static, regex=True), "/STATICky") == ("page", "http")
    assert nginx_route(_ingress(static, regex=False), "/staticky") is None
    assert nginx_route(_ingress(static, regex=False), "/static") == ("page", "http")
    # ... and the longest path is tried first
    api = [("/v1/models", "Prefix", "models"), ("/v1/models/[^/]+/datasets", "ImplementationSpecific", "datasets")]
    assert nginx_route(_ingress(api, regex=True), "/v1/models/1/datasets/2") == ("datasets", "http")
    assert nginx_route(_ingress(api, regex=True), "/v1/models/1") == ("models", "http")


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_the_ingress_and_the_consoles_gateway_route_every_api_path_to_the_service_that_serves_it(
    overlay: str, rendered: dict, apps: dict
) -> None:
    docs = rendered[overlay]
    ingress = one(docs, "Ingress", "voxtrain")
    checked = 0
    for service in SETTINGS:
        for path in apps[service].openapi()["paths"]:
            if not path.startswith("/v1/"):
                continue  # /health and /metrics stay inside the cluster (below)
            concrete = re.sub(r"\{[^}]+\}", "0b8c2b9e-6a1e-4b8e-9a55-3f4c1f7d2a10", path)
            if path.startswith("/v1/ops/"):  # operator routes: inside the cluster only (voxtrain CLI in a pod)
                assert nginx_route(ingress, concrete) is None, f"{path} is an operator route but is public"
                continue
            to = nginx_route(ingress, concrete)
            assert to is not None, f"{path} is served by {service} but routed nowhere"
            backend, port = to
            assert backend == f"voxtrain-{service}", f"{path} is served by {service} but routed to {backend}"
            assert port in {p["name"] for p in one(docs, "Service", backend)["spec"]["ports"]}
            gateway = console_proxy.gateway_route(concrete)  # `make run`: the console's URL routes like the Ingress
            assert gateway is not None and gateway.api == service, (
                f"{path}: the console's gateway sends it to {gateway}"
            )
            checked += 1
    assert checked >= 10
    for path, service in [
        ("/v1/models", "models"),
        ("/v1/credits", "models"),
        ("/v1/models/0b8c2b9e-6a1e-4b8e-9a55-3f4c1f7d2a10/cancel", "models"),
        ("/v1/models/0b8c2b9e-6a1e-4b8e-9a55-3f4c1f7d2a10/export", "trainer"),
    ]:  # session 3's routes, whether or not their API is built yet
        assert nginx_route(ingress, path) == (f"voxtrain-{service}", "http"), path


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_the_ingress_routes_the_console_page_assets_and_api_to_the_console(
    overlay: str, rendered: dict, apps: dict
) -> None:
    docs = rendered[overlay]
    ingress = one(docs, "Ingress", "voxtrain")
    console: Backend = ("voxtrain-console", "http")
    assert "http" in {p["name"] for p in one(docs, "Service", "voxtrain-console")["spec"]["ports"]}
    for path in ("/", "/static/app.css", "/api/models", "/api/events"):
        assert nginx_route(ingress, path) == console, path
    assert nginx_route(ingress, "/health/live") is None
    # every file it serves, and every route of its own but /health and /metrics
    assets = [
        f"/static/{f.relative_to(console_http.STATIC).as_posix()}"
        for f in console_http.STATIC.rglob("*")
        if f.is_file()
    ]
    assert "/static/app.css" in assets and "/static/js/app.js" in assets
    for path in assets:
        assert nginx_route(ingress, path) == console, path
    routes = http_routes(apps["console"])
    assert {"/", "/api/events", "/api/{path:path}", "/health/live", "/metrics"} <= routes
    # /v1/{path}: the console's gateway for a local `make run`; in a cluster the Ingress routes /v1 itself,
    # to the console only the /v1 routes the console itself serves (a model's live events)
    assert nginx_route(ingress, "/v1/models/1/events") == console
    for route in sorted(r for r in routes if r != "/v1/{path:path}"):
        path = re.sub(r"\{[^}]+\}", "1", route)
        expected = None if route.startswith(("/health", "/metrics")) else console
        assert nginx_route(ingress, path) == expected, f"{route}: routed to {nginx_route(ingress, path)}"
    # `/` alone: any other path outside /static, /api and /v1 reaches nothing
    for path in ("/index.html", "/favicon.ico", "/docs", "/openapi.json", "/v2/models"):
        assert nginx_route(ingress, path) is None, path


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_health_and_metrics_of_the_services_and_the_console_stay_inside_the_cluster(
    overlay: str, rendered: dict, apps: dict
) -> None:
    ingress = one(rendered[overlay], "Ingress", "voxtrain")
    internal = {path for app in apps.values() for path in http_routes(app) if path.startswith(("/health", "/metrics"))}
    assert {"/health/live", "/health/ready", "/metrics"} <= internal
    for path in sorted(internal):
        for variant in (path, path + "/", path.upper()):
            assert nginx_route(ingress, variant) is None, f"{variant} must not be public"


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_the_ingress_streams_uploads_and_server_sent_events(overlay: str, rendered: dict) -> None:
    ingress = one(rendered[overlay], "Ingress", "voxtrain")
    annotations = ingress["metadata"]["annotations"]
    assert annotations[NGINX + "proxy-body-size"] == "0", "uploads of up to 10 GB per file"
    assert annotations[NGINX + "proxy-request-buffering"] == "off", "uploads stream through"
    assert annotations[NGINX + "proxy-buffering"] == "off", "events reach the browser as they come"
    console = ConsoleSettings.model_fields
    for timeout in ("proxy-read-timeout", "proxy-send-timeout"):
        assert int(annotations[NGINX + timeout]) >= console["upstream_timeout_seconds"].default, timeout
    assert int(annotations[NGINX + "proxy-read-timeout"]) > 4 * console["sse_heartbeat_seconds"].default
    # the Ingress API's strict path validation (ingress-nginx strict-validate-path-type): regular
    # expressions only in ImplementationSpecific paths
    for rule in ingress["spec"]["rules"]:
        for p in rule["http"]["paths"]:
            if p["pathType"] != "ImplementationSpecific":
                assert re.fullmatch(r"/[A-Za-z0-9._\-/]*", p["path"]), p["path"]


def test_prod_ingress_has_a_host_and_tls(rendered: dict) -> None:
    ingress = one(rendered["prod"], "Ingress", "voxtrain")
    host = ingress["spec"]["rules"][0]["host"]
    assert ingress["spec"]["tls"] == [{"hosts": [host], "secretName": "voxtrain-tls"}]


# ---------------------------------------------------------------- dev servers, prod externals


def _service_port(docs: list[dict[str, Any]], host_port: str) -> dict[str, Any]:
    host, port = host_port.rsplit(":", 1)
    svc = one(docs, "Service", host)
    assert int(port) in {p["port"] for p in svc["spec"]["ports"]}, f"{host_port}: {host} has no port {port}"
    return svc


def test_dev_runs_single_node_servers_at_the_pinned_versions(rendered: dict) -> None:
    docs = rendered["dev"]
    kafka = container(one(docs, "StatefulSet", "kafka"))
    postgres = container(one(docs, "StatefulSet", "postgres"))
    minio = container(one(docs, "StatefulSet", "minio"))
    assert kafka["image"] == versions.KAFKA_IMAGE
    assert postgres["image"] == versions.POSTGRES_IMAGE
    assert minio["image"] == f"{IMAGE_REGISTRY}/voxtrain-minio:{versions.MINIO_VERSION}"
    kafka_env = {e["name"]: e.get("value") for e in kafka["env"]}
    assert kafka_env["KAFKA_PROCESS_ROLES"] == "broker,controller", "KRaft: no ZooKeeper"
    for name in ("kafka", "postgres", "minio"):
        sts = one(docs, "StatefulSet", name)
        assert sts["spec"]["replicas"] == 1 and sts["spec"]["volumeClaimTemplates"], name
        assert sts["spec"]["serviceName"] in {d["metadata"]["name"] for d in docs if d["kind"] == "Service"}


def test_dev_services_find_the_dev_servers_with_matching_credentials(rendered: dict) -> None:
    docs = rendered["dev"]
    config = generated(docs, "ConfigMap", "voxtrain-config")["data"]
    storage = generated(docs, "ConfigMap", "voxtrain-storage-config")["data"]
    secrets = secret_values(docs, "voxtrain-secrets")
    servers = secret_values(docs, "voxtrain-dev-servers")
    kafka_env = {e["name"]: e.get("value") for e in container(one(docs, "StatefulSet", "kafka"))["env"]}
    bootstrap = config["VOXTRAIN_KAFKA__BOOTSTRAP_SERVERS"]
    _service_port(docs, bootstrap)
    assert kafka_env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{bootstrap}"
    dsn = urlsplit(secrets["VOXTRAIN_POSTGRES__DSN"])
    _service_port(docs, f"{dsn.hostname}:{dsn.port}")
    pg_env = {e["name"]: e.get("value") for e in container(one(docs, "StatefulSet", "postgres"))["env"]}
    assert (dsn.username, dsn.path.lstrip("/")) == (pg_env["POSTGRES_USER"], pg_env["POSTGRES_DB"])
    assert dsn.password == servers["POSTGRES_PASSWORD"]
    _service_port(docs, storage["VOXTRAIN_MINIO__ENDPOINT"])
    admin = secret_values(docs, "voxtrain-storage-admin")  # the storage Job's, which creates the services' users
    assert admin["VOXTRAIN_MINIO__ACCESS_KEY"] == servers["MINIO_ROOT_USER"]
    assert admin["VOXTRAIN_MINIO__SECRET_KEY"] == servers["MINIO_ROOT_PASSWORD"]
    assert "VOXTRAIN_MINIO__ACCESS_KEY" not in secrets
    own = [secret_values(docs, f"voxtrain-{s}-credentials")["VOXTRAIN_MINIO__ACCESS_KEY"] for s in STORAGE_SERVICES]
    assert len({*own, admin["VOXTRAIN_MINIO__ACCESS_KEY"]}) == len(STORAGE_SERVICES) + 1


def test_prod_has_no_servers_and_commits_no_secret(rendered: dict) -> None:
    for overlay in ("base", "prod"):
        kinds = {d["kind"] for d in rendered[overlay]}
        assert "StatefulSet" not in kinds and "Secret" not in kinds, overlay
    docs = rendered["prod"]
    config = generated(docs, "ConfigMap", "voxtrain-config")["data"]
    assert config["VOXTRAIN_ENVIRONMENT"] == "production"
    assert config["VOXTRAIN_KAFKA__BOOTSTRAP_SERVERS"] != "kafka:9092", "prod points at an external Kafka"
    assert generated(docs, "ConfigMap", "voxtrain-storage-config")["data"]["VOXTRAIN_MINIO__SECURE"] == "true"
    refs = {
        e["valueFrom"]["secretKeyRef"]["name"]
        for _, c in all_containers(docs)
        for e in c.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert refs == {"voxtrain-secrets", "voxtrain-signing-key", "voxtrain-storage-admin"} | {
        f"voxtrain-{s}-credentials" for s in DEPLOYED
    }  # the signing key: the identity service only; the admin key: the storage Job only
    assert all("REPLACE-ME" in v for secret in example_secrets().values() for v in secret.values())
    replicas = {
        n: one(docs, "Deployment", f"voxtrain-{n}")["spec"].get("replicas") for n in ("models", "datasets", "console")
    }
    assert replicas == {"models": 2, "datasets": 2, "console": 2}


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_only_the_identity_service_gets_the_signing_key(overlay: str, rendered: dict) -> None:
    docs = rendered[overlay]
    holders = set()
    for d in docs:
        if d["kind"] not in ("Deployment", "Job"):
            continue
        for c in d["spec"]["template"]["spec"]["containers"]:
            refs = [e for e in c.get("env", []) if e["name"] == "VOXTRAIN_AUTH__PRIVATE_KEY"]
            refs += [s for s in c.get("envFrom", []) if s.get("secretRef", {}).get("name") == "voxtrain-signing-key"]
            if refs:
                holders.add(d["metadata"]["name"])
    assert holders == {"voxtrain-identity"}
