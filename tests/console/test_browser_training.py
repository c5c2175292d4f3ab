"""What a training costs, cancelling it, and its time left — in a real browser (Debian's headless chromium)
against the real system: the services and the console on real sockets, Kafka, PostgreSQL and MinIO.

The spec's confirmation dialog keeps its text and shows the amount and the balance below it; Cancel is
offered at 2 and at 3 and ends at 5 ``cancelled`` with the credits back; while a model trains, the page
shows the stage, the percentage and about how long is left; a model trained again after a cancel can be
downloaded. Screenshots go to test-artifacts/console/ (``3x-…``).
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.console.browser import TENANT, TRAIN_MESSAGE, create_model, eventually, open_models, shot, sign_in
from tests.console.system import System, running_system
from tests.support import auth_headers
from tests.trainer.medical_domain import ADAPTATION_SENTENCES, TEST_SENTENCES, TRAINING_TEXT, speak_all

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.timeout(600), pytest.mark.usefixtures("evidence")]
ACME = auth_headers(TENANT)
MODELS: dict[str, str] = {}  # name -> id, shared by the tests of this module (they run in order)
SIGNED_IN: dict[str, str] = {}  # "subject": who the page acts as


@pytest.fixture(scope="module")
async def system(stack, tmp_path_factory) -> AsyncIterator[System]:
    """The system with a price of one credit per word and per second of audio, and 2,000 free credits: the
    trainings here fit in, and a transcript a little longer than the balance does not."""
    credits = {
        "VOXTRAIN_CREDITS__FREE_ALLOWANCE": "2000",
        "VOXTRAIN_CREDITS__PER_THOUSAND_WORDS": "1000",
        "VOXTRAIN_CREDITS__PER_AUDIO_MINUTE": "60",
    }
    async with running_system(stack, tmp_path_factory.mktemp("console"), models_env=credits) as s:
        yield s


@pytest.fixture(scope="module")
def training_files(tmp_path_factory) -> list[tuple[str, tuple[str, bytes, str]]]:
    """Notes, five test utterances and spoken adaptation pairs: a training that runs long enough to be
    cancelled while it runs (the acoustic model is adapted too)."""
    d = tmp_path_factory.mktemp("media")
    test_audio = speak_all(TEST_SENTENCES[:5], d / "ward", "ward")
    train_audio = speak_all(ADAPTATION_SENTENCES, d / "adapt", "adapt")
    pairs = [(p, s, "test") for p, s in zip(test_audio, TEST_SENTENCES[:5], strict=True)]
    pairs += [(p, s, "train") for p, s in zip(train_audio, ADAPTATION_SENTENCES, strict=True)]
    lines = [json.dumps({"audio": p.name, "text": s, "split": split}) for p, s, split in pairs]
    files = [("files", ("notes.txt", TRAINING_TEXT.encode(), "text/plain"))]
    files += [("files", (p.name, p.read_bytes(), "audio/wav")) for p in [*test_audio, *train_audio]]
    files += [("files", ("pairs.jsonl", ("\n".join(lines) + "\n").encode(), "application/jsonl"))]
    return files


async def model_view(system: Any, mid: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=system.urls["models"]) as c:
        r = await c.get(f"/v1/models/{mid}", headers=ACME)
    assert r.status_code == 200, r.text
    return r.json()


async def measured_cost(system: Any, mid: str) -> dict[str, Any]:
    """The model's cost once the models service has every verdict's measures (until then it is estimated
    from the files' sizes)."""
    async with httpx.AsyncClient(base_url=system.urls["models"]) as c:
        r = await eventually(
            lambda: c.get(f"/v1/models/{mid}", headers=ACME), check=lambda r: r.json()["cost"]["basis"]["measured"]
        )
    return r.json()["cost"]


async def upload_and_validate(system: Any, page: Any, mid: str, files: list[Any]) -> None:
    """Upload through the datasets API (the upload dialog has its own tests) and wait until the page
    shows every dataset valid."""
    async with httpx.AsyncClient(base_url=system.urls["datasets"], timeout=120) as c:
        for i in range(0, len(files), 10):  # 1-10 files per upload
            r = await c.post(f"/v1/models/{mid}/datasets", files=files[i : i + 10], headers=ACME)
            assert r.status_code == 201, r.text
        await eventually(
            lambda: c.get(f"/v1/models/{mid}/datasets", headers=ACME),
            check=lambda r: all(d["status"] == "valid" for d in r.json()["datasets"]),
            timeout=120,
        )
    await page.reload()
    await page.wait_for_function(
        f"""() => {{
        const rows = [...document.querySelectorAll('#datasets-body tr')];
        return rows.length === {len(files)} && rows.every(r => r.dataset.status === 'valid');
    }}""",
        timeout=60_000,
    )


async def header_balance(page: Any) -> int:
    await page.wait_for_selector("#credits:not([hidden])")
    return int(await page.get_attribute("#credits", "data-balance"))


async def wait_balance(page: Any, expected: int, timeout_ms: int = 30_000) -> None:
    await page.wait_for_function(
        f"() => document.getElementById('credits').dataset.balance === '{expected}'", timeout=timeout_ms
    )


async def open_model(page: Any, name: str) -> None:
    await page.evaluate(f"location.hash = '#/models/{MODELS[name]}'")
    await page.wait_for_selector(f"#model-title:text-is('{name}')")
    await page.wait_for_selector("#model-status .badge")


def credits_text(n: int) -> str:
    return f"{n:,} credit{'' if n == 1 else 's'}"


def eta_text(seconds: float) -> str:
    """What the page says for the trainer's estimate (ui.js etaText)."""
    if seconds < 60:
        return "less than a minute left"
    minutes = round(seconds / 60)
    return f"about {minutes} min left" if minutes < 120 else f"about {minutes // 60} h {minutes % 60} min left"


async def confirm_cancel(page: Any, name: str) -> None:
    """Cancel through its confirmation: first dismissed ("Keep training" changes nothing), then confirmed."""
    assert await page.is_visible("#cancel-training") and not await page.is_visible("#train-model")
    await page.click("#cancel-training")
    await page.wait_for_selector("#cancel-dialog[open]")
    assert await page.inner_text("#cancel-dialog-title") == "Cancel training"
    assert f"Cancel the training of {name}?" in await page.inner_text("#cancel-dialog-message")
    await page.click("#cancel-dialog-dismiss")
    await page.wait_for_selector("#cancel-dialog", state="detached")
    assert await page.is_visible("#cancel-training")
    await page.click("#cancel-training")
    await page.click("#cancel-dialog-confirm")
    await page.wait_for_selector("#toasts .toast:has-text('Training cancelled')")


async def assert_cancelled(system: Any, page: Any, mid: str) -> None:
    """At 5 with the code ``cancelled`` and who cancelled it; Train is offered again, Cancel no more."""
    await page.wait_for_selector("#model-status [data-status='5']", timeout=15_000)
    await page.wait_for_selector("#failure[data-code='cancelled']")
    view = await model_view(system, mid)
    assert view["status"]["code"] == 5 and view["last_error"]["code"] == "cancelled", view
    assert view["last_error"]["cancelled_by"] == SIGNED_IN["subject"], view["last_error"]
    failure = await page.inner_text("#failure")
    assert "Training cancelled" in failure and "Training was cancelled (cancelled)" in failure
    assert f"cancelled by {SIGNED_IN['subject']}" in failure, failure
    assert await page.is_visible("#train-model") and not await page.is_visible("#cancel-training")


# ---------------------------------------------------------------------------------------------------


async def test_the_train_dialog_shows_the_amount_below_the_specs_text(system, page, artifacts, training_files) -> None:
    SIGNED_IN["subject"] = await sign_in(page, system)
    # radiology, ready to train later while cardiology trains (the trainer runs one training at a time)
    radiology = MODELS["radiology"] = await create_model(page, "radiology", auto_train=False)
    notes = [("files", ("notes.txt", TRAINING_TEXT.encode(), "text/plain"))]  # text only: a short training
    await upload_and_validate(system, page, radiology, notes)
    await open_models(page)
    mid = MODELS["cardiology"] = await create_model(page, "cardiology", auto_train=False)
    await upload_and_validate(system, page, mid, training_files)
    cost = await measured_cost(system, mid)
    assert cost["estimate"] > 0 and cost["balance"] >= cost["estimate"], cost
    assert await header_balance(page) == cost["balance"]

    await page.click("#train-model")
    await page.wait_for_selector("#train-dialog-amount")
    assert await page.inner_text("#train-dialog-title") == "Train the language confirmation"
    assert await page.inner_text("#train-dialog-message") == TRAIN_MESSAGE.format(name="cardiology")
    amount = await page.inner_text("#train-dialog-amount")
    assert amount.startswith(f"This training will use {credits_text(cost['estimate'])}"), amount
    assert amount.endswith(f"Your balance: {credits_text(cost['balance'])}."), amount
    assert await page.get_attribute("#train-dialog-amount", "data-estimate") == str(cost["estimate"])
    assert not await page.query_selector("#train-dialog-shortfall")
    # below the spec's text, above the buttons
    assert await page.evaluate(
        """() => Boolean(document.getElementById('train-dialog-message').compareDocumentPosition(
            document.getElementById('train-dialog-amount')) & Node.DOCUMENT_POSITION_FOLLOWING)"""
    )
    await shot(page, artifacts, "30-train-dialog-amount", full_page=False)
    await page.get_by_role("button", name="Train", exact=True).click()
    await page.wait_for_selector("#toasts .toast:has-text('Training started successfully')")
    await wait_balance(page, cost["balance"] - cost["estimate"])  # reserved while it trains


async def test_the_time_left_is_shown_while_training(system, page, artifacts) -> None:
    await page.wait_for_selector("#model-status [data-status='3']", timeout=180_000)
    await page.wait_for_selector("#progress-eta:not([data-seconds=''])", timeout=60_000)
    # read at once: a progress event may repaint the panel between two reads
    seconds, eta, percent, bar, text = await page.evaluate("""() => {
        const eta = document.getElementById('progress-eta');
        return [eta.dataset.seconds, eta.textContent, document.getElementById('progress-percent').textContent,
                document.querySelector('#progress .bar').dataset.percent,
                document.getElementById('progress-text').textContent];
    }""")
    assert eta == eta_text(float(seconds)) and percent == f"{bar}%", (seconds, eta, percent, bar)
    assert text.startswith("Training — "), text
    assert (await model_view(system, MODELS["cardiology"]))["run"]["progress"]["eta_seconds"] is not None
    await shot(page, artifacts, "31-training-eta")


async def test_cancel_at_ready_to_run_ends_at_failed_cancelled(system, page, artifacts) -> None:
    # the trainer runs one training at a time: while cardiology runs, radiology waits at 2
    mid = MODELS["radiology"]
    await open_model(page, "radiology")
    before = await header_balance(page)
    await page.click("#train-model")
    await page.wait_for_selector("#train-dialog-amount")
    await page.click("#train-dialog-confirm")
    await page.wait_for_selector("#model-status [data-status='2']")
    assert (await model_view(system, MODELS["cardiology"]))["status"]["code"] == 3, "cardiology is no longer running"
    await shot(page, artifacts, "32-cancel-offered-at-2", full_page=False)
    await confirm_cancel(page, "radiology")
    await assert_cancelled(system, page, mid)
    await wait_balance(page, before)  # refunded in full
    await shot(page, artifacts, "33-cancelled-at-2")


async def test_cancel_while_running_ends_at_failed_cancelled(system, page, artifacts) -> None:
    mid = MODELS["cardiology"]
    await open_model(page, "cardiology")
    assert (await model_view(system, mid))["status"]["code"] == 3, "cardiology finished before it could be cancelled"
    await page.wait_for_selector("#model-status [data-status='3']")
    await confirm_cancel(page, "cardiology")
    await assert_cancelled(system, page, mid)
    view = await model_view(system, mid)
    await wait_balance(page, view["cost"]["balance"])
    assert view["cost"]["reserved"] in (None, 0), view["cost"]
    await shot(page, artifacts, "34-cancelled-at-3")


async def test_train_is_offered_again_and_the_trained_model_downloads(system, page, artifacts) -> None:
    mid = MODELS["radiology"]  # cancelled at 2: trained again, to the end this time
    await open_model(page, "radiology")
    await page.click("#train-model")
    await page.wait_for_selector("#train-dialog-amount")
    await page.click("#train-dialog-confirm")
    await page.wait_for_selector("#toasts .toast:has-text('Training started successfully')")
    await page.wait_for_selector("#model-status [data-status='4']", timeout=300_000)
    assert await page.is_visible("#export-model") and not await page.is_visible("#cancel-training")
    async with page.expect_download() as info:
        await page.click("#export-model")
    download = await info.value
    assert download.suggested_filename == f"voxtrain-model-{mid}.tar.gz"
    data = Path(await download.path()).read_bytes()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        names = archive.getnames()
    assert {"SHA256SUMS", "MODEL_CARD.md"} <= {n.rsplit("/", 1)[-1] for n in names}, names
    await page.wait_for_selector(f"#toasts .toast:has-text('Downloaded voxtrain-model-{mid}.tar.gz')")
    await shot(page, artifacts, "35-trained-again-download")


async def test_too_few_credits_are_said_in_the_dialog_and_train_leaves_the_model_as_it_was(
    system, page, artifacts
) -> None:
    await open_models(page)
    mid = await create_model(page, "oncology", auto_train=False)
    balance = await header_balance(page)
    words = " ".join(f"word{i}" for i in range(balance + 50))  # one credit a word: more than the balance
    await upload_and_validate(system, page, mid, [("files", ("long.txt", words.encode(), "text/plain"))])
    cost = await measured_cost(system, mid)
    assert cost["estimate"] > cost["balance"] == balance, cost

    await page.click("#train-model")
    await page.wait_for_selector("#train-dialog-shortfall")
    assert await page.inner_text("#train-dialog-message") == TRAIN_MESSAGE.format(name="oncology")
    shortfall = await page.inner_text("#train-dialog-shortfall")
    assert f"{credits_text(cost['estimate'] - balance)} more are needed" in shortfall, shortfall
    assert "voxtrain credits grant" in shortfall
    await page.click("#train-dialog-confirm")  # the API decides: refused, in words
    alert = page.locator("#train-dialog [role=alert]")
    await alert.filter(has_text="Not enough credits for this training (insufficient_credits)").wait_for()
    await shot(page, artifacts, "36-too-few-credits", full_page=False)
    await page.keyboard.press("Escape")
    await page.wait_for_selector("#train-dialog", state="detached")
    assert await page.get_attribute("#model-status .badge", "data-status") == "1"
    assert await page.is_visible("#train-model")
    view = await model_view(system, mid)
    assert view["status"]["code"] == 1 and view["cost"]["balance"] == balance and view["cost"]["reserved"] is None
    assert await header_balance(page) == balance
