"""A short fault-injection run in the test suite (each component killed once), so CI keeps the harness honest.

The long run is ``make chaos ROUNDS=50``. This one starts its own servers and services (state dir
``.voxtrain/chaos-test``, ports shifted by 4000 more than the test stack's ``VOXTRAIN_STACK_PORT_OFFSET``, so it
never meets a stack of its own) and judges from the public APIs and the status topic only.
"""

import os
from pathlib import Path

import pytest

from tests.chaos.processes import COMPONENTS
from tests.chaos.runner import Options, run

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(1200)
async def test_every_model_ends_at_4_or_5_whatever_is_killed() -> None:
    report = await run(
        Options(
            rounds=len(COMPONENTS),
            models_per_round=1,
            replica_rounds=1,
            round_timeout=240,
            budget=420,
            state_dir=REPO / ".voxtrain" / "chaos-test",
            port_offset=4000 + int(os.environ.get("VOXTRAIN_STACK_PORT_OFFSET", "0")),
            poison=True,
        )
    )
    print(report.render())
    assert {log.component for log in report.rounds} == set(COMPONENTS)
    assert all(log.killed for log in report.rounds), [(log.component, log.killed) for log in report.rounds]
    assert not report.failed, report.render()
