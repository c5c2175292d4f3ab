"""`vt` against the whole running system through one URL (the console's /v1 gateway, as the Ingress in a
cluster): 12 files as two uploads, one transfer killed part-way and resumed, train --wait, transcribe."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.console.system import running_system
from tests.support import auth_headers
from tests.trainer.medical_domain import TEST_SENTENCES, TRAINING_TEXT, speak

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.timeout(600)]
VT = str(Path(sys.executable).parent / "vt")


def vt_env(url: str, tmp_path: Path) -> dict[str, str]:
    token = auth_headers("acme")["Authorization"].removeprefix("Bearer ")
    return {
        **os.environ,
        "VT_URL": url,
        "VT_TOKEN": token,
        "VT_STATE_DIR": str(tmp_path / "vt-state"),
        "XDG_CONFIG_HOME": str(tmp_path / "no-config"),
    }


async def vt(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(VT, *args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def test_upload_a_folder_with_a_killed_transfer_train_and_transcribe(stack, tmp_path: Path) -> None:
    folder = tmp_path / "ward"
    folder.mkdir()
    lines = TRAINING_TEXT.strip().splitlines()
    for i in range(11):
        (folder / f"notes-{i:02d}.txt").write_text("\n".join(lines[i::11]) + "\n")
    # one recording big enough (~60 MiB, 12 parts of 5 MiB) to be killed part-way through
    subprocess.run(
        [
            "sox",
            "-n",
            "-r",
            "16000",
            "-c",
            "1",
            "-b",
            "16",
            str(folder / "rounds.wav"),
            "synth",
            "2000",
            "whitenoise",
            "vol",
            "0.01",
        ],
        check=True,
    )
    test_audio = speak(TEST_SENTENCES[0], tmp_path / "question.wav", "en-us+m3")

    async with running_system(stack, tmp_path / "system") as system:
        env = vt_env(system.console_url, tmp_path)
        code, out, err = await vt(env, "models", "create", "ward-rounds", "--no-auto-train", "--json")
        assert code == 0, err
        model_id = json.loads(out)["id"]

        # The first run is killed once storage holds some parts of the big file but not all.
        proc = await asyncio.create_subprocess_exec(
            VT,
            "datasets",
            "upload",
            model_id,
            str(folder),
            "--parallel",
            "1",
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        killed_with = await kill_part_way(system.console_url, env, model_id, proc)
        assert killed_with is not None, "the transfer finished before it could be killed; make the file bigger"
        received, total = killed_with
        assert 0 < received < total

        code, out, err = await vt(env, "datasets", "upload", model_id, str(folder))
        assert code == 0, err
        assert "rounds.wav" in err or "uploaded" in out  # progress goes to stderr (no bars without a TTY)

        code, out, err = await vt(env, "datasets", "list", model_id, "--json")
        stored = json.loads(out)
        assert code == 0 and len(stored) == 12, "every file stored once: resumed, not sent again"
        big = next(d for d in stored if d["file_name"] == "rounds.wav")
        assert big["size"] == (folder / "rounds.wav").stat().st_size

        code, out, err = await vt(env, "train", model_id, "--wait", "--interval", "1", "--json")
        assert code == 0, f"training did not succeed: {out}\n{err}"
        assert json.loads(out)["status"]["code"] == 4

        code, out, err = await vt(env, "transcribe", model_id, str(test_audio), "--json")
        assert code == 0, err
        heard = set(json.loads(out)["text"].split())
        assert {"lisinopril", "hypertension"} <= heard, f"the domain words of {TEST_SENTENCES[0]!r} were decoded"

        code, out, err = await vt(env, "train", model_id)
        assert code == 1 and "invalid_status" in err, "a refusal prints the API's code and exits 1"


async def kill_part_way(
    url: str, env: dict[str, str], model_id: str, proc: asyncio.subprocess.Process
) -> tuple[int, int] | None:
    """SIGKILL ``proc`` once the big file's upload session has some parts but not all; None if it finished."""
    state = Path(env["VT_STATE_DIR"]) / "uploads"
    headers = {"Authorization": f"Bearer {env['VT_TOKEN']}"}
    async with httpx.AsyncClient(base_url=url, headers=headers) as api:
        while proc.returncode is None:
            for f in state.glob("*.json") if state.is_dir() else []:
                try:
                    plan = json.loads(f.read_text())
                except ValueError:
                    continue  # being rewritten
                big = [
                    x
                    for b in plan["batches"]
                    for x in b["files"]
                    if x["path"].endswith("rounds.wav") and x["upload_id"]
                ]
                if big:
                    s = (await api.get(f"/v1/models/{model_id}/uploads/{big[0]['upload_id']}")).json()
                    got = len(s["parts_received"])
                    if 0 < got < s["part_count"]:
                        proc.send_signal(signal.SIGKILL)
                        await proc.wait()
                        return got, s["part_count"]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 0.02)
    return None
