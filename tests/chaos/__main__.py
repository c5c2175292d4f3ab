"""``python -m tests.chaos [--rounds N]``: the fault-injection suite (``make chaos ROUNDS=50``)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from .processes import COMPONENTS
from .runner import Options, run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    p.add_argument(
        "--rounds",
        type=int,
        default=len(COMPONENTS),
        help=f"rounds with one replica per service; components take turns ({', '.join(COMPONENTS)})",
    )
    p.add_argument(
        "--replica-rounds",
        type=int,
        default=None,
        help="rounds with two replicas of every service, after the others (default: one per component)",
    )
    p.add_argument("--models", type=int, default=2, help="models driven per round")
    p.add_argument("--round-timeout", type=float, default=300.0, help="seconds a round's models have to end at 4/5")
    p.add_argument("--state-dir", type=Path, default=None, help="default: <repo>/.voxtrain/chaos")
    p.add_argument("--port-offset", type=int, default=3000, help="added to every default port of the stack")
    p.add_argument("--no-poison", action="store_true", help="skip the poison-message case")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--keep-servers", action="store_true", help="leave Kafka, PostgreSQL and MinIO running")
    a = p.parse_args(argv)
    # the observers' Kafka client complains loudly while the broker is killed; that is the point of the run
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    opts = Options(
        rounds=a.rounds,
        models_per_round=a.models,
        round_timeout=a.round_timeout,
        replica_rounds=len(COMPONENTS) if a.replica_rounds is None else a.replica_rounds,
        state_dir=a.state_dir,
        port_offset=a.port_offset,
        poison=not a.no_poison,
        seed=a.seed,
        keep_servers=a.keep_servers,
    )
    report = asyncio.run(run(opts))
    print(report.render(), flush=True)
    if report.failed:
        print("\nchaos: FAILED (stuck, duplicated, lost, dead-lettered or badly answered; see above)", flush=True)
        return 1
    print("\nchaos: passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
