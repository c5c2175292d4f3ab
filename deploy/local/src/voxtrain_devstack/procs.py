"""Detached local processes with pid files and logs, and readiness waits that fail with the log tail."""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from .config import StateDir

TAIL_LINES = 30

# Popen objects of the processes this Python process started: kept so that an exit is noticed (and the
# child reaped) while we wait, and so that no "subprocess still running" warning fires on collection.
_children: dict[int, subprocess.Popen[bytes]] = {}


class StackError(RuntimeError):
    """A server or service could not be installed, started, stopped or reached.

    The message names what failed and what to do, and ends with the last lines of its log when there is one.
    """


def log_tail(path: Path, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file ('' when it does not exist)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            return b"\n".join(f.read().splitlines()[-lines:]).decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def with_log(message: str, log: Path | None) -> str:
    """``message`` followed by the tail of ``log``, for a :class:`StackError`."""
    if log is None:
        return message
    tail = log_tail(log)
    return f"{message}\nLast {TAIL_LINES} lines of {log}:\n{tail}" if tail else f"{message}\n({log} is empty)"


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie does not)."""
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
    except (FileNotFoundError, ProcessLookupError):
        return ""


def running_pid(state: StateDir, name: str, marker: str) -> int | None:
    """The pid in ``run/<name>.pid`` if that process still runs and its command line contains ``marker``.

    The marker (a path inside the state dir) tells our process from an unrelated one that reused the pid.
    """
    try:
        pid = int(state.pid_file(name).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if alive(pid) and marker in cmdline(pid) else None


def spawn(
    state: StateDir,
    name: str,
    cmd: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start ``cmd`` detached (own session, stdin closed, output appended to ``logs/<name>.log``).

    It outlives the caller; its pid is written to ``run/<name>.pid`` and returned.
    """
    state.create()
    log = state.log(name)
    with open(log, "ab") as out:
        out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} voxtrain-stack starts: {' '.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_more_open_files,
        )
    _children[proc.pid] = proc
    state.pid_file(name).write_text(f"{proc.pid}\n")
    return proc.pid


#: Kafka keeps several files open per partition, and every test namespace adds ~40 partitions: a long test run
#: passes 20,000 open files. Servers get this many when the machine allows it (root can raise the hard limit).
OPEN_FILES = 1 << 20


def _more_open_files() -> None:
    """In the child before exec: as many open files as allowed, up to :data:`OPEN_FILES`."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES, OPEN_FILES))
    except (ValueError, OSError):  # not privileged: the hard limit is the ceiling
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def terminate(pid: int, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
    """Send ``sig``; after ``timeout`` seconds without an exit, SIGKILL. Returns once ``pid`` is gone."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + 10
        time.sleep(0.1)
    _children.pop(pid, None)


def wait_until(
    check: Callable[[], bool],
    *,
    what: str,
    timeout: float,
    pid: int | None = None,
    log: Path | None = None,
) -> None:
    """Poll ``check`` until it returns True.

    Raises :class:`StackError` with the log tail when ``pid`` exits first or ``timeout`` seconds pass.
    """
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if pid is not None and not alive(pid):
            raise StackError(with_log(f"{what} exited before it was ready.", log))
        if time.monotonic() > deadline:
            raise StackError(with_log(f"{what} was not ready after {timeout:.0f} s.", log))
        time.sleep(0.25)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False
