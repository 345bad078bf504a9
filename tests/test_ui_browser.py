"""The chat page at `/ui` in a real browser: Playwright driving Debian's Chromium.

Each test starts the real server process (SQLite store, the fake upstream streaming a word every
`CHUNK_DELAY` seconds so a reply visibly grows) and opens the page in a fresh browser context.
`scripts/ensure-chromium.sh` (run by `make test`) installs the browser; Playwright's own browser
downloads are not used. Screenshots of the main states go to `test-artifacts/ui/` (git-ignored).
A test fails on any script error or Content-Security-Policy violation in the page.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Route, expect, sync_playwright

from harness.fake_upstream import FakeUpstream, Fault
from harness.server_process import ROOT, StartServer, http, server_env

BROWSER = Path("/usr/bin/chromium")
BROWSER_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
ARTIFACTS = ROOT / "test-artifacts" / "ui"
DESKTOP = {"width": 1100, "height": 720}
PHONE = {"width": 375, "height": 740}
CHUNK_DELAY = 0.05  # seconds between streamed words: a reply takes about half a second
API_KEY = "sk-ui-good-key-0123456789"

Serve = Callable[..., str]

# Records every text the newest reply shows, so a test can tell a reply that grew word by word
# from one that appeared at once.
RECORD_REPLY_TEXTS = """() => {
  window.replyTexts = [];
  new MutationObserver(() => {
    const last = document.querySelector("#messages li.assistant:last-child .text");
    if (last) window.replyTexts.push(last.textContent);
  }).observe(document.getElementById("messages"),
             {subtree: true, childList: true, characterData: true});
}"""


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not BROWSER.exists():
        pytest.fail(f"the browser tests need Chromium at {BROWSER}: run scripts/ensure-chromium.sh")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(BROWSER), args=BROWSER_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def serve(start_server: StartServer, fake_upstream: FakeUpstream, tmp_path: Path) -> Serve:
    """`serve(**env) -> base URL`: the real server process with the fake upstream, streaming
    slowly enough to watch."""
    fake_upstream.chunk_delay = CHUNK_DELAY

    def start(**env: str) -> str:
        server = start_server(
            server_env(
                GPT_API_KEY="sk-test-proxy-key",
                OPENAI_BASE_URL=fake_upstream.base_url,
                UPSTREAM_MAX_RETRIES="0",
                STORE_PATH=str(tmp_path / "chats.sqlite3"),
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


def shoot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def chat_id_of(page: Page) -> str:
    match = re.search(r"#chat=([^&]+)", page.url)
    assert match, page.url
    return unquote(match.group(1))


def send_and_watch(page: Page, text: str, *, shot: str | None = None) -> str:
    """Send `text` with the Send button; return the reply once done, having seen it grow."""
    page.evaluate(RECORD_REPLY_TEXTS)
    done = page.locator("#messages li.assistant:not(.streaming)")
    replies_before = done.count()
    page.get_by_label("Message", exact=True).fill(text)
    page.get_by_role("button", name="Send").click()
    if shot:
        expect(page.locator("#messages li.assistant.streaming .text")).not_to_have_text("")
        shoot(page, shot)
    expect(done).to_have_count(replies_before + 1)
    reply = done.last.locator(".text").inner_text()
    seen: list[str] = page.evaluate("window.replyTexts")
    partial = [t for t in seen if t and t != reply and reply.startswith(t)]
    assert partial, f"the reply did not stream in: saw {seen!r}"
    return reply


def stored(base: str, chat_id: str, **headers: str) -> list[tuple[str, str]]:
    """The chat's messages as the server holds them: (role, content)."""
    answer = http("GET", f"{base}/{chat_id}/chat", headers=headers)
    assert answer.status == 200, answer.body
    return [(m["role"], m["content"]) for m in answer.json()]


# -- tests ------------------------------------------------------------------------------------


def test_chat_page_streams_replies_keeps_history_sets_the_prompt_and_deletes(
    serve: Serve, page: Page, fake_upstream: FakeUpstream
) -> None:
    base = serve()
    page.goto(base + "/ui")
    expect(page.get_by_role("heading", name="New chat")).to_be_visible()
    expect(page.get_by_text("No chats yet.")).to_be_visible()
    shoot(page, "1-empty")

    first = send_and_watch(page, "Hello there! What is Redis?", shot="2-replying")
    chat_link = page.get_by_role("navigation").get_by_role("button", name=re.compile("Hello"))
    expect(chat_link).to_contain_text("2 messages")  # listed as soon as its first turn is done
    second = send_and_watch(page, "And what is SQLite?")
    expect(chat_link).to_contain_text("4 messages")
    assert "You said: Hello there! What is Redis?" in first
    assert "You said: And what is SQLite?" in second
    chat_id = chat_id_of(page)
    assert stored(base, chat_id) == [
        ("user", "Hello there! What is Redis?"),
        ("assistant", first),
        ("user", "And what is SQLite?"),
        ("assistant", second),
    ]
    expect(page.get_by_role("heading", name="Hello there! What is Redis?")).to_be_visible()
    shoot(page, "3-chat")

    page.reload()
    messages = page.locator("#messages li")
    expect(messages).to_have_count(4)
    expect(messages.nth(0)).to_contain_text("Hello there! What is Redis?")
    expect(messages.nth(3)).to_contain_text(second)
    expect(chat_link).to_contain_text("4 messages")
    expect(chat_link).to_have_attribute("aria-current", "true")
    shoot(page, "4-history-after-reload")

    page.get_by_role("button", name="System prompt").click()
    page.get_by_label("System prompt for this chat").fill("Answer like a pirate.")
    shoot(page, "5-system-prompt")
    page.get_by_role("button", name="Save prompt").click()
    expect(page.locator("#chat-system")).to_have_text("System prompt: Answer like a pirate.")
    system = http("GET", f"{base}/{chat_id}/system").json()
    assert system == {"role": "system", "content": "Answer like a pirate.", "source": "chat"}
    send_and_watch(page, "Ahoy?")
    assert fake_upstream.chat_requests()[-1]["messages"][0] == {
        "role": "system",
        "content": "Answer like a pirate.",
    }

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete chat").click()
    expect(page.get_by_role("status")).to_have_text("Chat deleted.")
    expect(chat_link).to_have_count(0)
    expect(page.get_by_role("heading", name="New chat")).to_be_visible()
    assert stored(base, chat_id) == []
    shoot(page, "6-deleted")


def test_chat_page_pages_back_through_a_long_history(serve: Serve, page: Page) -> None:
    base = serve()
    for n in range(30):
        answer = http("POST", f"{base}/long/chat", {"content": f"message {n}"})
        assert answer.status == 200, answer.body

    page.goto(base + "/ui#chat=long")
    messages = page.locator("#messages li")
    expect(messages).to_have_count(50)  # the newest page
    expect(messages.first).to_contain_text("message 5")
    page.get_by_role("button", name="Show earlier messages").click()
    expect(messages).to_have_count(60)
    expect(messages.first).to_contain_text("message 0")
    expect(page.get_by_role("button", name="Show earlier messages")).to_be_hidden()


def test_a_message_typed_while_the_page_starts_is_sent_not_lost(serve: Serve, page: Page) -> None:
    """The chat list loads slowly: the message box waits for the chat to open, and the message
    sent then stays on the page and reaches the server."""
    base = serve()
    held: list[Route] = []
    # Hold the page's first request for the chat list; let any later one through.
    page.route("**/chats?*", lambda route: route.continue_() if held else held.append(route))

    page.goto(base + "/ui")
    box = page.get_by_label("Message", exact=True)
    expect(box).to_be_disabled()
    expect(page.get_by_role("button", name="Send")).to_be_disabled()
    for _ in range(100):  # the page asks for the list after the server's health
        if held:
            break
        page.wait_for_timeout(50)
    assert len(held) == 1, "the page did not ask for the chat list"
    expect(box).to_be_disabled()  # still: no chat is open while the list is held
    held[0].continue_()

    box.fill("typed early")
    page.keyboard.press("Enter")
    expect(page.locator("#messages li.assistant:not(.streaming)")).to_have_count(1)
    expect(page.locator("#messages li")).to_have_count(2)
    assert stored(base, chat_id_of(page))[0] == ("user", "typed early")


@pytest.mark.parametrize("linked", ["..", ".", "a%20b"])
def test_a_link_to_an_impossible_chat_id_opens_a_new_chat(
    serve: Serve, page: Page, fake_upstream: FakeUpstream, linked: str
) -> None:
    """`#chat=..` must not become `/../system` (the global prompt) in the page's requests."""
    base = serve()
    paths: list[str] = []
    page.on("request", lambda request: paths.append(request.url.removeprefix(base)))

    page.goto(f"{base}/ui#chat={linked}")
    page.get_by_label("Message", exact=True).fill("hello")
    page.keyboard.press("Enter")

    expect(page.locator("#messages li")).to_have_count(2)
    chat = page.evaluate("new URLSearchParams(location.hash.slice(1)).get('chat')")
    assert chat not in (".", "..", "a b")
    assert f"/{chat}/chat" in paths
    assert not any(path.startswith("/system") for path in paths)


def test_wrong_api_key_is_reported_and_a_good_one_is_kept(serve: Serve, page: Page) -> None:
    base = serve(PROXY_API_KEYS=f"web={API_KEY}")
    page.goto(base + "/ui")
    dialog = page.get_by_role("dialog", name="API key")
    expect(dialog).to_be_visible()  # the server needs a key and none is saved yet

    dialog.get_by_label("Key").fill("sk-not-the-key")
    shoot(page, "7-key-dialog")
    dialog.get_by_role("button", name="Save key").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("The server did not accept your API key")
    shoot(page, "8-unauthorized")

    page.get_by_role("button", name="API key").click()
    dialog.get_by_label("Key").fill(API_KEY)
    dialog.get_by_role("button", name="Save key").click()
    expect(alert).to_be_hidden()
    send_and_watch(page, "With the right key")
    assert stored(base, chat_id_of(page), **{"X-API-Key": API_KEY})[0] == (
        "user",
        "With the right key",
    )

    page.reload()  # the key is kept in the browser
    expect(dialog).to_be_hidden()
    expect(page.locator("#messages li")).to_have_count(2)


def test_rate_limited_send_is_reported_and_the_text_kept(
    serve: Serve, page: Page, fake_upstream: FakeUpstream
) -> None:
    base = serve(RATE_LIMIT="2/minute")  # the chat list, then one turn
    page.goto(base + "/ui")
    send_and_watch(page, "one")

    page.get_by_label("Message", exact=True).fill("two")
    page.get_by_label("Message", exact=True).press("Enter")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Too many requests")
    expect(alert).to_contain_text(re.compile(r"Try again in \d+ seconds"))
    expect(page.get_by_label("Message", exact=True)).to_have_value("two")  # ready to send again
    expect(page.locator("#messages li")).to_have_count(2)  # the refused turn is not shown
    assert len(fake_upstream.chat_requests()) == 1  # refused before the model was asked
    shoot(page, "9-rate-limited")


@pytest.mark.parametrize("when", ["before-the-reply", "mid-reply"])
def test_upstream_failure_is_reported_and_the_text_kept(
    serve: Serve, page: Page, fake_upstream: FakeUpstream, when: str
) -> None:
    base = serve()
    page.goto(base + "/ui")
    if when == "before-the-reply":
        fake_upstream.script(Fault.error(500))
    else:
        fake_upstream.cut_stream_after = 3
    page.get_by_label("Message", exact=True).fill("Are you there?")
    page.get_by_label("Message", exact=True).press("Enter")

    expect(page.get_by_role("alert")).to_contain_text("The model provider is unavailable")
    expect(page.get_by_label("Message", exact=True)).to_have_value("Are you there?")
    expect(page.locator("#messages li")).to_have_count(0)  # nothing was stored
    assert stored(base, chat_id_of(page)) == []
    shoot(page, f"13-upstream-down-{when}")


def test_chat_page_fits_a_phone_screen(serve: Serve, phone: Page) -> None:
    base = serve()
    phone.goto(base + "/ui")
    send_and_watch(phone, "Does this fit on a phone? " + "A long line of words " * 5)

    widths = phone.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1] == PHONE["width"], "the page scrolls sideways"
    for target in (
        phone.get_by_label("Message", exact=True),
        phone.get_by_role("button", name="Send"),
    ):
        box = target.bounding_box()
        assert box is not None
        assert box["x"] >= 0
        assert box["x"] + box["width"] <= PHONE["width"]
        assert box["y"] + box["height"] <= PHONE["height"]
    chats = phone.get_by_role("navigation", name="Chats")
    expect(chats).to_be_hidden()
    shoot(phone, "10-phone")

    toggle = phone.get_by_role("button", name="Chats")
    toggle.click()
    expect(chats).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(chats.get_by_role("button", name=re.compile("Does this fit"))).to_be_visible()
    shoot(phone, "11-phone-chats")
    chats.get_by_role("button", name="New chat").click()
    expect(chats).to_be_hidden()
    expect(phone.get_by_label("Message", exact=True)).to_be_focused()


def test_chat_page_works_from_the_keyboard_alone(serve: Serve, page: Page) -> None:
    base = serve()
    page.goto(base + "/ui")
    expect(page.get_by_text("No chats yet.")).to_be_visible()

    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to the message box")).to_be_focused()
    page.keyboard.press("Enter")
    box = page.get_by_label("Message", exact=True)
    expect(box).to_be_focused()
    page.keyboard.type("line one")
    page.keyboard.press("Shift+Enter")  # a new line, not a send
    page.keyboard.type("line two")
    expect(box).to_have_value("line one\nline two")
    page.keyboard.press("Enter")
    expect(page.locator("#messages li.assistant:not(.streaming)")).to_have_count(1)
    expect(box).to_have_value("")
    assert stored(base, chat_id_of(page))[0] == ("user", "line one\nline two")

    page.keyboard.press("Tab")  # from the message box to its Send button
    send = page.get_by_role("button", name="Send")
    expect(send).to_be_focused()
    outline = send.evaluate("el => getComputedStyle(el).outlineStyle")
    assert outline == "solid", "keyboard focus must be visible"

    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")  # back past the message box to the chat's actions
    expect(page.get_by_role("button", name="Delete chat")).to_be_focused()
    shoot(page, "12-keyboard-focus")


def test_page_is_served_with_a_strict_policy_and_cache_headers(serve: Serve) -> None:
    base = serve()
    page = http("GET", base + "/ui")
    assert page.status == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert page.headers["Cache-Control"] == "no-cache"
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self';" in policy
    assert "style-src 'self';" in policy
    assert "unsafe-inline" not in policy
    html = page.body.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "an inline script"
    assert "<style" not in html
    assert " style=" not in html
    assert "//" not in re.sub(r"https?://www\.w3\.org", "", html), "an outside address"

    again = http("GET", base + "/ui", headers={"If-None-Match": page.headers["ETag"]})
    assert again.status == 304

    kinds = {"app.js": "text/javascript", "style.css": "text/css", "icon.svg": "image/svg+xml"}
    for name, kind in kinds.items():
        link = re.search(rf'"(ui/{re.escape(name)}\?v=\w+)"', html)
        assert link, f"the page does not link {name} with its version"
        asset = http("GET", f"{base}/{link.group(1)}")
        assert asset.status == 200
        assert asset.headers.get_content_type() == kind
        assert asset.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert asset.headers["X-Content-Type-Options"] == "nosniff"
        unversioned = http("GET", f"{base}/ui/{name}")
        assert unversioned.headers["Cache-Control"] == "no-cache"

    script = http("GET", base + "/ui/app.js").body.decode()
    assert "innerHTML" not in script
    assert "insertAdjacentHTML" not in script

    slash = http("GET", base + "/ui/")  # redirected to /ui, where the page's links work
    assert (slash.status, slash.body) == (200, html.encode())
    assert http("GET", base + "/ui/chat").json() == []  # a chat may still be called "ui"
