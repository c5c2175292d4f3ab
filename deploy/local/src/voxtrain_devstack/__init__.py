"""Real Kafka (KRaft), PostgreSQL and MinIO as local processes, for machines without a Docker engine.

Installed once into ``${XDG_CACHE_HOME:-~/.cache}/voxtrain`` (Kafka's jars from Maven Central, MinIO
built by ``go install``, PostgreSQL from Debian's packages); data, logs, pid files and generated secrets
live in a state dir (default ``<repo>/.voxtrain/stack``, or ``$VOXTRAIN_STACK_DIR``).

    from voxtrain_devstack import ensure_up
    endpoints = ensure_up()          # idempotent: reuses running servers
    env = endpoints.as_env()         # VOXTRAIN_KAFKA__BOOTSTRAP_SERVERS, VOXTRAIN_POSTGRES__DSN, ...

The command line is ``voxtrain-stack install|up|down|status|env|run-services``.
"""

from .config import Ports, StateDir, cache_dir, default_state_dir
from .install import Installed, install
from .procs import StackError
from .servers import Server
from .stack import Endpoints, ProcessStatus, dev_env, ensure_up, run_services, server, status, stop
from .versions import KAFKA_VERSION, MINIO_VERSION, POSTGRES_MAJOR

__all__ = [
    "KAFKA_VERSION",
    "MINIO_VERSION",
    "POSTGRES_MAJOR",
    "Endpoints",
    "Installed",
    "Ports",
    "ProcessStatus",
    "Server",
    "StackError",
    "StateDir",
    "cache_dir",
    "default_state_dir",
    "dev_env",
    "ensure_up",
    "install",
    "run_services",
    "server",
    "status",
    "stop",
]
