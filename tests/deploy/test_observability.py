"""deploy/observability: the Grafana dashboard and the Prometheus rules parse, and every metric they use is one
the services export (so a renamed metric cannot silently leave a panel or an alert empty)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from prometheus_client import REGISTRY

from voxtrain_contracts.services import built_services

OBSERVABILITY = Path(__file__).resolve().parents[2] / "deploy" / "observability"
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def dashboard() -> dict[str, Any]:
    return json.loads((OBSERVABILITY / "grafana-dashboard.json").read_text())


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((OBSERVABILITY / "prometheus-rules.yaml").read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


def expressions() -> Iterator[tuple[str, str]]:
    for p in dashboard()["panels"]:
        for t in p["targets"]:
            yield f"panel {p['title']!r}", t["expr"]
    for r in rules():
        yield f"alert {r['alert']}", r["expr"]


def metric_names(node: Any) -> set[str]:
    """The metric names a parsed PromQL expression selects."""
    names = set()
    if type(node).__name__ == "VectorSelector" and node.name:
        names.add(node.name)
    for attr in ("expr", "lhs", "rhs", "vector_selector", "param"):
        child = getattr(node, attr, None)
        if child is not None and not isinstance(child, (str, int, float)):
            names |= metric_names(child)
    for child in getattr(node, "args", None) or []:
        names |= metric_names(child)
    return names


@pytest.fixture(scope="module")
def exported() -> set[str]:
    """Every metric name the services register (each service's modules are imported by building it)."""
    with built_services():
        names = set()
        for family in REGISTRY.collect():
            names.add(family.name)
            names |= {family.name + s for s in HISTOGRAM_SUFFIXES} | {family.name + "_total"}
        return names


@pytest.mark.parametrize(("where", "expr"), list(expressions()))
def test_every_expression_parses_and_uses_exported_metrics(where: str, expr: str, exported: set[str]) -> None:
    parsed = promql_parser.parse(expr)
    used = metric_names(parsed)
    assert used, f"{where}: selects no metric"
    assert used <= exported, f"{where}: {sorted(used - exported)} are not exported by any service"


def test_the_dashboard_is_a_grafana_dashboard_with_unique_panels() -> None:
    d = dashboard()
    assert d["uid"] and d["title"] and d["schemaVersion"] >= 36
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids)) and all(p["targets"] for p in d["panels"])
    assert {t["name"] for t in d["templating"]["list"]} == {"datasource"}
    for p in d["panels"]:
        assert p["datasource"]["uid"] == "${datasource}", p["title"]


def test_the_rules_cover_what_the_issue_asks_for_and_are_well_formed() -> None:
    by_name = {r["alert"]: r for r in rules()}
    for needed in ("VoxtrainModelsOverdue", "VoxtrainDeadLetters", "VoxtrainOutboxStale", "VoxtrainConsumerLag"):
        assert needed in by_name
    for r in by_name.values():
        assert r["labels"]["severity"] in {"warning", "critical"}
        assert r["annotations"]["summary"] and r["annotations"]["description"]
