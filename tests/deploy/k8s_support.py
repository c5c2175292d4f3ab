"""Rendering deploy/k8s for the tests: a small kustomize of our own, and the real one when there is one.

:func:`render` implements exactly the kustomization features deploy/k8s uses — and refuses any other
field — so the tests never depend on a binary: ``resources`` (files and directories), ``namespace``,
``labels`` (without selectors), ``images``, ``configMapGenerator``/``secretGenerator`` (literals and
env files; create/merge/replace; the content-hash name suffix and the rewriting of references to it),
and ``patches`` (a strategic-merge patch file, or an inline JSON 6902 patch with a kind/name target).

:func:`real_kustomize` finds a real kustomize to check the renderer against: ``$VOXTRAIN_KUSTOMIZE``,
the cached build, ``kustomize`` on PATH, ``kubectl kustomize``, or else it builds one with
``go install`` from the Go module proxy into ``${XDG_CACHE_HOME:-~/.cache}/voxtrain/kustomize`` (once).
"""

from __future__ import annotations

import base64
import copy
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

KUSTOMIZE_MODULE = "sigs.k8s.io/kustomize/kustomize/v5"
#: The newest release that builds with the Go of these machines (v5.8 needs Go 1.27).
KUSTOMIZE_VERSION = "v5.7.1"
SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "labels", "images", "configMapGenerator",
             "secretGenerator", "patches"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass",
                  "CustomResourceDefinition", "IngressClass", "PriorityClass"}
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
#: Strategic-merge keys of the lists our patches reach (everything else is replaced whole, as in k8s).
MERGE_KEYS = {"containers": "name", "initContainers": "name", "env": "name", "volumes": "name",
              "volumeMounts": "mountPath", "ports": "containerPort", "imagePullSecrets": "name"}


class Unsupported(AssertionError):
    """deploy/k8s uses a kustomization feature :func:`render` does not implement."""


@dataclass
class Resource:
    doc: dict[str, Any]
    generated_from: str | None = None  # the generator's name, for a generated ConfigMap/Secret
    source: str = ""

    @property
    def kind(self) -> str:
        return self.doc["kind"]

    @property
    def name(self) -> str:
        return self.doc["metadata"]["name"]


@dataclass
class Rendered:
    resources: list[Resource] = field(default_factory=list)

    def docs(self) -> list[dict[str, Any]]:
        return [r.doc for r in self.resources]


# ---------------------------------------------------------------- our renderer


def render(folder: Path) -> list[dict[str, Any]]:
    """``kustomize build folder``, for the features listed in the module docstring."""
    built = _build(folder.resolve())
    _name_generated(built)
    return built.docs()


def _build(folder: Path) -> Rendered:
    k = yaml.safe_load((folder / "kustomization.yaml").read_text()) or {}
    unknown = set(k) - SUPPORTED
    if unknown:
        raise Unsupported(f"{folder}/kustomization.yaml uses {sorted(unknown)}: teach k8s_support.py first")
    out = Rendered()
    for entry in k.get("resources", []):
        path = (folder / entry).resolve()
        if path.is_dir():
            out.resources += _build(path).resources
        else:
            out.resources += [Resource(d, source=str(path)) for d in yaml.safe_load_all(path.read_text()) if d]
    for key, kind in (("configMapGenerator", "ConfigMap"), ("secretGenerator", "Secret")):
        for gen in k.get(key, []):
            _generate(out, folder, kind, gen)
    for patch in k.get("patches", []):
        _patch(out, folder, patch)
    if "namespace" in k:
        for r in out.resources:
            if r.kind not in CLUSTER_SCOPED:
                r.doc["metadata"]["namespace"] = k["namespace"]
    for entry in k.get("labels", []):
        if entry.get("includeSelectors"):
            raise Unsupported("labels with includeSelectors")
        for r in out.resources:
            r.doc["metadata"].setdefault("labels", {}).update(entry["pairs"])
            if entry.get("includeTemplates") and r.kind in WORKLOADS:
                r.doc["spec"]["template"].setdefault("metadata", {}).setdefault("labels", {}).update(entry["pairs"])
    for image in k.get("images", []):
        for r in out.resources:
            for c in _containers(r.doc):
                _set_image(c, image)
    return out


def _generator_data(folder: Path, gen: dict[str, Any]) -> dict[str, str]:
    unknown = set(gen) - {"name", "behavior", "literals", "envs", "type"}
    if unknown:
        raise Unsupported(f"generator fields {sorted(unknown)}")
    data: dict[str, str] = {}
    lines = list(gen.get("literals", []))
    for env_file in gen.get("envs", []):
        lines += [ln for ln in (folder / env_file).read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    for line in lines:
        key, sep, value = line.partition("=")
        if not sep:
            raise Unsupported(f"generator line without '=': {line!r}")
        data[key.strip()] = value
    return data


def _base64(value: str) -> str:
    """Secret data as kustomize writes it: base64, in lines of 70 characters when longer."""
    text = base64.b64encode(value.encode()).decode()
    if len(text) <= 70:
        return text
    return "".join(text[i:i + 70] + "\n" for i in range(0, len(text), 70))


def _generate(out: Rendered, folder: Path, kind: str, gen: dict[str, Any]) -> None:
    data = _generator_data(folder, gen)
    behavior = gen.get("behavior", "create")
    if behavior == "create":
        doc: dict[str, Any] = {"apiVersion": "v1", "kind": kind, "metadata": {"name": gen["name"]}}
        if kind == "Secret":
            doc["type"] = gen.get("type", "Opaque")
            doc["data"] = {k: _base64(v) for k, v in data.items()}
        else:
            doc["data"] = data
        out.resources.append(Resource(doc, generated_from=gen["name"], source=str(folder)))
        return
    target = [r for r in out.resources if r.kind == kind and r.generated_from == gen["name"]]
    if len(target) != 1:
        raise Unsupported(f"{behavior} of {kind} {gen['name']}: no single generated {kind} of that name")
    if kind == "Secret":
        data = {k: _base64(v) for k, v in data.items()}
    if behavior == "merge":
        target[0].doc["data"] = {**target[0].doc.get("data", {}), **data}
    elif behavior == "replace":
        target[0].doc["data"] = data
    else:
        raise Unsupported(f"generator behavior {behavior}")


def _find(out: Rendered, kind: str, name: str) -> Resource:
    found = [r for r in out.resources if r.kind == kind and r.name == name]
    if len(found) != 1:
        raise AssertionError(f"patch target {kind}/{name}: {len(found)} resources match")
    return found[0]


def _patch(out: Rendered, folder: Path, patch: dict[str, Any]) -> None:
    if "path" in patch and set(patch) == {"path"}:
        doc = yaml.safe_load((folder / patch["path"]).read_text())
        target = _find(out, doc["kind"], doc["metadata"]["name"])
        target.doc = strategic_merge(target.doc, doc)
    elif set(patch) == {"target", "patch"} and set(patch["target"]) <= {"kind", "name"}:
        target = _find(out, patch["target"]["kind"], patch["target"]["name"])
        for op in yaml.safe_load(patch["patch"]):
            json_patch(target.doc, op)
    else:
        raise Unsupported(f"patch form {sorted(patch)}")


def strategic_merge(base: Any, patch: Any, key: str = "") -> Any:
    """Merge ``patch`` into ``base`` the way ``kubectl``'s strategic merge does for the lists in :data:`MERGE_KEYS`."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for k, v in patch.items():
            if k.startswith("$") or (isinstance(v, dict) and "$patch" in v):
                raise Unsupported(f"strategic-merge directive {k}")
            merged[k] = strategic_merge(base[k], v, k) if k in base and v is not None else v
        return {k: v for k, v in merged.items() if v is not None}
    if isinstance(base, list) and isinstance(patch, list) and key in MERGE_KEYS:
        mk = MERGE_KEYS[key]
        merged_list = [copy.deepcopy(item) for item in base]
        for item in patch:
            idx = next((i for i, b in enumerate(merged_list) if b.get(mk) == item.get(mk)), None)
            if idx is None:
                merged_list.append(item)
            else:
                merged_list[idx] = strategic_merge(merged_list[idx], item, "")
        return merged_list
    return copy.deepcopy(patch)


def json_patch(doc: dict[str, Any], op: dict[str, Any]) -> None:
    """One RFC 6902 operation (add, replace, remove) on ``doc``."""
    parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].lstrip("/").split("/")]
    parent: Any = doc
    for p in parts[:-1]:
        parent = parent[int(p)] if isinstance(parent, list) else parent[p]
    last = parts[-1]
    if op["op"] in ("add", "replace"):
        if isinstance(parent, list):
            if last == "-":
                parent.append(op["value"])
            elif op["op"] == "add":
                parent.insert(int(last), op["value"])
            else:
                parent[int(last)] = op["value"]
        else:
            if op["op"] == "replace" and last not in parent:
                raise AssertionError(f"replace of a missing {op['path']}")
            parent[last] = copy.deepcopy(op["value"])
    elif op["op"] == "remove":
        del parent[int(last) if isinstance(parent, list) else last]
    else:
        raise Unsupported(f"JSON patch op {op['op']}")


def pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    """The pod spec of a workload (None for other kinds)."""
    if doc["kind"] in WORKLOADS:
        return doc["spec"]["template"]["spec"]
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return None


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(doc)
    return [] if spec is None else list(spec.get("initContainers", [])) + list(spec.get("containers", []))


def _set_image(container: dict[str, Any], image: dict[str, Any]) -> None:
    unknown = set(image) - {"name", "newName", "newTag"}
    if unknown:
        raise Unsupported(f"images fields {sorted(unknown)}")
    ref = container["image"]
    if "@" in ref:
        raise Unsupported("image digests")
    name, tag = ref, None
    if ":" in ref.rsplit("/", 1)[-1]:
        name, tag = ref.rsplit(":", 1)
    if name != image["name"]:
        return
    name, tag = image.get("newName", name), image.get("newTag", tag)
    container["image"] = f"{name}:{tag}" if tag else name


def content_hash(doc: dict[str, Any]) -> str:
    """kustomize's name suffix of a generated ConfigMap/Secret: a hash of its kind, type and data."""
    if doc["kind"] == "ConfigMap":
        encoded = {"kind": "ConfigMap", "name": "", "data": doc.get("data", {})}
    else:
        encoded = {"kind": "Secret", "type": doc.get("type", ""), "name": "", "data": doc.get("data", {})}
    digest = hashlib.sha256(json.dumps(encoded, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    return digest[:10].translate(str.maketrans("013ae", "ghkmt"))


def _name_generated(built: Rendered) -> None:
    names: dict[tuple[str, str], str] = {}
    for r in built.resources:
        if r.generated_from is not None:
            new = f"{r.generated_from}-{content_hash(r.doc)}"
            names[(r.kind, r.generated_from)] = new
            r.doc["metadata"]["name"] = new
    for r in built.resources:
        _rewrite_references(r.doc, names)


def _rewrite_references(doc: dict[str, Any], names: dict[tuple[str, str], str]) -> None:
    def cm(ref: dict[str, Any] | None, field: str = "name") -> None:
        if ref and ("ConfigMap", ref.get(field)) in names:
            ref[field] = names[("ConfigMap", ref[field])]

    def secret(ref: dict[str, Any] | None, field: str = "name") -> None:
        if ref and ("Secret", ref.get(field)) in names:
            ref[field] = names[("Secret", ref[field])]

    for c in _containers(doc):
        for source in c.get("envFrom", []):
            cm(source.get("configMapRef"))
            secret(source.get("secretRef"))
        for env in c.get("env", []):
            cm((env.get("valueFrom") or {}).get("configMapKeyRef"))
            secret((env.get("valueFrom") or {}).get("secretKeyRef"))
    spec = pod_spec(doc)
    if spec is not None:
        for volume in spec.get("volumes", []):
            cm(volume.get("configMap"))
            secret(volume.get("secret"), "secretName")
        for pull in spec.get("imagePullSecrets", []):
            secret(pull)
    if doc["kind"] == "Ingress":
        for tls in doc["spec"].get("tls", []):
            secret(tls, "secretName")


# ---------------------------------------------------------------- the real kustomize


def _cache_dir() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "voxtrain" / "kustomize" / KUSTOMIZE_VERSION


def real_kustomize() -> tuple[list[str] | None, str]:
    """A command that runs ``kustomize build`` (``[..., DIR]``), or None and why there is none."""
    if env := os.environ.get("VOXTRAIN_KUSTOMIZE"):
        return [env, "build"], env
    cached = _cache_dir() / "kustomize"
    if cached.is_file():
        return [str(cached), "build"], str(cached)
    if path := shutil.which("kustomize"):
        return [path, "build"], path
    if (kubectl := shutil.which("kubectl")) and subprocess.run(
            [kubectl, "kustomize", "--help"], capture_output=True, timeout=60).returncode == 0:
        return [kubectl, "kustomize"], f"{kubectl} kustomize"
    go = shutil.which("go", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/go/bin"]))
    if go is None:
        return None, "no kustomize, kubectl or Go here to build one"
    folder = cached.parent
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not cached.is_file():
            with tempfile.TemporaryDirectory(dir=folder, prefix=".tmp-") as tmp:
                done = subprocess.run([go, "install", f"{KUSTOMIZE_MODULE}@{KUSTOMIZE_VERSION}"],
                                      env={**os.environ, "GOBIN": tmp, "CGO_ENABLED": "0"},
                                      capture_output=True, text=True, timeout=540)
                if done.returncode != 0:
                    return None, f"`go install {KUSTOMIZE_MODULE}@{KUSTOMIZE_VERSION}` failed: {done.stderr[-2000:]}"
                os.replace(Path(tmp) / "kustomize", cached)
    return [str(cached), "build"], str(cached)


def render_with(command: list[str], folder: Path) -> list[dict[str, Any]]:
    done = subprocess.run([*command, str(folder)], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(command)} {folder} failed:\n{done.stderr}")
    return [d for d in yaml.safe_load_all(done.stdout) if d]
