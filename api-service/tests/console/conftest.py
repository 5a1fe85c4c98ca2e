"""Console fixtures: the real app on a loopback port with the shared demo snapshot and JWKS
fixtures (../conftest.py), and Debian's headless Chromium driven by Playwright.

`playwright install` is never called: it downloads browser builds from a CDN these machines
cannot reach. scripts/test.sh installs Debian's chromium (scripts/ensure-browser.sh); without a
browser these tests fail, they never skip.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from analytics_api.config import DEFAULT_WHITELIST
from analytics_api.main import create_app

from .live import LiveServer

ARTIFACTS = Path(__file__).resolve().parents[3] / "data" / "console-screenshots"  # gitignored (data/)
# The test whitelist puts `customers` behind an extra scope, so a token without it gets a 403.
PII_SCOPE = "read:pii"


def chromium_path() -> str:
    for candidate in (os.environ.get("CONSOLE_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail("no Chromium for the console browser tests: run scripts/ensure-browser.sh "
                "(apt-get install chromium) or set CONSOLE_CHROMIUM", pytrace=False)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def scoped_whitelist(tmp_path: Path) -> Path:
    document = json.loads(DEFAULT_WHITELIST.read_text())
    document["tables"]["customers"]["scope"] = PII_SCOPE
    path = tmp_path / "whitelist.json"
    path.write_text(json.dumps(document))
    return path


@pytest.fixture
def live(make_settings: Callable, scoped_whitelist: Path) -> Iterator[LiveServer]:
    settings = make_settings(query_whitelist_path=scoped_whitelist)
    with LiveServer(create_app(settings)) as server:
        yield server


@pytest.fixture
def full_token(token: Callable[..., str]) -> str:
    return token(f"read:analytics read:schema {PII_SCOPE}")


# Package scope, not session: Playwright's sync API keeps an asyncio loop running in this thread
# while it is open, and later tests elsewhere call asyncio.run(), which refuses a running loop.
@pytest.fixture(scope="package")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True,
                                             args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.csp_violations = []  # filled by console.js listeners below
    page.on("console", lambda msg: page.csp_violations.append(msg.text)
            if "Content Security Policy" in msg.text else None)
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    yield page
    context.close()
