"""The rounds: drive models while one component is killed and restarted; then the poison message; then judge."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from voxtrain_devstack import Ports, StateDir
from voxtrain_devstack import stop as stop_stack
from voxtrain_shared import events as ev
from voxtrain_shared.auth import issue_token
from voxtrain_shared.topics import Topics, dead_letter

from .flow import Api, ModelRun, drive, make_files
from .observe import Collector, Row, Verdict, dead_letter_pattern, group_by_label, judge, table
from .processes import COMPONENTS, GIVE_UP_SECONDS, ChaosStack

POISON = b"[" * 100_000
#: a round lasts at least this long: a model nobody answers has been failed by supervision by then
MIN_ROUND_SECONDS = GIVE_UP_SECONDS + 60.0


def say(message: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass
class Options:
    rounds: int = len(COMPONENTS)
    models_per_round: int = 2
    replica_rounds: int = len(COMPONENTS)  #: rounds with two replicas of every service, after the others
    round_timeout: float = 300.0
    state_dir: Path | None = None
    port_offset: int = 3000
    poison: bool = True
    seed: int | None = None
    keep_servers: bool = False  #: leave the stack's Kafka, PostgreSQL and MinIO running at the end
    #: seconds for all rounds together (None: no limit): each round then gets its share of what is left,
    #: at least ``MIN_ROUND_SECONDS``, so a broken stack cannot make a run last rounds x round_timeout
    budget: float | None = None


@dataclass
class RoundLog:
    label: str
    component: str
    started_ms: int
    ended_ms: int = 0
    killed: str | None = None
    kill_after: float = 0.0
    down_for: float = 0.0
    runs: list[ModelRun] = field(default_factory=list)


@dataclass
class PoisonResult:
    dead_lettered_after: float | None
    cpu_percent: float
    later_command_ok: bool

    @property
    def ok(self) -> bool:
        return self.dead_lettered_after is not None and self.cpu_percent < 20.0 and self.later_command_ok

    def describe(self) -> str:
        dl = (
            f"dead-lettered after {self.dead_lettered_after:.1f} s"
            if self.dead_lettered_after is not None
            else "NOT dead-lettered within 30 s"
        )
        return (
            f"poison message on models.commands: {dl}; models CPU over the next 10 s {self.cpu_percent:.0f}%; "
            f"a later command on the same partition {'was' if self.later_command_ok else 'was NOT'} carried out"
        )


@dataclass
class Report:
    rows: list[Row]
    rounds: list[RoundLog]
    verdicts: list[tuple[str, Verdict]]
    poison: PoisonResult | None

    @property
    def failed(self) -> bool:
        return any(r.failed for r in self.rows) or (self.poison is not None and not self.poison.ok)

    def render(self) -> str:
        lines = [table(self.rows)]
        if self.poison is not None:
            lines.append("\n" + self.poison.describe())
        bad = [
            (label, v)
            for label, v in self.verdicts
            if v.stuck or v.duplicated or v.gaps or v.lost or v.bad_uploads or (v.run.status == 5)
        ]
        if bad:
            lines.append("\nModels that did not simply end at 4:")
            for label, v in bad:
                lines.append(
                    f"  [{label}] {v.run.name} {v.run.id}: {v.ended}; transitions {v.transitions}"
                    + (f"; {'; '.join(v.bad_uploads)}" if v.bad_uploads else "")
                    + (f"; {'; '.join(v.run.notes)}" if v.run.notes else "")
                    + (
                        f"; error: {(v.run.final or {}).get('last_error', {}).get('message')}"
                        if v.run.status == 5
                        else ""
                    )
                )
        return "\n".join(lines)


async def _fault(stack: ChaosStack, log: RoundLog, within: float, stop: asyncio.Event) -> None:
    """Kill ``log.component`` at a random moment of the flow, restart it after 2-10 s."""
    t0 = time.monotonic()
    if log.component == "trainer-worker":  # wait for a training, then kill it at a random moment of it
        while not stop.is_set() and not stack.training_workers():
            await asyncio.sleep(0.2)
        await asyncio.sleep(random.uniform(0.0, 3.0))
        log.killed = stack.kill("trainer-worker")
        log.kill_after = time.monotonic() - t0
        return
    log.kill_after = random.uniform(0.5, within)
    await asyncio.sleep(log.kill_after)
    log.killed = stack.kill(log.component)
    log.down_for = random.uniform(2.0, 10.0)
    await asyncio.sleep(log.down_for)
    await stack.restart(log.component)


async def _round(
    stack: ChaosStack, label: str, component: str, opts: Options, files: list[Any], flow_seconds: float, timeout: float
) -> RoundLog:
    log = RoundLog(label, component, int(time.time() * 1000))
    api = Api({s: stack.urls(s) for s in ("models", "datasets")}, stack.signing_auth, "chaos")
    stop = asyncio.Event()
    deadline = time.monotonic() + timeout
    fault = asyncio.create_task(_fault(stack, log, flow_seconds, stop))
    try:
        log.runs = list(
            await asyncio.gather(
                *(
                    drive(api, f"{component}-{uuid.uuid4().hex[:8]}", files, deadline)
                    for _ in range(opts.models_per_round)
                )
            )
        )
    finally:
        stop.set()
        try:
            await asyncio.wait_for(fault, timeout=240)
        except TimeoutError:
            say(f"{label}: restarting {component} did not finish in time")
        await api.close()
        down = await stack.heal()
        if down:
            say(f"{label}: found down and restarted: {', '.join(down)}")
    log.ended_ms = int(time.time() * 1000)
    ends = ", ".join(f"{r.status}{' ' + r.error_code if r.error_code else ''}" for r in log.runs)
    say(
        f"{label}: killed {log.killed or 'nothing'} after {log.kill_after:.1f} s for {log.down_for:.1f} s; "
        f"models ended {ends}"
    )
    return log


async def _poison(stack: ChaosStack, topics: Topics, dlt: Collector) -> PoisonResult:
    assert stack.endpoints is not None
    producer = AIOKafkaProducer(bootstrap_servers=stack.endpoints.kafka_bootstrap, max_request_size=2_000_000)
    await producer.start()
    target = dead_letter(topics.model_commands)
    try:
        t0 = time.time()
        await producer.send_and_wait(topics.model_commands, POISON, key=b"x")
        after = None
        while time.time() - t0 < 30:
            if any(s.topic == target and s.timestamp_ms >= t0 * 1000 - 1000 for s in dlt.records.values()):
                after = time.time() - t0
                break
            await asyncio.sleep(0.2)
        replica = stack.replicas_of("models")[0].name
        cpu0, w0 = stack.cpu_seconds(replica), time.monotonic()
        await asyncio.sleep(10)
        cpu = (stack.cpu_seconds(replica) - cpu0) / (time.monotonic() - w0) * 100
        model_id = uuid.uuid4()
        command = ev.wrap(
            ev.CreateModel(name=f"after-poison-{model_id.hex[:6]}", language="en-US"),
            tenant_id="chaos",
            model_id=model_id,
        )
        token = issue_token(stack.signing_auth, "chaos")
        await producer.send_and_wait(
            topics.model_commands, command.to_bytes(), key=b"x", headers=[("authorization", f"Bearer {token}".encode())]
        )
    finally:
        await producer.stop()
    api = Api({"models": stack.urls("models")}, stack.signing_auth, "chaos")
    try:
        found = await api.until("models", "GET", f"/v1/models/{model_id}", time.monotonic() + 30)
    finally:
        await api.close()
    return PoisonResult(after, cpu, found is not None)


async def _settle(stack: ChaosStack, logs: list[RoundLog]) -> None:
    """Give models that had not ended when their round did the time supervision needs to end them, then read
    each one's final status: a model is stuck only if it has not ended by then."""
    waiting = [r for log in logs for r in log.runs if r.id is not None and r.status not in (4, 5)]
    if not waiting:
        return
    say(f"{len(waiting)} model(s) had not ended with their round; waiting up to {GIVE_UP_SECONDS + 60} s")
    api = Api({"models": stack.urls("models")}, stack.signing_auth, "chaos")
    deadline = time.monotonic() + GIVE_UP_SECONDS + 60
    try:
        while waiting and time.monotonic() < deadline:
            for r in list(waiting):
                got = await api.until("models", "GET", f"/v1/models/{r.id}", time.monotonic() + 10)
                if got is not None:
                    r.final = got.json()
                if r.status in (4, 5):
                    waiting.remove(r)
            await asyncio.sleep(2)
    finally:
        await api.close()


async def run(opts: Options) -> Report:
    if opts.seed is not None:
        random.seed(opts.seed)
    state = StateDir(opts.state_dir or Path(__file__).resolve().parents[2] / ".voxtrain" / "chaos")
    ports = Ports.from_env({"VOXTRAIN_STACK_PORT_OFFSET": str(opts.port_offset)})
    stack = ChaosStack(state, ports)
    say(
        f"servers in {state.path} (Kafka 127.0.0.1:{ports.kafka}, PostgreSQL :{ports.postgres}, "
        f"MinIO :{ports.minio}); run {stack.run_id}"
    )
    await asyncio.to_thread(stack.start_servers)
    assert stack.endpoints is not None
    files = await asyncio.to_thread(make_files, state.path / "files")
    topics = Topics(stack.namespace)
    plan = [("1 replica", COMPONENTS[i % len(COMPONENTS)], 1) for i in range(opts.rounds)]
    plan += [("2 replicas", COMPONENTS[i % len(COMPONENTS)], 2) for i in range(opts.replica_rounds)]
    status = Collector(stack.endpoints.kafka_bootstrap, topics=(topics.status,))
    dlt = Collector(stack.endpoints.kafka_bootstrap, pattern=dead_letter_pattern(topics))
    logs: list[RoundLog] = []
    poison: PoisonResult | None = None
    replicas = 0
    flow_seconds = 20.0
    started = time.monotonic()
    try:
        for i, (mode, component, n) in enumerate(plan, 1):
            timeout = opts.round_timeout
            if opts.budget is not None:
                share = (opts.budget - (time.monotonic() - started)) / (len(plan) - i + 1)
                timeout = min(timeout, max(MIN_ROUND_SECONDS, share))
            if n != replicas:
                say(f"starting {n} replica(s) of every service")
                await stack.start_services(n)
                replicas = n
                if not status._task:
                    await status.start()
                    await dlt.start()
            log = await _round(
                stack, f"round {i}/{len(plan)} ({mode}, {component})", component, opts, files, flow_seconds, timeout
            )
            log.label = component if n == 1 else f"{component} (2 replicas)"
            logs.append(log)
            done = [r.seconds for r in log.runs if r.status == 4]
            if done:  # aim the next kills at the flow as it really takes
                flow_seconds = max(5.0, min(120.0, sorted(done)[len(done) // 2]))
        if opts.poison:
            if replicas != 1:
                await stack.start_services(1)
            poison = await _poison(stack, topics, dlt)
            say(poison.describe())
        await _settle(stack, logs)
        await asyncio.sleep(5)  # the last events reach the topic
    finally:
        await status.stop()
        await dlt.stop()
        await stack.stop_services()
        if not opts.keep_servers:
            await asyncio.to_thread(stop_stack, state.path)
    return _report(logs, status, dlt, poison, topics)


def _report(
    logs: list[RoundLog], status: Collector, dlt: Collector, poison: PoisonResult | None, topics: Topics
) -> Report:
    records = status.ordered()
    verdicts = [(log.label, judge(r, records)) for log in logs for r in log.runs]
    rows: dict[str, Row] = {}
    for log in logs:
        rows.setdefault(log.label, Row(log.label)).rounds += 1
    for label, vs in group_by_label(verdicts).items():
        for v in vs:
            rows[label].add(v)
    poison_topic = dead_letter(topics.model_commands)
    for s in dlt.ordered():
        if s.topic == poison_topic and s.value == POISON:
            continue  # the injected poison message belongs there
        owner = next((log for log in logs if log.started_ms <= s.timestamp_ms <= log.ended_ms), logs[-1])
        rows[owner.label].dead_lettered += 1
    return Report(list(rows.values()), logs, verdicts, poison)
