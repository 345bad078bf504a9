"""What the browser tests share: sizes, the API key, and helpers that drive or read the page.

Screenshots of the main states go to `test-artifacts/ui/` (git-ignored).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import unquote

from playwright.sync_api import Page, expect

from harness.server_process import ROOT, http

ARTIFACTS = ROOT / "test-artifacts" / "ui"
DESKTOP = {"width": 1100, "height": 720}
PHONE = {"width": 375, "height": 740}
API_KEY = "sk-ui-good-key-0123456789"

Serve = Callable[..., str]

# Records every text the newest reply shows, so a test can tell a reply that grew word by word
# from one that appeared at once (trimmed: rendered Markdown ends its blocks with a line break).
RECORD_REPLY_TEXTS = """() => {
  window.replyTexts = [];
  new MutationObserver(() => {
    const last = document.querySelector("#messages li.assistant:last-child .text");
    if (last) window.replyTexts.push(last.textContent.trim());
  }).observe(document.getElementById("messages"),
             {subtree: true, childList: true, characterData: true});
}"""


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
