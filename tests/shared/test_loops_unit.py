"""The loop driver: a step failing while a dependency is away is retried, reported, and cleared when it works."""

from __future__ import annotations

import asyncio

import asyncpg

from voxtrain_shared.health import Health
from voxtrain_shared.loops import Loop


async def test_a_loop_reports_a_missing_dependency_until_its_step_works_again() -> None:
    health, stop = Health(), asyncio.Event()
    calls: list[int] = []
    seen: list[list[str]] = []

    async def step() -> None:
        calls.append(1)
        seen.append(health.missing())
        if len(calls) <= 2:
            raise asyncpg.exceptions.CannotConnectNowError("the database system is starting up")
        if len(calls) == 3:
            raise RuntimeError("a bug: logged, not a dependency")
        stop.set()

    await asyncio.wait_for(Loop("sweeper", step, every=0.01, health=health).run(stop), 10)
    assert len(calls) == 4
    assert seen == [[], ["postgres"], ["postgres"], ["postgres"]]
    assert health.missing() == []  # cleared by the successful step


async def test_a_successful_step_clears_what_a_failed_one_reported() -> None:
    health, stop = Health(), asyncio.Event()
    outcomes = [ConnectionRefusedError("refused"), None, None]

    async def step() -> None:
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome
        if not outcomes:
            stop.set()

    await asyncio.wait_for(Loop("gauge", step, every=0.01, health=health).run(stop), 10)
    assert health.problems() == {}


def test_a_blocked_report_lapses_when_it_is_not_renewed() -> None:
    now = [1000.0]
    health = Health(clock=lambda: now[0])
    health.blocked("consumer g", "postgres", "refused", ttl=60)
    now[0] += 59
    assert health.missing() == ["postgres"]
    health.blocked("consumer g", "postgres", "refused", ttl=60)  # renewed by the next failed attempt
    now[0] += 59
    assert "for 118 s" in health.problems()["consumer g"]
    now[0] += 2  # e.g. its partition moved to another replica: nothing renews it any more
    assert health.problems() == {} and health.missing() == []
