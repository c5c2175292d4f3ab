"""Fixtures for the console's browser tests: the running system and a headless Debian chromium."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.console.system import System, running_system

CHROMIUM = Path("/usr/bin/chromium")
#: Debian's chromium, never a downloaded browser; no network but the test servers on 127.0.0.1.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
MiB = 1024**2


@pytest.fixture(scope="module")
async def system(stack, tmp_path_factory) -> AsyncIterator[System]:
    """The four services and the console on real ports; files of 6 MiB and more use the resumable upload."""
    async with running_system(stack, tmp_path_factory.mktemp("console"), resumable_threshold_bytes=6 * MiB) as s:
        yield s


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[object]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (deploy/local/install-system-packages.sh does)")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Screenshots go here (gitignored); earlier ones are replaced."""
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="module")
async def page(system, browser, artifacts) -> AsyncIterator[Any]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    p = await context.new_page()
    p.errors = []
    p.on("pageerror", lambda e: p.errors.append(str(e)))
    # refused requests are part of some tests (the browser logs each one); script errors never are
    p.on(
        "console",
        lambda m: (
            p.errors.append(m.text) if m.type == "error" and not m.text.startswith("Failed to load resource") else None
        ),
    )
    p.set_default_timeout(15_000)
    yield p
    await context.close()


@pytest.fixture
async def evidence(request, page, artifacts) -> AsyncIterator[None]:
    """A screenshot of the page when a test fails, and no script error in any test (browser modules use it
    for every test: ``pytest.mark.usefixtures("evidence")``)."""
    page.errors.clear()
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        await page.screenshot(path=str(artifacts / f"FAILED-{request.node.name}.png"), full_page=True)
    assert not page.errors, f"script errors in the page: {page.errors}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Remember each phase's outcome on the item, so the page fixture can save a screenshot of a failure."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
