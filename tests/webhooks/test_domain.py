"""Webhook rules: accepted URLs, signatures (checked with the client's own verifier), retries, ordering."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.fakes import FakeUnitOfWork
from tests.webhooks.fakes import FakeWebhookRepository
from voxtrain_client.webhooks import InvalidSignature, verify
from voxtrain_shared import events as ev
from voxtrain_shared.errors import Rejected
from voxtrain_shared.uow import Context
from voxtrain_shared.vocab import ModelStatus
from voxtrain_webhooks import handlers as h
from voxtrain_webhooks.domain import (
    Attempt,
    DeliveryState,
    EventKind,
    RetryPolicy,
    address_allowed,
    check_url,
    sign,
)

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("url", ["https://hooks.example.com/voxtrain", "https://93.184.216.34:8443/x?y=1"])
def test_public_https_urls_are_accepted(url: str) -> None:
    assert check_url(url, allow_insecure=False) == url


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://hooks.example.com/x", "https://"),
        ("https://10.0.0.5/x", "private"),
        ("https://192.168.1.10/x", "private"),
        ("https://169.254.169.254/latest/meta-data", "private"),
        ("https://127.0.0.1/x", "private"),
        ("https://localhost/x", "private"),
        ("https://[::1]/x", "private"),
        ("https://user:pw@hooks.example.com/x", "credentials"),
        ("hooks.example.com/x", "absolute"),
        ("http://127.0.0.1:9000/x", "https://"),
    ],
)
def test_other_urls_are_refused_with_a_reason(url: str, why: str) -> None:
    with pytest.raises(Rejected, match=why):
        check_url(url, allow_insecure=False)


def test_the_local_setting_allows_plain_http_on_loopback_only() -> None:
    assert check_url("http://127.0.0.1:9000/hook", allow_insecure=True) == "http://127.0.0.1:9000/hook"
    with pytest.raises(Rejected):
        check_url("http://10.1.2.3/hook", allow_insecure=True)
    assert not address_allowed("10.1.2.3", allow_loopback=True) and address_allowed("127.0.0.1", allow_loopback=True)


def test_a_signature_verifies_with_the_documented_recipe_and_tampering_fails() -> None:
    body = json.dumps({"type": "TrainingStatusChanged", "data": {"new_status": 4}}).encode()
    header = sign("whsec_abc", 1_700_000_000, body)
    assert verify("whsec_abc", header, body, now=1_700_000_100)["data"]["new_status"] == 4
    with pytest.raises(InvalidSignature, match="does not match"):
        verify("whsec_abc", header, body.replace(b"4", b"5"), now=1_700_000_100)
    with pytest.raises(InvalidSignature, match="does not match"):
        verify("whsec_other", header, body, now=1_700_000_100)
    with pytest.raises(InvalidSignature, match="replay window"):
        verify("whsec_abc", header, body, now=1_700_000_000 + 301)


def test_retries_double_up_to_the_cap_and_give_up_after_the_window() -> None:
    p = RetryPolicy(10, 3600, 24 * 3600)
    assert [p.delay(n).total_seconds() for n in (1, 2, 3, 9, 20)] == [10, 20, 40, 2560, 3600]
    assert not p.gives_up(T0, T0 + timedelta(hours=23)) and p.gives_up(T0, T0 + timedelta(hours=24))


class ScriptedSender:
    """Answers with the status codes given, in order; records what was sent."""

    def __init__(self, *codes: int) -> None:
        self.codes = list(codes)
        self.sent: list[tuple[str, dict[str, str], bytes]] = []

    async def send(self, url: str, headers: dict[str, str], body: bytes) -> Attempt:
        self.sent.append((url, headers, body))
        return Attempt(self.codes.pop(0) if self.codes else 200, 3)


def status_env(tenant: str, model: uuid.UUID, old: int, new: int) -> ev.Envelope:
    s = ModelStatus(new)
    return ev.wrap(
        ev.TrainingStatusChanged(
            old_status=ModelStatus(old), new_status=s, status_name=s.name, badge=s.badge, reason="test"
        ),
        tenant_id=tenant,
        model_id=model,
    )


async def test_deliveries_go_in_order_per_model_and_a_failure_holds_back_only_its_model() -> None:
    repo = FakeWebhookRepository()
    uow = FakeUnitOfWork(repo)
    clock = [T0]
    e = await h.create_endpoint(
        uow,
        Context("acme", uuid.uuid4()),
        "https://hooks.example.com/v",
        [EventKind.STATUS],
        None,
        allow_insecure=False,
        max_endpoints=5,
    )
    other = await h.create_endpoint(
        uow,
        Context("globex", uuid.uuid4()),
        "https://globex.example.com/v",
        [EventKind.STATUS],
        None,
        allow_insecure=False,
        max_endpoints=5,
    )
    m1, m2 = uuid.uuid4(), uuid.uuid4()
    for env in (status_env("acme", m1, 1, 2), status_env("acme", m2, 1, 2), status_env("acme", m1, 2, 3)):
        async with uow(Context.of(env)) as tx:
            await h.event_published(tx, env)
    assert len(repo.deliveries_) == 3, "only acme's endpoint gets acme's events"

    sender = ScriptedSender(500, 200, 200, 200)  # m1's first delivery fails once
    policy = RetryPolicy(10, 3600, 24 * 3600)
    repo.now = T0
    assert await h.deliver_due(uow, sender, policy, lambda: clock[0], 10) == 2  # heads of m1 and m2
    assert [json.loads(b)["model_id"] for _, _, b in sender.sent] == [str(m1), str(m2)]
    repo.now = T0 + timedelta(seconds=5)
    assert await h.deliver_due(uow, sender, policy, lambda: clock[0], 10) == 0, "m1 waits for its retry"
    repo.now = T0 + timedelta(seconds=10)
    clock[0] = repo.now
    assert await h.deliver_due(uow, sender, policy, lambda: clock[0], 10) == 1  # m1's 1→2 again
    assert await h.deliver_due(uow, sender, policy, lambda: clock[0], 10) == 1  # then m1's 2→3
    got = [(json.loads(b)["model_id"], json.loads(b)["data"]["new_status"]) for _, _, b in sender.sent]
    assert got == [(str(m1), 2), (str(m2), 2), (str(m1), 2), (str(m1), 3)]
    for _url, headers, body in sender.sent:
        verify(e.secret, headers["Voxtrain-Signature"], body, now=clock[0].timestamp())
    assert all(d.state is DeliveryState.DELIVERED for d in repo.deliveries_)
    assert other.secret != e.secret


async def test_an_endpoint_failing_for_the_whole_window_is_disabled_with_a_reason_and_can_be_re_enabled() -> None:
    repo = FakeWebhookRepository()
    uow = FakeUnitOfWork(repo)
    ctx = Context("acme", uuid.uuid4())
    e = await h.create_endpoint(
        uow, ctx, "https://hooks.example.com/v", [EventKind.STATUS], None, allow_insecure=False, max_endpoints=5
    )
    env = status_env("acme", uuid.uuid4(), 1, 2)
    async with uow(Context.of(env)) as tx:
        await h.event_published(tx, env)
    policy = RetryPolicy(60, 3600, 3 * 3600)
    sender = ScriptedSender(*([503] * 100))
    clock = [T0]
    while repo.endpoints_[e.id].enabled:
        repo.now = clock[0]
        await h.deliver_due(uow, sender, policy, lambda: clock[0], 10)
        clock[0] += timedelta(hours=1)
    endpoint = repo.endpoints_[e.id]
    assert "kept failing for 3 h" in (endpoint.disabled_reason or "") and "HTTP 503" in endpoint.disabled_reason
    assert repo.deliveries_[0].state is DeliveryState.FAILED
    again = await h.update_endpoint(uow, ctx, e.id, allow_insecure=False, enabled=True)
    assert again.enabled and again.disabled_reason is None


async def test_a_tenant_cannot_see_or_change_another_tenants_endpoint() -> None:
    repo = FakeWebhookRepository()
    uow = FakeUnitOfWork(repo)
    e = await h.create_endpoint(
        uow,
        Context("acme", uuid.uuid4()),
        "https://hooks.example.com/v",
        [EventKind.STATUS],
        None,
        allow_insecure=False,
        max_endpoints=5,
    )
    with pytest.raises(Rejected, match="No webhook endpoint"):
        await h.get_endpoint(uow, "globex", e.id)
    with pytest.raises(Rejected, match="No webhook endpoint"):
        await h.rotate_secret(uow, Context("globex", uuid.uuid4()), e.id)
    assert await h.list_endpoints(uow, "globex") == []
