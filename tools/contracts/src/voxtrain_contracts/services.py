"""Each service built with placeholder settings — the apps and brokers the contracts are read from.

Nothing is started or connected: ``bootstrap.build`` only wires objects.
"""

from __future__ import annotations

import importlib
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from voxtrain_shared import settings as st
from voxtrain_shared.auth import generate_key_pair

#: A throw-away signing key: the contracts are read from apps that never start.
DOCS_PRIVATE_KEY, DOCS_PUBLIC_KEY = generate_key_pair()

#: The services, in the order they are listed everywhere.
SERVICES = ("models", "datasets", "validator", "trainer", "webhooks", "identity")


class ContractsError(Exception):
    """The contracts cannot be generated here (e.g. a service is not installed)."""


@dataclass(frozen=True)
class BuiltService:
    name: str
    service: Any  # voxtrain_shared.service.Service


def _docs_settings(service: str, work_dir: str) -> Any:
    """The service's settings with placeholder values and nothing read from the environment."""
    classes: dict[str, type[st.ServiceSettings]] = {
        "models": st.ModelsSettings,
        "datasets": st.DatasetsSettings,
        "validator": st.ValidatorSettings,
        "trainer": st.TrainerSettings,
        "webhooks": st.WebhooksSettings,
        "identity": st.IdentitySettings,
    }
    cls = classes[service]

    class DocsOnly(cls):  # type: ignore[valid-type, misc]  # a subclass of a class chosen at run time
        @classmethod
        def settings_customise_sources(cls, settings_cls: Any, init_settings: Any, **_others: Any) -> tuple[Any, ...]:
            return (init_settings,)

    values: dict[str, Any] = {
        "postgres": {"dsn": "postgresql://docs@localhost/docs"},
        "auth": {"public_key": DOCS_PUBLIC_KEY, "private_key": DOCS_PRIVATE_KEY if cls.issues_tokens else None},
    }
    if "minio" in cls.model_fields:
        values["minio"] = {"access_key": "docs", "secret_key": "docs-only"}
    if "work_dir" in cls.model_fields:
        values["work_dir"] = work_dir
    return DocsOnly(**values)


@contextmanager
def built_services() -> Iterator[list[BuiltService]]:
    """Each service's ``bootstrap.build`` with placeholder settings (nothing is started or connected)."""
    with tempfile.TemporaryDirectory(prefix="voxtrain-docs-") as work_dir:
        built = []
        for name in SERVICES:
            try:
                bootstrap = importlib.import_module(f"voxtrain_{name}.bootstrap")
            except ModuleNotFoundError as exc:
                raise ContractsError(
                    f"the contracts need every service installed ({exc}); in the repository: uv sync --all-packages"
                ) from None
            built.append(BuiltService(name, bootstrap.build(_docs_settings(name, work_dir))))
        yield built
