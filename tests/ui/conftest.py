"""The browser tests' fixtures: Debian's Chromium driven by Playwright, and the real server process.

Each test starts the real server process (SQLite store, the fake upstream streaming a word every
`CHUNK_DELAY` seconds so a reply visibly grows) and opens the page in a fresh browser context.
`scripts/ensure-chromium.sh` (run by `make test`) installs the browser; Playwright's own browser
downloads are not used. A test fails on any script error or Content-Security-Policy violation
in the page.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from harness.fake_upstream import FakeUpstream
from harness.server_process import StartServer, server_env
from tests.ui.pages import DESKTOP, PHONE, Serve

BROWSER = Path("/usr/bin/chromium")
BROWSER_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
CHUNK_DELAY = 0.05  # seconds between streamed words: a reply takes about half a second


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not BROWSER.exists():
        pytest.fail(f"the browser tests need Chromium at {BROWSER}: run scripts/ensure-chromium.sh")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(BROWSER), args=BROWSER_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    """The SQLite file the server process keeps its chats in."""
    return tmp_path / "chats.sqlite3"


@pytest.fixture
def serve(start_server: StartServer, fake_upstream: FakeUpstream, store_path: Path) -> Serve:
    """`serve(**env) -> base URL`: the real server process with the fake upstream, streaming
    slowly enough to watch."""
    fake_upstream.chunk_delay = CHUNK_DELAY

    def start(**env: str) -> str:
        server = start_server(
            server_env(
                GPT_API_KEY="sk-test-proxy-key",
                OPENAI_BASE_URL=fake_upstream.base_url,
                UPSTREAM_MAX_RETRIES="0",
                STORE_PATH=str(store_path),
                **env,
            )
        )
        return server.url

    return start


def open_page(browser: Browser, viewport: dict[str, int]) -> Iterator[Page]:
    """A page in a fresh context; fail the test on script errors or CSP violations."""
    context = browser.new_context(viewport=viewport)  # type: ignore[arg-type]
    page = context.new_page()
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        # Chromium logs every 4xx/5xx answer as "Failed to load resource": tests cause those.
        if message.type == "error" and "Failed to load resource" not in message.text:
            problems.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))
    yield page
    context.close()
    assert problems == [], "the page reported errors"


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    yield from open_page(browser, DESKTOP)


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    yield from open_page(browser, PHONE)
