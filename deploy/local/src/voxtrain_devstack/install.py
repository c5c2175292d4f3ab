"""Install the servers once, cached per version under ``${XDG_CACHE_HOME:-~/.cache}/voxtrain``.

- Kafka: the broker's jars from Maven Central, collected by ``mvn dependency:copy-dependencies``.
- MinIO: built from source with ``go install`` (the community edition ships no binaries).
- PostgreSQL: the Debian server packages (``apt-get install postgresql``; ``make`` does it), found in
  ``/usr/lib/postgresql/<major>/bin`` or ``$VOXTRAIN_STACK_PG_BIN``.

An install writes into a temporary dir and moves it in place when complete, under a file lock, so an
interrupted or concurrent install never leaves a half-filled cache.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import versions
from .config import cache_dir
from .procs import StackError, with_log

DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.voxtrain</groupId><artifactId>kafka-local</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
{deps}
  </dependencies>
</project>
"""


@dataclasses.dataclass(frozen=True)
class Installed:
    """Where the installed servers are."""

    kafka_lib: Path  #: a dir of jars: ``java -cp '<kafka_lib>/*' kafka.Kafka``
    minio: Path  #: the ``minio`` binary
    postgres_bin: Path  #: dir with ``initdb``, ``postgres``, ``pg_isready``, ``psql``


def say(message: str) -> None:
    """Progress for people, on stderr (stdout is kept for ``voxtrain-stack env``)."""
    print(f"voxtrain-stack: {message}", file=sys.stderr, flush=True)


def kafka_lib_dir() -> Path:
    return cache_dir() / "kafka" / versions.KAFKA_VERSION / "lib"


def minio_binary() -> Path:
    return cache_dir() / "minio" / versions.MINIO_VERSION / "minio"


def postgres_bin_dir() -> Path:
    """The PostgreSQL server binaries, or a :class:`StackError` saying how to install them."""
    env = os.environ.get("VOXTRAIN_STACK_PG_BIN")
    bin_dir = Path(env) if env else Path(f"/usr/lib/postgresql/{versions.POSTGRES_MAJOR}/bin")
    if not (bin_dir / "initdb").is_file() or not (bin_dir / "postgres").is_file():
        raise StackError(
            f"PostgreSQL {versions.POSTGRES_MAJOR} server binaries not found in {bin_dir}.\n"
            f"Install them with `apt-get install -y postgresql-{versions.POSTGRES_MAJOR}` (make test / make run "
            f"do it), or point VOXTRAIN_STACK_PG_BIN at a PostgreSQL {versions.POSTGRES_MAJOR} bin dir."
        )
    return bin_dir


def _tool(name: str, hint: str) -> str:
    """The path of a build tool, looked up on PATH and then where its installer usually puts it."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/go/bin"])
    path = shutil.which(name, path=search)
    if path is None:
        raise StackError(f"`{name}` is needed to install the local stack and is not on PATH. {hint}")
    return path


@contextlib.contextmanager
def _cache_lock(folder: Path) -> Iterator[None]:
    """Create ``folder`` and hold an exclusive lock on it: one installer at a time per version."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".install.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _run(cmd: list[str], *, what: str, log: Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
    with open(log, "wb") as out:
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    if done.returncode != 0:
        raise StackError(with_log(f"{what} failed (exit {done.returncode}): {' '.join(cmd)}", log))


def install_kafka() -> Path:
    """Kafka's runtime jars plus an SLF4J binding; returns the lib dir (cached per Kafka version)."""
    lib = kafka_lib_dir()
    complete = lib.parent / ".complete"
    if complete.exists():
        return lib
    with _cache_lock(lib.parent):
        if complete.exists():
            return lib
        _tool("java", "Install Java 17+ (apt-get install -y openjdk-17-jre-headless).")
        mvn = _tool("mvn", "Install Maven (apt-get install -y maven).")
        say(f"installing Kafka {versions.KAFKA_VERSION} from Maven Central into {lib.parent} (once)")
        deps = "\n".join(
            f"    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId><version>{v}</version></dependency>"
            for g, a, v in (
                (*versions.KAFKA_ARTIFACT.split(":"), versions.KAFKA_VERSION),
                tuple(versions.SLF4J_SIMPLE.split(":")),
            )
        )
        with tempfile.TemporaryDirectory(dir=lib.parent, prefix=".tmp-") as tmp:
            work = Path(tmp)
            (work / "pom.xml").write_text(_POM.format(deps=deps))
            _run(
                [
                    mvn,
                    "-q",
                    "-B",
                    "--no-transfer-progress",
                    f"{DEPENDENCY_PLUGIN}:copy-dependencies",
                    "-DincludeScope=runtime",
                    f"-DoutputDirectory={work / 'lib'}",
                ],
                what="Downloading Kafka's jars with Maven",
                log=lib.parent / "install.log",
                cwd=work,
            )
            shutil.rmtree(lib, ignore_errors=True)
            os.replace(work / "lib", lib)
        complete.touch()
    return lib


def install_minio() -> Path:
    """The MinIO server built by ``go install`` at the pinned version; returns the binary's path."""
    binary = minio_binary()
    if binary.is_file():
        return binary
    with _cache_lock(binary.parent):
        if binary.is_file():
            return binary
        go = _tool("go", "Install Go 1.24 or newer (https://go.dev/doc/install); Debian's golang-go is too old.")
        say(f"building MinIO {versions.MINIO_VERSION} with `go install` into {binary.parent} (once, a few minutes)")
        with tempfile.TemporaryDirectory(dir=binary.parent, prefix=".tmp-") as tmp:
            env = {**os.environ, "GOBIN": tmp, "CGO_ENABLED": "0"}
            _run(
                [go, "install", f"{versions.MINIO_MODULE}@{versions.MINIO_VERSION}"],
                what="Building MinIO",
                log=binary.parent / "install.log",
                env=env,
            )
            os.replace(Path(tmp) / "minio", binary)
    return binary


def install() -> Installed:
    """Install whatever is missing (Kafka and MinIO in parallel); a no-op when everything is cached."""
    pg = postgres_bin_dir()  # checked first: it is the one a person may have to install by hand
    with ThreadPoolExecutor(max_workers=2) as pool:
        kafka, minio = pool.submit(install_kafka), pool.submit(install_minio)
        return Installed(kafka_lib=kafka.result(), minio=minio.result(), postgres_bin=pg)
