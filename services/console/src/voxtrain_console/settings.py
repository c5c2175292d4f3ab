"""Settings of the console, composed of the shared Kafka / auth / HTTP sections plus where the APIs are.

The console has no database and no object storage of its own: it serves the static pages, proxies
``/api/…`` to the three public APIs, and relays status events from Kafka. Read from the environment
like every service (``VOXTRAIN_`` prefix, ``__`` between section and field), e.g.
``VOXTRAIN_MODELS_URL=http://models:8101``.
"""

from __future__ import annotations

from pydantic import AnyHttpUrl, Field

from voxtrain_shared.settings import BaseServiceSettings, HttpSettings

MiB = 1024**2


class ConsoleSettings(BaseServiceSettings):
    """Everything ``voxtrain-console`` reads; validated at start-up."""

    service_name: str = "console"
    http: HttpSettings = HttpSettings(port=8100)
    models_url: AnyHttpUrl = Field(AnyHttpUrl("http://127.0.0.1:8101"), description="base URL of the models API")
    datasets_url: AnyHttpUrl = Field(AnyHttpUrl("http://127.0.0.1:8102"), description="base URL of the datasets API")
    trainer_url: AnyHttpUrl = Field(
        AnyHttpUrl("http://127.0.0.1:8104"), description="base URL of the trainer (transcription) API"
    )
    webhooks_url: AnyHttpUrl = Field(AnyHttpUrl("http://127.0.0.1:8105"), description="base URL of the webhooks API")
    identity_url: AnyHttpUrl = Field(
        AnyHttpUrl("http://127.0.0.1:8106"), description="base URL of the identity API (API keys, sign-in)"
    )
    resumable_threshold_bytes: int = Field(
        64 * MiB, gt=0, description="files at least this big use the resumable upload (parts through the console)"
    )
    upstream_timeout_seconds: float = Field(600.0, gt=0, description="waiting for an API's answer")
    sse_heartbeat_seconds: float = Field(15.0, gt=0, description="comment lines that keep idle proxies open")
    sse_queue_size: int = Field(256, ge=8, description="events buffered per browser before it is disconnected")
    secure_cookies: bool | None = Field(
        None, description="mark the session cookie Secure; default: only when the request came over HTTPS"
    )

    def upstream(self, name: str) -> str:
        """Base URL of ``models``, ``datasets``, ``trainer``, ``webhooks`` or ``identity`` without a trailing slash."""
        return str(getattr(self, f"{name}_url")).rstrip("/")
