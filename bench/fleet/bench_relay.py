"""What the outbox relay costs per event: CPU of the relaying process and of PostgreSQL, one event per transaction.

Every service emits its events through its outbox; each committed event NOTIFYs every replica's relay, which
publishes it. This writes ``--events`` events, one per transaction (as the services' handlers do), on a fresh
schema, with 0, 1 and 2 relays running in this process (publishing to a sink that takes each event at once, so
Kafka's share is not counted), and prints the CPU seconds per event of this process and of all PostgreSQL
processes. The 0-relay run is the baseline (writing the events alone); the difference is the relays'.

    uv run python -m bench.fleet.bench_relay            # the servers from VOXTRAIN_TEST_* or the dev stack

PostgreSQL's figure counts all its clients: on a shared server, other users' queries land in it too.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

import asyncpg

from bench.fleet import cpu
from bench.fleet.bench_fleet import endpoints
from voxtrain_shared import events as ev
from voxtrain_shared import outbox
from voxtrain_shared.db import connector, create_pool, migrate
from voxtrain_shared.topics import Topics


class Sink:
    """A publisher that takes every event at once (the relay's own cost, without Kafka's)."""

    def __init__(self) -> None:
        self.published = 0

    async def publish(self, topic: str, value: bytes, key: bytes | None, headers: dict[str, str]) -> None:
        self.published += 1


class Counted:
    """The relays' connector, counting the statements they send to PostgreSQL (asyncpg's query logger)."""

    def __init__(self, dsn: str, schema: str) -> None:
        self._connect, self.statements = connector(dsn, schema, role="bench"), 0

    async def __call__(self) -> asyncpg.Connection:
        conn = await self._connect()
        conn.add_query_logger(self._count)
        return conn

    def _count(self, _: object) -> None:
        self.statements += 1


def postgres_cpu() -> float:
    stats = cpu.snapshot()
    return sum(sum(cpu.split(stats, p)) for p in cpu.servers(stats)["postgresql"])


async def one(dsn: str, relays: int, events: int, gap: float) -> tuple[float, float, float]:
    """(this process's, PostgreSQL's) CPU milliseconds and the relays' statements per event with ``relays``
    relays running."""
    schema = f"relaybench_{uuid.uuid4().hex[:8]}"
    pool = await create_pool(dsn, schema)
    try:
        async with pool.acquire() as conn:
            await migrate(conn, schema, None)
        sink, stop, counted = Sink(), asyncio.Event(), Counted(dsn, schema)
        running = [asyncio.create_task(outbox.OutboxRelay(counted, schema, sink).run(stop)) for _ in range(relays)]
        await asyncio.sleep(1.0)  # connected and listening
        topics = Topics("relaybench")
        envs = [
            ev.wrap(ev.ModelCreated(name="n", language="en-US"), tenant_id="bench", model_id=uuid.uuid4())
            for _ in range(events)
        ]
        own, pg, sent = time.process_time(), postgres_cpu(), counted.statements
        for env in envs:
            async with pool.acquire() as conn, conn.transaction():
                await outbox.add(conn, schema, topics, env)
            await asyncio.sleep(gap)  # each event its own wake, as when a handler commits one at a time
        while relays and sink.published < events:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.5)
        own, pg, sent = time.process_time() - own, postgres_cpu() - pg, counted.statements - sent
        stop.set()
        await asyncio.gather(*running)
        async with pool.acquire() as conn:
            await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        return 1000 * own / events, 1000 * pg / events, sent / events
    finally:
        await pool.close()


async def run(events: int, rounds: int, gap: float) -> None:
    dsn = endpoints().postgres_dsn
    results: dict[int, list[tuple[float, float, float]]] = {0: [], 1: [], 2: []}
    for _ in range(rounds):
        for relays in results:
            results[relays].append(await one(dsn, relays, events, gap))
    base_own = min(r[0] for r in results[0])
    base_pg = min(r[1] for r in results[0])
    for relays, got in results.items():
        own, pg, sent = (min(r[i] for r in got) for i in range(3))
        extra = (
            ""
            if not relays
            else f" → the relays: {own - base_own:.2f} + {pg - base_pg:.2f} ms and {sent:.1f} statements per event"
        )
        print(f"{relays} relays: this process {own:.2f} ms, PostgreSQL {pg:.2f} ms per event (best of {rounds}){extra}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--gap", type=float, default=0.02, help="seconds between two events' transactions")
    args = parser.parse_args()
    asyncio.run(run(args.events, args.rounds, args.gap))


if __name__ == "__main__":
    main()
