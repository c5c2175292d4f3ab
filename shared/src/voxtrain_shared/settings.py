"""Settings: one class per service, composed of Kafka / PostgreSQL / MinIO / auth / HTTP sections.

Read from the environment only (prefix ``VOXTRAIN_``, sections split by ``__``, e.g.
``VOXTRAIN_POSTGRES__DSN``), validated at start-up. :func:`load` turns a validation error into
one readable message naming the variables to set; nothing else in the code reads ``os.environ``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, Field, NonNegativeInt, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .topics import DEFAULT_NAMESPACE, Topics

ENV_PREFIX = "VOXTRAIN_"
NESTED = "__"


class Environment(StrEnum):
    LOCAL = "local"
    TEST = "test"
    PRODUCTION = "production"


class KafkaSettings(BaseModel):
    bootstrap_servers: str = "127.0.0.1:19092"
    topic_namespace: str = DEFAULT_NAMESPACE
    max_retries: int = Field(3, ge=0, le=20, description="retries of an unknown handler error before dead-lettering")
    retry_max_seconds: float = Field(30.0, gt=0, description="longest wait between retries while a dependency is away")
    topic_partitions: int = Field(
        3, ge=1, le=1000, description="partitions of the topics a service creates (more: more replicas share the work)"
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="SASL_SSL in production: SCRAM passwords over TLS (docs/operations.md)"
    )
    sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256"] = "SCRAM-SHA-512"
    sasl_username: str = Field("", description="this service's own SCRAM user (SASL_* protocols)")
    sasl_password: SecretStr = SecretStr("")
    ssl_ca_file: str | None = Field(
        None, description="PEM file of the CA that signed the brokers' certificates (SSL, SASL_SSL); else system CAs"
    )

    @model_validator(mode="after")
    def _sasl_needs_a_user(self) -> KafkaSettings:
        if self.security_protocol.startswith("SASL_") and not (
            self.sasl_username and self.sasl_password.get_secret_value()
        ):
            raise ValueError(
                f"security_protocol {self.security_protocol} needs VOXTRAIN_KAFKA__SASL_USERNAME and "
                "VOXTRAIN_KAFKA__SASL_PASSWORD (this service's SCRAM user)"
            )
        return self

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_namespace)


class PostgresSettings(BaseModel):
    dsn: SecretStr = Field(description="postgresql://user:password@host:port/db")
    schema_name: str = Field("", alias="schema", description="defaults to the service name")
    pool_min: int = 1
    pool_max: int = 10
    command_timeout: float = Field(30.0, gt=0, description="seconds one statement may run")
    acquire_timeout: float = Field(10.0, gt=0, description="seconds to wait for a pooled connection")
    connect_timeout: float = Field(10.0, gt=0, description="seconds to open a connection")

    model_config = {"populate_by_name": True}

    @field_validator("schema_name")
    @classmethod
    def _identifier(cls, v: str) -> str:
        if v and not v.replace("_", "").isalnum():
            raise ValueError("schema must be letters, digits and underscores")
        return v.lower()


class MinioSettings(BaseModel):
    endpoint: str = "127.0.0.1:19000"
    access_key: SecretStr
    secret_key: SecretStr
    secure: bool = False
    region: str = "us-east-1"
    bucket: str = "voxtrain"
    public_endpoint: str | None = Field(None, description="host:port clients use for presigned URLs, when it differs")


class AuthSettings(BaseModel):
    """Token verification (every process) and signing (issuers only: identity service, ``voxtrain`` CLI)."""

    public_key: str = Field(
        description="Ed25519 public key(s) that verify tokens: base64 (32 bytes) or PEM; several (comma-separated) "
        "while the signing key is rotated"
    )
    private_key: SecretStr | None = Field(
        None, description="Ed25519 signing key (base64 or PEM): only where tokens are issued (identity, operator CLI)"
    )
    issuer: str = "voxtrain"
    audience: str = "voxtrain-api"
    token_ttl_seconds: int = Field(30 * 24 * 3600, gt=0, description="lifetime of `voxtrain token` tokens")

    @model_validator(mode="after")
    def _keys_are_ed25519(self) -> AuthSettings:
        from .auth import load_public_keys, public_key_of

        keys = load_public_keys(self.public_key)
        if self.private_key is not None:
            own = load_public_keys(public_key_of(self.private_key.get_secret_value()))
            if not own.keys() & keys.keys():
                raise ValueError("VOXTRAIN_AUTH__PUBLIC_KEY does not hold the public key of VOXTRAIN_AUTH__PRIVATE_KEY")
        return self


class HttpSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8000
    #: largest JSON request body (files go to the streamed upload routes, which have their own limits)
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)


class BaseServiceSettings(BaseSettings):
    """Sections every process has (the console too, which keeps no database)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter=NESTED, extra="ignore", frozen=True)
    service_name: str = "voxtrain"
    environment: Environment = Environment.LOCAL
    log_level: str = "INFO"
    kafka: KafkaSettings = KafkaSettings()
    auth: AuthSettings
    http: HttpSettings = HttpSettings()

    @model_validator(mode="after")
    def _no_signing_key_unless_issuer(self) -> BaseServiceSettings:
        if self.auth.private_key is not None and not self.issues_tokens:
            raise ValueError(
                f"VOXTRAIN_AUTH__PRIVATE_KEY must not be given to {self.service_name}: only the identity service "
                "signs tokens (services verify with VOXTRAIN_AUTH__PUBLIC_KEY)"
            )
        return self

    #: True only for the service that signs tokens (identity); the others refuse a private key.
    issues_tokens: ClassVar[bool] = False


class ServiceSettings(BaseServiceSettings):
    """Sections every service with its own PostgreSQL schema has."""

    postgres: PostgresSettings

    @model_validator(mode="after")
    def _schema_defaults_to_service(self) -> ServiceSettings:
        if not self.postgres.schema_name:
            object.__setattr__(self.postgres, "schema_name", self.service_name)
        return self


class SupervisionSettings(BaseModel):
    """Deadlines of models at 2 and 3 (see voxtrain_models.domain.Supervision)."""

    every_seconds: float = Field(15.0, gt=0, description="how often overdue models are looked for")
    validation_seconds: float = Field(
        900.0, gt=0, description="at 2: time without a verdict (or upload) before validation is requested again"
    )
    start_seconds: float = Field(
        3600.0, gt=0, description="at 2 with training requested: time without TrainingStarted before asking again"
    )
    heartbeat_seconds: float = Field(
        900.0, gt=0, description="at 3: time without progress from the trainer before asking again"
    )
    max_redrives: int = Field(
        3, ge=0, description="requests sent again before the model fails (validation_timeout at 2, worker_lost at 3)"
    )


class CreditsSettings(BaseModel):
    """What training costs and what a new tenant gets (see voxtrain_models.credits)."""

    free_allowance: int = Field(
        10_000, ge=0, description="credits granted once to each tenant, the first time voxtrain sees it"
    )
    per_audio_minute: float = Field(1.0, ge=0, description="credits per minute of audio a training uses")
    per_thousand_words: float = Field(1.0, ge=0, description="credits per 1,000 words of text a training uses")
    minimum: int = Field(1, ge=0, description="the least a training costs")


class ModelsSettings(ServiceSettings):
    service_name: str = "models"
    http: HttpSettings = HttpSettings(port=8101)
    supervision: SupervisionSettings = SupervisionSettings()
    credits: CreditsSettings = CreditsSettings()


class UploadQuotaSettings(BaseModel):
    """What one tenant may have in progress at once, and what one datasets replica buffers for all uploads."""

    max_concurrent_per_tenant: int = Field(
        4, ge=1, description="streamed (form) uploads of one tenant in progress at once, across all replicas"
    )
    max_sessions_per_tenant: int = Field(
        20, ge=1, description="open resumable upload sessions of one tenant (not completed, not expired)"
    )
    slot_lease_seconds: float = Field(
        60.0,
        gt=0,
        description="a streamed upload's slot is renewed every third of this; a dead replica's slots lapse after it",
    )
    memory_budget_bytes: int = Field(
        512 * 1024**2,
        gt=0,
        description="upload buffers of one replica, all requests together (parts wait for room; at least 2 parts)",
    )
    memory_budget_wait_seconds: float = Field(
        30.0, gt=0, description="an upload waiting this long for room in the memory budget is refused (503 server_busy)"
    )


class DatasetsSettings(ServiceSettings):
    service_name: str = "datasets"
    http: HttpSettings = HttpSettings(port=8102)
    minio: MinioSettings
    max_file_bytes: int = Field(10 * 1024**3, gt=0, description="per-file upload limit")
    max_files: int = Field(10, ge=1)
    part_size_bytes: int = Field(16 * 1024**2, ge=5 * 1024**2)
    upload_session_ttl_seconds: int = Field(24 * 3600, gt=0)
    presign_ttl_seconds: int = Field(3600, gt=0)
    unknown_model_grace_seconds: float = Field(
        10.0, ge=0, description="how long an upload waits for a just-created model's ModelCreated to arrive"
    )
    uploads: UploadQuotaSettings = UploadQuotaSettings()


class ValidatorSettings(ServiceSettings):
    service_name: str = "validator"
    http: HttpSettings = HttpSettings(port=8103)
    minio: MinioSettings
    concurrency: int = Field(2, ge=1)
    check_memory_mb: int = Field(
        1280,
        ge=16,
        description="MiB the concurrent checks of one replica may hold for what grows with a file (an M4A's index, "
        "~80 B a packet, which FFmpeg holds whole): a check waits until its file fits next to the others; a file "
        "that alone needs more is refused with invalid_audio_format. With the ~150 MiB each check and the service "
        "use besides, the default fits the validator pod's 2 GiB limit",
    )
    max_attempts: int = Field(
        6,
        ge=1,
        description="claims of a job that may end without a verdict (storage "
        "unreachable, worker lost, check crashed) before its dataset fails with "
        "validation_failed",
    )
    retry_base_seconds: float = Field(2.0, gt=0, description="first retry delay; doubles per attempt")
    retry_max_seconds: float = Field(300.0, gt=0, description="longest retry delay")
    lease_seconds: float = Field(
        120.0,
        gt=0,
        description="a job's lease, renewed every quarter of it while the "
        "job runs; a worker that dies frees its job after this",
    )


class TrainerSettings(ServiceSettings):
    service_name: str = "trainer"
    http: HttpSettings = HttpSettings(port=8104)
    minio: MinioSettings
    parallel_trainings: int = Field(1, ge=1)
    time_limit_seconds: int = Field(4 * 3600, gt=0)
    heartbeat_seconds: float = Field(5.0, gt=0)
    lease_seconds: float = Field(60.0, gt=0)
    ngram_order: int = Field(3, ge=1, le=6)
    work_dir: str = "/tmp/voxtrain-trainer"
    max_attempts: int = Field(
        3,
        ge=1,
        description="a run whose worker died or whose storage was briefly away is "
        "started this many times in all before it fails (worker_lost)",
    )
    retry_backoff_seconds: float = Field(5.0, ge=0, description="wait before the 2nd attempt; doubles per attempt")
    retry_backoff_max_seconds: float = Field(300.0, ge=0)
    model_cache_bytes: int = Field(2 * 2**30, gt=0, description="disk held by trained models fetched for serving (LRU)")
    transcription_max_seconds: float = Field(1800.0, gt=0, description="longer audio is refused up front")
    transcription_max_bytes: int = Field(512 * 2**20, gt=0, description="larger request bodies are refused unread")
    transcription_async_max_seconds: float = Field(
        6 * 3600.0, gt=0, description="longest audio a ?mode=async transcription job accepts"
    )
    transcription_async_max_bytes: int = Field(
        4 * 2**30, gt=0, description="largest ?mode=async request body (streamed to disk and object storage)"
    )
    parallel_transcriptions: int = Field(
        1, ge=1, description="transcription jobs decoded at once per replica (apart from parallel_trainings)"
    )
    parallel_sync_transcriptions: int = Field(
        1,
        ge=1,
        description="synchronous transcriptions decoded at once per replica, each in a child process (more wait)",
    )
    transcription_busy_wait_seconds: float = Field(
        20.0, gt=0, description="a synchronous transcription waits this long for a free decoder, then gets 503"
    )
    transcription_upload_grace_seconds: float = Field(
        3600.0, gt=0, description="an async upload not recorded as a job by then is abandoned and removed"
    )
    transcription_retention_seconds: float = Field(
        7 * 86400.0, gt=0, description="a finished transcription job (its result) is kept this long, then deleted"
    )
    transcription_sweep_seconds: float = Field(300.0, gt=0, description="how often abandoned uploads are swept")
    worker_memory_mb: int = Field(
        2048,
        ge=768,
        description="memory budget (MB) of a training worker process, the whole run: the LM estimator gets it less"
        " 512 MB and the model is pruned to what PocketSphinx's binary conversion holds in it",
    )
    # language-model estimation: the estimator's share of the worker's budget (unset: the budget less 512 MB);
    # model size cap (n-grams, unset: from the budget); vocabulary cap and count-pruning thresholds (one per
    # order, JSON list); unset: chosen by corpus size
    lm_memory_mb: int | None = Field(None, ge=256)
    lm_max_ngrams: int | None = Field(None, ge=1)
    lm_spill_limit_mb: int = Field(
        32768, ge=64, description="disk the LM estimator may spill to; beyond it the run fails lm_spill_limit_exceeded"
    )
    work_disk_mb: int | None = Field(
        None,
        ge=1024,
        description="disk (MB) a training may use in work_dir: its downloads, the LM estimator's spill and the model;"
        " a run whose datasets alone need more fails inputs_too_large before downloading; unset: the free space there",
    )
    lm_max_vocabulary: int | None = Field(None, ge=1)
    lm_prune_thresholds: tuple[NonNegativeInt, ...] | None = None

    @model_validator(mode="after")
    def _lm_settings_agree(self) -> TrainerSettings:
        if self.lm_prune_thresholds is not None and len(self.lm_prune_thresholds) != self.ngram_order:
            raise ValueError(f"lm_prune_thresholds needs one count per order ({self.ngram_order})")
        if self.lm_memory_mb is not None and self.lm_memory_mb > self.worker_memory_mb:
            raise ValueError("lm_memory_mb (the LM estimator's share) cannot exceed worker_memory_mb")
        return self


class WebhooksSettings(ServiceSettings):
    service_name: str = "webhooks"
    http: HttpSettings = HttpSettings(port=8105)
    allow_insecure_urls: bool = Field(
        False, description="also accept http:// endpoints on loopback addresses (development and tests only)"
    )
    retry_for_seconds: float = Field(24 * 3600, gt=0, description="how long a delivery is retried before it fails")
    first_retry_seconds: float = Field(10.0, gt=0, description="first retry delay; doubles per attempt")
    max_retry_seconds: float = Field(3600.0, gt=0, description="the longest wait between two attempts")
    timeout_seconds: float = Field(10.0, gt=0, description="per delivery attempt")
    concurrency: int = Field(4, ge=1, description="deliveries sent at once by one replica")
    max_endpoints_per_tenant: int = Field(10, ge=1)


class IdentitySettings(ServiceSettings):
    """The identity service: tenants' API keys, exchanged for short-lived tokens it signs."""

    issues_tokens: ClassVar[bool] = True
    service_name: str = "identity"
    http: HttpSettings = HttpSettings(port=8106)
    key_token_ttl_seconds: int = Field(
        60,
        ge=5,
        le=60,
        description="lifetime of a token exchanged for an API key: a revoked key stops working everywhere within it",
    )
    max_keys_per_tenant: int = Field(50, ge=1)

    @model_validator(mode="after")
    def _issuer_has_the_signing_key(self) -> IdentitySettings:
        if self.auth.private_key is None:
            raise ValueError("the identity service signs tokens: set VOXTRAIN_AUTH__PRIVATE_KEY")
        return self


S = TypeVar("S", bound=BaseServiceSettings)


class SettingsError(SystemExit):
    """Start-up refused because of the configuration (message says what to fix)."""


def load(cls: type[S], **overrides: Any) -> S:
    """Build and validate settings, or exit with a message naming the variables to fix."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        lines = [f"{cls.__name__}: invalid configuration"]
        for err in exc.errors():
            var = ENV_PREFIX + NESTED.join(str(p) for p in err["loc"]).upper()
            section = cls.model_fields.get(str(err["loc"][0])) if len(err["loc"]) == 1 else None
            ann = section.annotation if section else None
            if err["type"] == "missing" and isinstance(ann, type) and issubclass(ann, BaseModel):
                required = [k.upper() for k, f in ann.model_fields.items() if f.is_required()]
                var = ", ".join(f"{var}{NESTED}{k}" for k in required)
            lines.append(f"  {var}: {err['msg']}")
        raise SettingsError("\n".join(lines)) from None


def env_var_names(cls: type[BaseServiceSettings]) -> set[str]:
    """Every environment variable a settings class reads."""
    names: set[str] = set()
    for name, field in cls.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            for sub_name, sub in ann.model_fields.items():
                key = sub.alias or sub_name
                names.add(f"{ENV_PREFIX}{name}{NESTED}{key}".upper())
        else:
            names.add(f"{ENV_PREFIX}{name}".upper())
    return names
