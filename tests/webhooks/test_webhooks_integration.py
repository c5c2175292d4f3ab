"""Real Kafka + PostgreSQL: status changes on the public topic reach a tenant's endpoint (a receiver on
127.0.0.1 that fails twice, then succeeds) signed, retried and in order per model; the API shows the log."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.support import auth_headers, eventually, publish, running, settings_for
from tests.webhooks.test_domain import status_env
from voxtrain_client.webhooks import InvalidSignature, verify
from voxtrain_shared.settings import WebhooksSettings
from voxtrain_webhooks.bootstrap import build

pytestmark = pytest.mark.integration


class Receiver:
    """An HTTP endpoint on 127.0.0.1 that answers 500 to its first ``fail_first`` requests."""

    def __init__(self, fail_first: int) -> None:
        self.fail_first = fail_first
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.accepted: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.requests.append((headers, body))
                ok = len(receiver.requests) > receiver.fail_first
                if ok:
                    receiver.accepted.append((headers, body))
                self.send_response(200 if ok else 500)
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/voxtrain"

    def __enter__(self) -> Receiver:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver(fail_first=2) as r:
        yield r


async def test_a_receiver_that_fails_twice_gets_every_transition_in_order_with_valid_signatures(
    stack, receiver: Receiver
) -> None:
    settings = settings_for(
        WebhooksSettings,
        stack,
        VOXTRAIN_ALLOW_INSECURE_URLS="true",
        VOXTRAIN_FIRST_RETRY_SECONDS="0.3",
        VOXTRAIN_MAX_RETRY_SECONDS="1",
    )
    svc = build(settings)
    acme = auth_headers("acme")
    async with running(svc) as api:
        r = await api.post("/v1/webhooks", json={"url": receiver.url, "events": ["status"]}, headers=acme)
        assert r.status_code == 201, r.text
        endpoint = r.json()
        secret = endpoint["secret"]
        assert endpoint["secret_hint"] == secret[-4:]
        assert "secret" not in (await api.get(f"/v1/webhooks/{endpoint['id']}", headers=acme)).json()
        refused = await api.post("/v1/webhooks", json={"url": "https://10.0.0.1/hook"}, headers=acme)
        assert refused.status_code == 422 and "private" in refused.json()["error"]["message"]

        m1, m2 = uuid.uuid4(), uuid.uuid4()
        flow = [
            status_env("acme", m1, 1, 2),
            status_env("acme", m2, 1, 2),
            status_env("acme", m1, 2, 3),
            status_env("acme", m2, 2, 5),
            status_env("acme", m1, 3, 4),
            status_env("globex", m1, 1, 2),
        ]
        await publish(stack.kafka_bootstrap, svc.topics.status, *flow)
        await publish(stack.kafka_bootstrap, svc.topics.status, flow[0])  # a redelivery is not sent twice

        async def all_accepted() -> bool:
            return len(receiver.accepted) >= 5

        await eventually(all_accepted, timeout=60)
        await asyncio.sleep(1.0)  # nothing more arrives: no duplicate, nothing of another tenant
        assert len(receiver.accepted) == 5 and len(receiver.requests) == 7

        events = [verify(secret, h["voxtrain-signature"], body) for h, body in receiver.accepted]
        per_model: dict[str, list[tuple[int, int]]] = {}
        for e in events:
            assert e["tenant_id"] == "acme"
            per_model.setdefault(e["model_id"], []).append((e["data"]["old_status"], e["data"]["new_status"]))
        assert per_model == {str(m1): [(1, 2), (2, 3), (3, 4)], str(m2): [(1, 2), (2, 5)]}
        assert {h["voxtrain-event-id"] for h, _ in receiver.accepted} == {str(e.id) for e in flow[:5]}

        headers, body = receiver.accepted[0]
        tampered = body.replace(b'"new_status":2', b'"new_status":4')
        assert tampered != body
        with pytest.raises(InvalidSignature):
            verify(secret, headers["voxtrain-signature"], tampered)

        log = (await api.get(f"/v1/webhooks/{endpoint['id']}/deliveries", headers=acme)).json()
        assert len(log) == 5 and all(d["state"] == "delivered" for d in log)
        assert sum(d["attempts"] for d in log) == 7, "each of the 7 requests is an attempt in the log"
        retried = [d for d in log if d["attempts"] > 1]
        assert retried and all([a["status_code"] for a in d["log"]][-1] == 200 for d in retried)
        assert sorted(a["status_code"] for d in log for a in d["log"]) == [200] * 5 + [500] * 2
        retried = retried[0]

        ping = (await api.post(f"/v1/webhooks/{endpoint['id']}/ping", headers=acme)).json()
        assert ping["state"] == "delivered" and ping["last_status"] == 200
        assert json.loads(receiver.accepted[-1][1])["type"] == "WebhookPing"

        redo = await api.post(f"/v1/webhooks/{endpoint['id']}/deliveries/{retried['id']}/redeliver", headers=acme)
        assert redo.status_code == 200

        async def redelivered() -> bool:
            return len(receiver.accepted) == 7

        await eventually(redelivered, timeout=30)

        other = auth_headers("globex")
        assert (await api.get(f"/v1/webhooks/{endpoint['id']}/deliveries", headers=other)).status_code == 404
        assert (await api.delete(f"/v1/webhooks/{endpoint['id']}", headers=other)).status_code == 404
        rotated = (await api.post(f"/v1/webhooks/{endpoint['id']}/rotate-secret", headers=acme)).json()
        assert rotated["secret"] != secret
