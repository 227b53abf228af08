"""The web console in a real browser: Playwright for Python driving Debian's Chromium
(`/usr/bin/chromium`, installed by `make test-browser`; nothing is downloaded at run time) against
a real `memcube serve` with API keys on (tests/e2e's `Server`). Screenshots of each page are
written to docs/console/ (README shows them)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.e2e.conftest import MEMCUBE, Server

CHROMIUM = Path(os.environ.get("MEMCUBE_CHROMIUM", "/usr/bin/chromium"))
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"


@dataclass(frozen=True)
class Console:
    server: Server
    keys: dict[str, str]
    """Each user's API key (`root` has an admin key)."""

    @property
    def url(self) -> str:
        return f"{self.server.url}/console"

    def headers(self, user: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.keys[user]}"}


def create_key(data_dir: Path, user: str, scope: str = "user") -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMCUBE_")}
    cmd = [str(MEMCUBE), "keys", "create", "--data-dir", str(data_dir), "--user", user, "--scope", scope]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True, timeout=60)
    return done.stdout.strip()


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    data = tmp_path / "data"
    keys = {user: create_key(data, user) for user in ("alice", "bob", "carol")}
    keys["root"] = create_key(data, "root", "admin")
    server = Server(data, 2, tmp_path / "serve.log", {"MEMCUBE_AUTH": "keys"}).wait_healthy()
    server.http.headers["authorization"] = f"Bearer {keys['root']}"  # the helpers' reads: an admin's
    try:
        yield Console(server, keys)
    finally:
        server.stop(grace=5.0)


@pytest.fixture
def browser() -> Iterator[Browser]:
    """Per test: sync Playwright runs an event loop in this thread while it is open, which every
    later test that runs its own (the TestClient, Mangum) would find already running."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test-browser` installs Debian's chromium")
    with sync_playwright() as playwright:
        # --no-sandbox: Chromium's sandbox refuses to start as root (CI runs as root).
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda exc: problems.append(f"uncaught: {exc}"))
    opened.on(
        "console",
        lambda m: problems.append(m.text) if m.type == "error" and "Content Security Policy" in m.text else None,
    )
    opened.set_default_timeout(15_000)
    yield opened
    context.close()
    assert problems == [], problems  # no script error, no CSP violation on any page


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def sign_in(page: Page, console: Console, user: str) -> None:
    page.goto(console.url)
    page.get_by_label("API key").fill(console.keys[user])
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Cubes").wait_for()
