"""Least privilege in the rendered manifests: each service's own credentials, the storage Job, Kafka over SASL_SSL,
and the prod NetworkPolicies — evaluated as Kubernetes would, for the pairs that must and must not connect."""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping
from typing import Any

import pytest

from tests.deploy.k8s_support import pod_spec
from tests.deploy.test_k8s import (
    DEPLOYED,
    container,
    dev_secrets,
    environment,
    http_port,
    load_settings,
    one,
    real_secrets,
    render,
)
from tests.deploy.test_k8s import OVERLAYS as FOLDERS
from voxtrain_shared.cli import _StorageSettings
from voxtrain_shared.storage_access import STORAGE_SERVICES

NAMESPACE = "voxtrain"


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {name: render(folder) for name, folder in FOLDERS.items() if name != "base"}


# ---------------------------------------------------------------- credentials per service


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_each_storage_service_reads_its_own_minio_credential_and_the_others_none(overlay: str, rendered: dict) -> None:
    docs = rendered[overlay]
    for service in DEPLOYED:
        c = container(one(docs, "Deployment", f"voxtrain-{service}"), service)
        refs = {
            e["name"]: e["valueFrom"]["secretKeyRef"]["name"]
            for e in c.get("env", [])
            if "secretKeyRef" in e.get("valueFrom", {})
        }
        minio = {name: secret for name, secret in refs.items() if name.startswith("VOXTRAIN_MINIO__")}
        if service in STORAGE_SERVICES:
            own = f"voxtrain-{service}-credentials"
            assert {s.rsplit("-", 1)[0] if overlay == "dev" else s for s in minio.values()} == {own}, service
        else:
            assert minio == {}, f"{service} uses no object storage"
        assert not any("storage-admin" in s for s in refs.values()), f"{service} must not hold the admin key"


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_the_storage_job_provisions_every_storage_services_user_with_the_admin_key(
    overlay: str, rendered: dict
) -> None:
    docs = rendered[overlay]
    job = one(docs, "Job", "voxtrain-storage")
    c = container(job)
    assert c["command"] == ["voxtrain", "storage", "provision"]
    secrets = dev_secrets(docs) if overlay == "dev" else real_secrets()
    conf = load_settings(_StorageSettings, environment(docs, c, secrets))
    assert set(conf.storage_users) == set(STORAGE_SERVICES)
    assert conf.minio.bucket == "voxtrain"
    if overlay == "dev":  # the admin key is MinIO's root user; each service's key is its own
        keys = {u.access_key for u in conf.storage_users.values()}
        assert conf.minio.access_key.get_secret_value() not in keys and len(keys) == len(STORAGE_SERVICES)


@pytest.mark.parametrize("service", DEPLOYED)
def test_prod_talks_to_kafka_over_sasl_ssl_as_the_services_own_user(service: str, rendered: dict) -> None:
    docs = rendered["prod"]
    dep = one(docs, "Deployment", f"voxtrain-{service}")
    c = container(dep, service)
    s = load_settings(DEPLOYED[service], environment(docs, c, real_secrets()))
    kafka = s.kafka
    assert (kafka.security_protocol, kafka.sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-512")
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in c["env"] if "valueFrom" in e}
    assert refs["VOXTRAIN_KAFKA__SASL_USERNAME"] == refs["VOXTRAIN_KAFKA__SASL_PASSWORD"]
    assert refs["VOXTRAIN_KAFKA__SASL_PASSWORD"] == f"voxtrain-{service}-credentials"
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    ca_dir, ca_name = kafka.ssl_ca_file.rsplit("/", 1) if kafka.ssl_ca_file else ("", "")
    assert volumes[mounts[ca_dir]]["configMap"]["name"] == "voxtrain-kafka-ca" and ca_name == "ca.crt"


# ---------------------------------------------------------------- NetworkPolicies, evaluated


@dataclasses.dataclass(frozen=True)
class Pod:
    namespace: str
    labels: Mapping[str, str]
    name: str = ""


def _selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Kubernetes label-selector semantics (an empty selector selects everything)."""
    if selector is None:
        return True
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for e in selector.get("matchExpressions", []):
        key, op, values = e["key"], e["operator"], e.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def _peer_matches(peer: Mapping[str, Any], policy_ns: str, other: Pod | str) -> bool:
    if "ipBlock" in peer:
        if not isinstance(other, str):
            return False  # pod-to-pod traffic is matched by selectors (this model ignores pod IPs)
        ip = ipaddress.ip_address(other)
        block = peer["ipBlock"]
        return ip in ipaddress.ip_network(block["cidr"]) and not any(
            ip in ipaddress.ip_network(x) for x in block.get("except", [])
        )
    if isinstance(other, str):
        return False
    if "namespaceSelector" in peer:
        ns_labels = {"kubernetes.io/metadata.name": other.namespace}
        if not _selects(peer["namespaceSelector"], ns_labels):
            return False
    elif other.namespace != policy_ns:
        return False
    return _selects(peer.get("podSelector"), other.labels)


def _port_matches(rules: list[Mapping[str, Any]] | None, port: int, protocol: str) -> bool:
    return not rules or any(r.get("port") == port and r.get("protocol", "TCP") == protocol for r in rules)


def _allowed_one_way(
    policies: list[dict[str, Any]], pod: Pod, direction: str, other: Pod | str, port: int, protocol: str
) -> bool:
    """Whether ``pod``'s policies let traffic ``direction`` (Ingress from / Egress to) ``other`` through."""
    key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    selecting = [
        p
        for p in policies
        if p["metadata"].get("namespace", NAMESPACE) == pod.namespace
        and direction in p["spec"].get("policyTypes", ["Ingress"])
        and _selects(p["spec"]["podSelector"], pod.labels)
    ]
    if not selecting:
        return True  # not isolated in this direction
    for policy in selecting:
        for rule in policy["spec"].get(key, []):
            peers = rule.get(peers_key)
            ns = policy["metadata"].get("namespace", NAMESPACE)
            if (not peers or any(_peer_matches(p, ns, other) for p in peers)) and _port_matches(
                rule.get("ports"), port, protocol
            ):
                return True
    return False


def connects(policies: list[dict[str, Any]], src: Pod, dst: Pod | str, port: int, protocol: str = "TCP") -> bool:
    """A connection from pod ``src`` to pod or IP address ``dst``: the egress side of the source (when it is ours)
    and the ingress side of the destination (when it is a pod) must both allow it."""
    if src.namespace == NAMESPACE and not _allowed_one_way(policies, src, "Egress", dst, port, protocol):
        return False
    return isinstance(dst, str) or _allowed_one_way(policies, dst, "Ingress", src, port, protocol)


@pytest.fixture(scope="module")
def network(rendered: dict) -> tuple[list[dict[str, Any]], dict[str, Pod]]:
    docs = rendered["prod"]
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    pods = {}
    for d in docs:
        if pod_spec(d) is None:
            continue
        labels = d["spec"]["template"]["metadata"]["labels"]
        pods[d["metadata"]["name"].removeprefix("voxtrain-")] = Pod(NAMESPACE, labels, d["metadata"]["name"])
    return policies, pods


def _server_address(policies: list[dict[str, Any]], name: str) -> str:
    """An address inside the ipBlock of the policy ``name`` (the placeholder ranges the operator replaces)."""
    policy = next(p for p in policies if p["metadata"]["name"] == name)
    cidr = policy["spec"]["egress"][0]["to"][0]["ipBlock"]["cidr"]
    return str(next(ipaddress.ip_network(cidr).hosts()))


SERVICES = ("models", "datasets", "validator", "trainer", "webhooks", "identity")
#: What the console serves its pages over, and the Ingress routes to (not the validator: it serves no API).
APIS = ("models", "datasets", "trainer", "webhooks", "identity")
INGRESS_CONTROLLER = Pod("ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"})
PROMETHEUS = Pod("monitoring", {"app.kubernetes.io/name": "prometheus"})
STRANGER = Pod("some-other-team", {"app": "curious"})
KUBE_DNS = Pod("kube-system", {"k8s-app": "kube-dns"})


def test_everything_is_denied_unless_allowed(network: tuple) -> None:
    policies, _ = network
    deny = next(p for p in policies if p["metadata"]["name"] == "voxtrain-default-deny")
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def test_only_the_services_reach_postgresql_kafka_and_storage(network: tuple) -> None:
    policies, pods = network
    postgres = _server_address(policies, "voxtrain-to-postgres")
    kafka = _server_address(policies, "voxtrain-to-kafka")
    storage = _server_address(policies, "voxtrain-to-storage")
    for name in SERVICES:
        assert connects(policies, pods[name], postgres, 5432), name
        assert connects(policies, pods[f"migrate-{name}"], postgres, 5432), f"migrate-{name}"
        assert connects(policies, pods[name], kafka, 9093), name
        assert connects(policies, pods[name], storage, 443) == (name in STORAGE_SERVICES), name
        assert not connects(policies, pods[f"migrate-{name}"], kafka, 9093), f"migrate-{name}"
    assert connects(policies, pods["console"], kafka, 9093)
    assert not connects(policies, pods["console"], postgres, 5432)
    assert not connects(policies, pods["console"], storage, 443)
    assert connects(policies, pods["storage"], storage, 443)
    assert not connects(policies, pods["storage"], postgres, 5432)
    assert not connects(policies, pods["validator"], postgres, 5433), "only the servers' ports"
    for pod in pods.values():
        assert connects(policies, pod, KUBE_DNS, 53, "UDP"), pod.name


def test_the_validator_cannot_reach_anything_else(network: tuple) -> None:
    policies, pods = network
    v = pods["validator"]
    assert not connects(policies, v, "93.184.216.34", 443), "no internet for the pod that decodes untrusted media"
    assert not connects(policies, v, "169.254.169.254", 80), "no cloud metadata endpoint"
    for other in (*APIS, "console"):
        assert not connects(policies, v, pods[other], http_port(other)), other


def test_webhooks_reach_the_internet_over_https_but_no_private_address(network: tuple) -> None:
    policies, pods = network
    w = pods["webhooks"]
    assert connects(policies, w, "93.184.216.34", 443)
    assert not connects(policies, w, "93.184.216.34", 80)
    for private in ("10.1.2.3", "172.16.0.9", "192.168.1.1", "169.254.169.254", "127.0.0.1"):
        assert not connects(policies, w, private, 443), private
    assert not connects(policies, pods["models"], "93.184.216.34", 443), "only webhooks deliver outside"


def test_the_ingress_controller_reaches_the_console_and_the_routed_apis_only(network: tuple) -> None:
    policies, pods = network
    for name in ("console", *APIS):
        assert connects(policies, INGRESS_CONTROLLER, pods[name], http_port(name)), name
        assert not connects(policies, STRANGER, pods[name], http_port(name)), name
    assert not connects(policies, INGRESS_CONTROLLER, pods["validator"], http_port("validator"))


def test_the_console_reaches_the_apis_it_serves_and_nothing_reaches_the_console_but_the_ingress(network: tuple) -> None:
    policies, pods = network
    for name in APIS:
        assert connects(policies, pods["console"], pods[name], http_port(name)), name
    assert not connects(policies, pods["console"], pods["validator"], http_port("validator"))
    for name in SERVICES:
        assert not connects(policies, pods[name], pods["console"], http_port("console")), name
    assert not connects(policies, pods["models"], pods["datasets"], http_port("datasets")), "no lateral calls"


def test_prometheus_scrapes_every_server_pod(network: tuple) -> None:
    policies, pods = network
    for name in (*SERVICES, "console"):
        assert connects(policies, PROMETHEUS, pods[name], http_port(name)), name
    other_pod_in_monitoring = Pod("monitoring", {"app.kubernetes.io/name": "grafana"})
    assert not connects(policies, other_pod_in_monitoring, pods["models"], http_port("models"))
