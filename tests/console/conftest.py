"""Fixtures for the console's browser tests: the running system and a headless Debian chromium."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Remember each phase's outcome on the item, so the page fixture can save a screenshot of a failure."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
