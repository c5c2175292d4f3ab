"""Where a phase's CPU went: CPU seconds of every process tree the fleet runs on, read from ``/proc``.

A *tree* is a process and all its live descendants. Its CPU is the sum, over the processes alive at the time of
the sample, of their own user + system time and the time of the children they have already reaped. A child's
time moves into its parent's reaped-children time when it exits and is waited for, so the tree's total only grows
and nothing is counted twice: a training worker that ran and exited between two samples is in its trainer's
total, a PostgreSQL backend that disconnected is in the postmaster's.

Components: each service replica split into its own process ("parent": HTTP, consumers, outbox, loops) and its
descendants ("children": the trainer's training workers, the validator's and others' helper processes); Kafka,
PostgreSQL and MinIO (all their processes, whoever they serve: other users of the shared servers count too); the
benchmark process itself (its HTTP client and status-topic reader); and the machine's busy time, so that what
none of these account for ("other") is visible too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


@dataclass(frozen=True)
class Stat:
    pid: int
    ppid: int
    own: float  #: user + system seconds of the process itself
    reaped: float  #: user + system seconds of its children that exited and were waited for


def read_stat(pid: int) -> Stat | None:
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = text.rsplit(")", 1)[1].split()  # fields[0] is the state (field 3 of proc(5))
    ppid = int(fields[1])
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    return Stat(pid, ppid, (utime + stime) / TICK, (cutime + cstime) / TICK)


def snapshot() -> dict[int, Stat]:
    """Every process's stat now."""
    found: dict[int, Stat] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            s = read_stat(int(entry.name))
            if s is not None:
                found[s.pid] = s
    return found


def cmdline(pid: int) -> str:
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return ""


def descendants(stats: dict[int, Stat], root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for s in stats.values():
        children.setdefault(s.ppid, []).append(s.pid)
    found, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def split(stats: dict[int, Stat], root: int) -> tuple[float, float]:
    """(the root's own CPU, the CPU of all its descendants, live and reaped) in seconds."""
    top = stats.get(root)
    if top is None:
        return 0.0, 0.0
    below = top.reaped + sum(stats[p].own + stats[p].reaped for p in descendants(stats, root))
    return top.own, below


def servers(stats: dict[int, Stat]) -> dict[str, list[int]]:
    """The root processes of the Kafka, PostgreSQL and MinIO servers running on this machine (the shared ones)."""
    roots: dict[str, list[int]] = {"kafka": [], "postgresql": [], "minio": []}
    for pid in stats:
        line = cmdline(pid)
        if "kafka.Kafka" in line:
            roots["kafka"].append(pid)
        elif "minio" in line.split(" ", 1)[0] and " server " in line:
            roots["minio"].append(pid)
        elif line.split(" ", 1)[0].endswith("/postgres") and " -D " in line:
            roots["postgresql"].append(pid)  # the postmaster; its backends are its children
    return roots


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of all CPUs since boot, from /proc/stat."""
    values = [int(v) for v in (PROC / "stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values) - idle) / TICK, sum(values) / TICK


@dataclass(frozen=True)
class Account:
    """CPU seconds per component at one moment (cumulative since each process started)."""

    components: dict[str, float]
    busy: float
    total: float

    def minus(self, before: Account) -> Account:
        return Account(
            {k: v - before.components.get(k, 0.0) for k, v in self.components.items()},
            self.busy - before.busy,
            self.total - before.total,
        )


def account(replicas: dict[str, list[int]]) -> Account:
    """CPU per component: ``replicas`` maps ``<service>-<index>`` to its root pid (a list to allow none)."""
    stats = snapshot()
    comp: dict[str, float] = {}
    for name, pids in replicas.items():
        service = name.rsplit("-", 1)[0]
        for pid in pids:
            own, below = split(stats, pid)
            comp[f"{service} parent"] = comp.get(f"{service} parent", 0.0) + own
            comp[f"{service} children"] = comp.get(f"{service} children", 0.0) + below
    for server, pids in servers(stats).items():
        comp[server] = sum(sum(split(stats, p)) for p in pids)
    me = stats.get(os.getpid())
    comp["bench"] = me.own if me else 0.0
    busy, total = machine_busy()
    return Account(comp, busy, total)


def other(a: Account) -> float:
    """Busy CPU seconds of the machine that no component accounts for (other users of the machine, the kernel)."""
    return a.busy - sum(a.components.values())
