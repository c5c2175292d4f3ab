"""Where the client finds voxtrain and its credentials.

In this order: explicit arguments, the environment (``VT_URL``, ``VT_TOKEN``), then the config file
``$XDG_CONFIG_HOME/vt/config.toml`` (``url = "…"``, ``token = "…"``).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

import platformdirs

DEFAULT_URL = "http://127.0.0.1:8100"


class ConfigError(Exception):
    """The client is not configured well enough to talk to voxtrain."""


def config_file() -> Path:
    return Path(platformdirs.user_config_dir("vt")) / "config.toml"


def state_dir() -> Path:
    """Where resumable uploads keep their progress between runs."""
    return Path(os.environ.get("VT_STATE_DIR") or platformdirs.user_state_dir("vt"))


@dataclass(frozen=True)
class ClientConfig:
    url: str
    token: str

    @classmethod
    def load(cls, url: str | None = None, token: str | None = None, file: Path | None = None) -> ClientConfig:
        path = file or config_file()
        stored: dict[str, str] = {}
        if path.is_file():
            with path.open("rb") as f:
                stored = {k: str(v) for k, v in tomllib.load(f).items()}
        url = url or os.environ.get("VT_URL") or stored.get("url") or DEFAULT_URL
        token = token or os.environ.get("VT_TOKEN") or stored.get("token")
        if not token:
            raise ConfigError(f'no credentials: set VT_TOKEN (or `token = "…"` in {path})')
        return cls(url=url.rstrip("/"), token=token)
