"""`vt` against the whole running system through the console's /v1 gateway: train --wait following a model's
live events to 5 (exit 1 with the reason) and to 4, and a webhook endpoint's whole life through `vt webhooks`."""

from __future__ import annotations

import asyncio
import json
import re
import tarfile
from asyncio.subprocess import PIPE
from pathlib import Path, PurePosixPath

import httpx
import pytest

from tests.client.test_cli_integration import VT, vt, vt_env
from tests.console.system import running_system
from tests.support import auth_headers, eventually
from tests.trainer.medical_domain import TRAINING_TEXT
from tests.webhooks.test_webhooks_integration import Receiver
from voxtrain_client.webhooks import InvalidSignature, verify

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.timeout(600)]
#: --interval of the fallback polling: an hour, so a test that ends in time followed the live stream
NO_POLLING = "3600"


async def model_with_notes(env: dict[str, str], tmp_path: Path) -> str:
    """A new model (auto-train off) holding the medical notes as its one dataset; its id."""
    notes = tmp_path / "notes.txt"
    notes.write_text(TRAINING_TEXT)
    code, out, err = await vt(env, "models", "create", "cardiology", "--no-auto-train", "--json")
    assert code == 0, err
    model_id: str = json.loads(out)["id"]
    code, out, err = await vt(env, "datasets", "upload", model_id, str(notes))
    assert code == 0, err
    return model_id


async def test_train_wait_follows_live_events_to_failed_and_exits_with_the_reason(stack, tmp_path: Path) -> None:
    (tmp_path / "report.txt").write_text("chest x-ray shows no pneumonia\n")
    (tmp_path / "dictation.m4a").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 2000)
    with Receiver(fail_first=0) as receiver:
        async with running_system(stack, tmp_path / "system", webhooks=True) as system:
            env = vt_env(system.console_url, tmp_path)
            code, out, err = await vt(env, "webhooks", "create", receiver.url, "--json")
            assert code == 0, err
            hook = json.loads(out)
            code, out, err = await vt(env, "models", "create", "radiology", "--no-auto-train", "--json")
            model_id = json.loads(out)["id"]
            code, out, err = await vt(
                env, "datasets", "upload", model_id, str(tmp_path / "report.txt"), str(tmp_path / "dictation.m4a")
            )
            assert code == 0, err

            code, out, err = await vt(env, "train", model_id, "--wait", "--interval", NO_POLLING)
            assert code == 1, f"a failed training exits non-zero: {out}\n{err}"
            assert re.search(r"failed invalid_audio_format: .*PNG", err), err
            assert "(stream)" in err and "(poll)" not in err, err

            # the endpoint got the model's transitions, signed with its secret
            async def transitions() -> list[tuple[int, int]]:
                bodies = [verify(hook["secret"], h["voxtrain-signature"], b) for h, b in receiver.accepted]
                mine = [b["data"] for b in bodies if b["model_id"] == model_id]
                return [(d["old_status"], d["new_status"]) for d in mine]

            async def both() -> bool:
                return await transitions() == [(1, 2), (2, 5)]

            await eventually(both, timeout=30)


async def test_train_wait_shows_the_live_stages_until_success(stack, tmp_path: Path) -> None:
    async with running_system(stack, tmp_path / "system") as system:
        env = vt_env(system.console_url, tmp_path)
        model_id = await model_with_notes(env, tmp_path)

        code, out, err = await vt(env, "train", model_id, "--wait", "--interval", NO_POLLING)
        assert code == 0, f"training did not succeed: {out}\n{err}"
        assert "4 Success" in out
        stages = re.findall(r"^3 Running — (\S+) \d+%.*\(stream\)$", err, re.M)
        assert len(set(stages)) >= 2, f"the stages as the trainer reported them, live: {err}"
        assert re.search(r"^3 Running — \S+ \d+%, about \d+m\d\ds left", err, re.M), f"an ETA: {err}"
        code, out, err = await vt(env, "models", "show", model_id, "--json")
        assert json.loads(out)["status"]["code"] == 4

        code, out, err = await vt(env, "export", model_id, "-o", str(tmp_path), "--json")
        assert code == 0, err
        saved = Path(json.loads(out)["path"])
        assert saved == tmp_path / f"voxtrain-model-{model_id}.tar.gz" and saved.stat().st_size > 0
        with tarfile.open(saved) as tar:
            names = [PurePosixPath(n).name for n in tar.getnames()]
        assert names[-1] == "SHA256SUMS" and len(names) > 2, names
        assert not list(tmp_path.glob("*.part"))

        code, out, err = await vt(env, "credits", "--json")
        assert code == 0, err
        account = json.loads(out)
        mine = [(e["kind"], e["amount"]) for e in account["entries"] if e["model_id"] == model_id]
        (reserved,) = [a for k, a in mine if k == "reserve"]
        assert sorted(mine) == [("charge", reserved), ("reserve", reserved)], "reserved at 2, charged once at 4"
        assert account["spent"] == reserved and account["held"] == 0


async def test_a_webhook_endpoint_through_vt_from_create_to_delete(stack, tmp_path: Path) -> None:
    with Receiver(fail_first=0) as receiver:
        async with running_system(stack, tmp_path / "system", webhooks=True) as system:
            env = vt_env(system.console_url, tmp_path)
            code, out, err = await vt(
                env, "webhooks", "create", receiver.url, "--event", "status", "--event", "progress"
            )
            assert code == 0, err
            hook_id = re.search(r"created webhook (\S+)", out)[1]
            secret = re.search(r"(whsec_\S+)", out)[1]
            code, out, err = await vt(env, "webhooks", "list", "--json")
            listed = json.loads(out)
            assert [(h["id"], set(h["events"]), h["secret_hint"]) for h in listed] == [
                (hook_id, {"status", "progress"}, secret[-4:])
            ]
            assert "secret" not in listed[0], "the secret is shown once, at creation"

            code, out, err = await vt(env, "webhooks", "ping", hook_id, "--json")
            assert code == 0, err
            ping = json.loads(out)
            assert ping["state"] == "delivered" and ping["last_status"] == 200
            headers, body = receiver.accepted[-1]
            assert verify(secret, headers["voxtrain-signature"], body)["type"] == "WebhookPing"

            code, out, err = await vt(env, "webhooks", "deliveries", hook_id, "--json")
            assert [d["id"] for d in json.loads(out)] == [ping["id"]]
            code, out, err = await vt(env, "webhooks", "redeliver", hook_id, ping["id"])
            assert code == 0 and "queued again" in out, err

            async def redelivered() -> bool:
                return len(receiver.accepted) == 2

            await eventually(redelivered, timeout=30)
            again = receiver.accepted[-1][0]
            assert again["voxtrain-event-id"] == headers["voxtrain-event-id"], "a redelivery carries the same id"

            code, out, err = await vt(env, "webhooks", "rotate", hook_id, "--json")
            new_secret = json.loads(out)["secret"]
            assert new_secret != secret
            code, out, err = await vt(env, "webhooks", "ping", hook_id)
            assert code == 0, err
            headers, body = receiver.accepted[-1]
            verify(new_secret, headers["voxtrain-signature"], body)
            with pytest.raises(InvalidSignature):
                verify(secret, headers["voxtrain-signature"], body)

            code, out, err = await vt(env, "webhooks", "delete", hook_id)
            assert code == 0, err
            code, out, err = await vt(env, "webhooks", "list", "--json")
            assert json.loads(out) == []
            code, out, err = await vt(env, "webhooks", "ping", hook_id)
            assert code == 1 and "not_found" in err, "a refusal prints the API's code"


async def test_vt_cancel_ends_a_running_training_and_train_wait_exits_with_cancelled(stack, tmp_path: Path) -> None:
    async with running_system(stack, tmp_path / "system") as system:
        env = vt_env(system.console_url, tmp_path)
        model_id = await model_with_notes(env, tmp_path)
        code, out, err = await vt(env, "cancel", model_id)
        assert code == 1 and "invalid_status" in err, "nothing to cancel at 1"

        follower = await asyncio.create_subprocess_exec(
            VT, "train", model_id, "--wait", "--interval", NO_POLLING, env=env, stdout=PIPE, stderr=PIPE
        )
        assert follower.stderr is not None
        seen = ""
        while "3 Running" not in seen:  # the follower's own live line says when training runs
            line = await asyncio.wait_for(follower.stderr.readline(), 120)
            assert line, f"vt train --wait ended before training ran: {seen}"
            seen += line.decode()
        code, out, err = await vt(env, "cancel", model_id, "--json")
        assert code == 0, err
        cancelled = json.loads(out)
        assert cancelled["status"]["code"] == 5 and cancelled["last_error"]["code"] == "cancelled"

        _, rest = await asyncio.wait_for(follower.communicate(), 60)
        assert follower.returncode == 1, "the follower saw the cancel live and exits non-zero"
        assert re.search(r"failed cancelled: Training was cancelled by acme", seen + rest.decode()), (
            seen + rest.decode()
        )

        code, out, err = await vt(env, "credits", "--json")
        mine = sorted((e["kind"], e["amount"]) for e in json.loads(out)["entries"] if e["model_id"] == model_id)
        assert [k for k, _ in mine] == ["refund", "reserve"] and mine[0][1] == mine[1][1], "refunded in full"


async def test_vt_with_an_api_key_exchanges_it_for_tokens_within_its_scopes_until_revoked(
    stack, tmp_path: Path
) -> None:
    async with (
        running_system(stack, tmp_path / "system") as system,
        httpx.AsyncClient(base_url=system.console_url, headers=auth_headers("acme")) as api,
    ):

        async def new_key(*scopes: str) -> dict:
            r = await api.post("/v1/api-keys", json={"label": "vt", "scopes": list(scopes)})
            assert r.status_code == 201, r.text
            return r.json()

        full, reader = await new_key("read", "write", "train"), await new_key("read")

        def with_key(key: dict) -> dict[str, str]:
            env = {k: v for k, v in vt_env(system.console_url, tmp_path).items() if k != "VT_TOKEN"}
            return {**env, "VT_API_KEY": key["key"]}

        env = with_key(full)
        model_id = await model_with_notes(env, tmp_path)
        code, out, err = await vt(env, "train", model_id, "--wait", "--interval", NO_POLLING)
        assert code == 0 and "4 Success" in out, f"the live stream takes the exchanged token too: {err}"

        code, out, err = await vt(with_key(reader), "models", "list", "--json")
        assert code == 0 and model_id in {m["id"] for m in json.loads(out)}, err
        code, out, err = await vt(with_key(reader), "models", "create", "another")
        assert code == 1 and "forbidden" in err and "write" in err, err

        assert (await api.delete(f"/v1/api-keys/{full['id']}")).status_code in (200, 204)
        code, out, err = await vt(env, "models", "list")
        assert code == 1 and "VT_API_KEY" in err, f"a revoked key is refused at the exchange: {err}"


async def test_vt_credits_shows_the_balance_and_a_training_it_cannot_afford_is_refused(stack, tmp_path: Path) -> None:
    async with running_system(stack, tmp_path / "system", {"VOXTRAIN_CREDITS__FREE_ALLOWANCE": "0"}) as system:
        env = vt_env(system.console_url, tmp_path)
        code, out, err = await vt(env, "credits")
        assert code == 0 and "balance: 0 credits" in out, err
        model_id = await model_with_notes(env, tmp_path)
        code, out, err = await vt(env, "train", model_id, "--wait")
        assert code == 1 and "insufficient_credits" in err, err
        code, out, err = await vt(env, "models", "show", model_id, "--json")
        assert json.loads(out)["status"]["code"] == 1, "the model stays where it was"
