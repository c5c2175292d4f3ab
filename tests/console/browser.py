"""What the console's browser tests share: the tenant, the spec's colours and texts, and steps on the pages."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from tests.support import auth_headers

TENANT = "acme"
# Tailwind's palette: the badge dots (500) and backgrounds (100) of the spec's colours.
DOT = {
    "zinc": "rgb(113, 113, 122)",
    "amber": "rgb(245, 158, 11)",
    "sky": "rgb(14, 165, 233)",
    "emerald": "rgb(16, 185, 129)",
    "red": "rgb(239, 68, 68)",
}
BACKGROUND = {
    "zinc": "rgb(244, 244, 245)",
    "amber": "rgb(254, 243, 199)",
    "sky": "rgb(224, 242, 254)",
    "emerald": "rgb(209, 250, 229)",
    "red": "rgb(254, 226, 226)",
}
TRAIN_MESSAGE = (
    "Are you sure you want to start the training process for {name}? This process may take a long "
    "time to complete and it will use your credits, and you will not be able to modify the custom "
    "model until it is finished."
)


async def eventually(request: Any, check: Any, timeout: float = 30.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        answer = await request()
        if check(answer):
            return answer
        assert asyncio.get_running_loop().time() < deadline, f"not within {timeout}s: {answer.text[:300]}"
        await asyncio.sleep(0.2)


async def shot(page: Any, artifacts: Path, name: str, full_page: bool = True) -> None:
    await page.screenshot(path=str(artifacts / f"{name}.png"), full_page=full_page)


async def status_of(page: Any) -> int:
    return int(await page.get_attribute("#model-status .badge", "data-status"))


async def badge_colours(page: Any, selector: str) -> tuple[str, str, str]:
    """The badge's name and colours; a live update may swap the element while it is read, so read again."""
    for _ in range(50):
        got = tuple(
            await page.eval_on_selector(
                selector,
                """(b) => b.isConnected ? [b.dataset.badge,
            getComputedStyle(b).backgroundColor, getComputedStyle(b.querySelector('.dot')).backgroundColor] : []""",
            )
        )
        if len(got) == 3 and all(got):
            return got
        await page.wait_for_timeout(100)
    return got


async def create_model(page: Any, name: str, auto_train: bool = True) -> str:
    await page.click("#new-model")
    await page.fill("#cm-name", name)
    if not auto_train:
        await page.uncheck("#cm-auto-train")
    await page.get_by_role("button", name="Create").click()
    await page.wait_for_selector(f"#model-title:text-is('{name}')")
    return page.url.rsplit("/", 1)[-1]


async def open_models(page: Any) -> None:
    await page.click("nav[aria-label=Main] >> text=Custom Models")
    await page.wait_for_selector("#models-body tr")


async def sign_in(page: Any, system: Any) -> str:
    """Sign in with a new API key of :data:`TENANT` (made through the identity API); returns the subject of
    the page's tokens (``key:<id>``: who the APIs record as acting)."""
    async with httpx.AsyncClient(base_url=system.urls["identity"]) as c:
        r = await c.post("/v1/api-keys", json={"label": "console"}, headers=auth_headers(TENANT))
        assert r.status_code == 201, r.text
    await page.goto(system.console_url)
    await page.fill("#api-key", r.json()["key"])
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_selector("#models-table")
    await page.wait_for_selector("#live-indicator[data-state=open]")
    return f"key:{r.json()['id']}"
