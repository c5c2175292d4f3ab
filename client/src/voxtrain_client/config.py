"""Where the client finds voxtrain and its credentials.

Each setting is taken from the first of: explicit arguments, the environment (``VT_URL``, ``VT_API_KEY``,
``VT_TOKEN``, ``VT_PROFILE``), a profile of the config file, the default. The file is
``~/.config/voxtrain/config.toml`` (the platform's config folder; ``VT_CONFIG`` names another)::

    profile = "prod"                      # the profile used when neither --profile nor VT_PROFILE names one

    [profiles.prod]
    url = "https://voxtrain.example.com"
    api_key = "vtk_…"                     # exchanged for a short-lived token at POST /v1/auth/token

    [profiles.local]
    url = "http://127.0.0.1:8100"
    token = "eyJ…"                        # a bearer token as is (e.g. `voxtrain token acme`)

Top-level ``url``/``api_key``/``token`` keys (the file's older form) act as the profile ``default``.
Credentials come as one: the API key or token of the first place that has either (an API key wins over a
token given in the same place), so ``VT_TOKEN`` in the environment overrides an ``api_key`` in the file.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

DEFAULT_URL = "http://127.0.0.1:8100"
DEFAULT_PROFILE = "default"
KEYS = ("url", "api_key", "token")


class ConfigError(Exception):
    """The client is not configured well enough to talk to voxtrain."""


def config_file(env: Mapping[str, str] | None = None) -> Path:
    """``VT_CONFIG``, else ``config.toml`` in the platform's config folder for voxtrain (or, when only that
    exists, the ``vt`` folder earlier versions used)."""
    env = os.environ if env is None else env
    if named := env.get("VT_CONFIG"):
        return Path(named).expanduser()
    path = Path(platformdirs.user_config_dir("voxtrain")) / "config.toml"
    older = Path(platformdirs.user_config_dir("vt")) / "config.toml"  # where earlier versions of vt looked
    return older if not path.exists() and older.is_file() else path


def state_dir() -> Path:
    """Where resumable uploads keep their progress between runs."""
    return Path(os.environ.get("VT_STATE_DIR") or platformdirs.user_state_dir("vt"))


def read_profiles(path: Path) -> tuple[dict[str, dict[str, str]], str | None]:
    """The file's profiles by name and its chosen ``profile``; nothing when the file does not exist."""
    if not path.is_file():
        return {}, None
    try:
        with path.open("rb") as f:
            raw: dict[str, Any] = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path} is not a readable TOML file: {exc}") from None
    profiles: dict[str, dict[str, str]] = {}
    top = {k: str(raw[k]) for k in KEYS if k in raw}
    if top:
        profiles[DEFAULT_PROFILE] = top
    tables = raw.get("profiles", {})
    if not isinstance(tables, dict) or not all(isinstance(t, dict) for t in tables.values()):
        raise ConfigError(f"{path}: `profiles` must be tables, e.g. [profiles.prod] with url and api_key")
    for name, table in tables.items():
        unknown = set(table) - set(KEYS)
        if unknown:
            raise ConfigError(f"{path}: profile {name!r} has unknown keys {sorted(unknown)} (known: {', '.join(KEYS)})")
        profiles[name] = {**profiles.get(name, {}), **{k: str(v) for k, v in table.items()}}
    chosen = raw.get("profile")
    return profiles, str(chosen) if chosen is not None else None


def _credentials(layer: Mapping[str, str | None]) -> tuple[str | None, str | None] | None:
    """(api_key, token) of a place that gives either, else None."""
    api_key, token = layer.get("api_key") or None, layer.get("token") or None
    if api_key:
        return api_key, None
    if token:
        return None, token
    return None


@dataclass(frozen=True)
class ClientConfig:
    """Resolved settings: the base URL and one credential (an API key to exchange, or a bearer token)."""

    url: str
    token: str | None = None
    api_key: str | None = None
    profile: str | None = None
    source: str = "arguments"

    @classmethod
    def load(
        cls,
        url: str | None = None,
        token: str | None = None,
        file: Path | None = None,
        *,
        api_key: str | None = None,
        profile: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> ClientConfig:
        env = os.environ if env is None else env
        path = file or config_file(env)
        profiles, chosen = read_profiles(path)
        name = profile or env.get("VT_PROFILE") or chosen
        if name is not None and name not in profiles:
            known = ", ".join(sorted(profiles)) or "none"
            raise ConfigError(f"no profile {name!r} in {path} (profiles there: {known})")
        stored = profiles.get(name or DEFAULT_PROFILE, {})
        layers: list[tuple[str, Mapping[str, str | None]]] = [
            ("arguments", {"url": url, "api_key": api_key, "token": token}),
            ("environment", {"url": env.get("VT_URL"), "api_key": env.get("VT_API_KEY"), "token": env.get("VT_TOKEN")}),
            (f"{path} [{name or DEFAULT_PROFILE}]", stored),
        ]
        resolved_url = next((u for _, layer in layers if (u := layer.get("url"))), DEFAULT_URL)
        for source, layer in layers:
            if (creds := _credentials(layer)) is not None:
                key, bearer = creds
                return cls(url=resolved_url.rstrip("/"), token=bearer, api_key=key, profile=name, source=source)
        raise ConfigError(
            f'no credentials: set VT_API_KEY (or VT_TOKEN), or put `api_key = "…"` in a profile of {path}'
        )
