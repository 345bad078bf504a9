"""Summaries of a long chat (compaction) on the chat page: each shown where the API puts it, after
the last message it covers, as a collapsed block that opens from the keyboard, its text as text.

The fake upstream echoes what it is sent, so a summary repeats the transcript it summarizes: a
first message holding HTML puts that HTML into the summary.
"""

from __future__ import annotations

import time
from typing import Any

from playwright.sync_api import Page, expect

from harness.server_process import http
from tests.test_compaction import SMALL_WINDOW, filler
from tests.ui.pages import PHONE, Serve, shoot

HOSTILE = 'My name is Ada. <img src=x onerror="document.title=1"> Remember it.'


def entries(base: str, chat: str) -> list[dict[str, Any]]:
    answer = http("GET", f"{base}/{chat}/chat?include=summaries")
    assert answer.status == 200, answer.body
    items: list[dict[str, Any]] = answer.json()
    return items


def summaries(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [item for item in items if item.get("type") == "summary"]


def first_summary(base: str, chat: str) -> dict[str, Any]:
    """The chat's first summary, once it is made (in the background, after a turn)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = summaries(entries(base, chat))
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError("no summary was made")


def compacted_chat(serve: Serve, chat: str, turns: int) -> tuple[str, dict[str, Any]]:
    """A compacting server holding `chat`: HOSTILE, then `turns` more turns; its first summary."""
    base = serve(COMPACTION="summary", **SMALL_WINDOW)
    for text in [HOSTILE, *(filler(n) for n in range(1, turns + 1))]:
        answer = http("POST", f"{base}/{chat}/chat", {"content": text})
        assert answer.status == 200, answer.body
    return base, first_summary(base, chat)


def test_a_summary_is_a_collapsed_block_after_what_it_covers_shown_as_text(
    serve: Serve, page: Page
) -> None:
    base, summary = compacted_chat(serve, "long", 6)
    assert "<img src=x" in summary["content"]  # the echo carries the HTML into the summary
    covered = next(m for m in entries(base, "long") if m.get("id") == summary["covers"][1])

    page.goto(f"{base}/ui#chat=long")
    blocks = page.locator("#messages > li.summary-block")
    expect(blocks.first).to_be_visible()
    block = blocks.first
    text = block.locator(".summary-text")
    expect(block.get_by_text("Earlier conversation summarized")).to_be_visible()
    expect(text).to_be_hidden()  # collapsed
    expect(block.get_by_role("button")).to_have_count(0)  # no edit, regenerate or versions
    before = block.locator("xpath=preceding-sibling::li[1]")
    expect(before).to_have_attribute("data-role", covered["role"])
    expect(before.locator(":scope > .text")).to_contain_text(covered["content"][:40])

    block.locator("summary").focus()
    page.keyboard.press("Enter")
    expect(text).to_be_visible()
    expect(text).to_have_text(summary["content"])
    expect(text).to_contain_text('<img src=x onerror="document.title=1">')  # text, not HTML
    expect(page.locator("#messages img")).to_have_count(0)
    page.keyboard.press("Enter")
    expect(text).to_be_hidden()

    # The messages keep their controls: every reply answers the user message before it, a
    # summary between them or not.
    replies = page.locator("#messages > li.assistant")
    expect(page.get_by_role("button", name="Regenerate reply")).to_have_count(replies.count())
    shoot(page, "20-summary")


def test_a_message_sent_below_summaries_continues_the_path(serve: Serve, page: Page) -> None:
    base, _ = compacted_chat(serve, "long", 6)
    shown = entries(base, "long")
    page.goto(f"{base}/ui#chat=long")
    expect(page.locator("#messages > li.message")).to_have_count(len(shown) - len(summaries(shown)))

    page.get_by_label("Message", exact=True).fill("And what is my name?")
    page.keyboard.press("Enter")
    expect(page.locator("#messages li.assistant:not(.streaming)")).to_have_count(
        sum(1 for m in shown if m.get("role") == "assistant") + 1
    )
    path = http("GET", f"{base}/long/chat").json()
    newest = [m for m in shown if "id" in m][-1]
    assert path[-2]["content"] == "And what is my name?"
    assert path[-2]["parent"] == newest["id"]


def test_earlier_pages_bring_their_summaries(serve: Serve, phone: Page) -> None:
    """Past one page of messages, "Show earlier messages" brings the older ones with the
    summaries among them; it all fits a phone's width."""
    base, _ = compacted_chat(serve, "longer", 29)
    phone.goto(f"{base}/ui#chat=longer")
    messages = phone.locator("#messages > li.message")
    expect(messages).to_have_count(50)  # the newest page of messages, summaries besides
    phone.get_by_role("button", name="Show earlier messages").click()
    expect(messages).to_have_count(60)
    expect(messages.first).to_contain_text("My name is Ada.")
    expect(phone.get_by_role("button", name="Show earlier messages")).to_be_hidden()
    shown = phone.locator("#messages > li.summary-block")
    assert (
        1 <= shown.count() <= len(summaries(entries(base, "longer")))
    )  # made meanwhile: on the server, not yet here

    shown.first.locator("summary").click()
    expect(shown.first.locator(".summary-text")).to_be_visible()
    widths = phone.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1] == PHONE["width"], "the page scrolls sideways"
    shoot(phone, "21-summary-phone")


def test_stepping_back_to_a_branch_shows_its_summaries_again(serve: Serve, page: Page) -> None:
    """Another reply above a summary starts a branch without it; stepping back to the first
    reply shows its branch again, the summary after the message it covers."""
    base, summary = compacted_chat(serve, "long", 6)
    page.goto(f"{base}/ui#chat=long")
    block = page.locator("#messages > li.summary-block").first
    covered = block.locator("xpath=preceding-sibling::li[1]")
    expect(covered).to_have_attribute("data-role", "assistant")
    old_reply = covered.locator(":scope > .text").inner_text()
    covered.get_by_role("button", name="Regenerate reply").click()
    expect(page.locator("#messages li.assistant.streaming")).to_have_count(0)
    expect(page.locator("#messages > li.summary-block")).to_have_count(0)  # not on this branch
    regenerated = page.locator("#messages > li.assistant").last
    expect(regenerated.get_by_role("group", name="Version 2 of 2")).to_be_visible()

    regenerated.get_by_role("button", name="Previous version").click()
    again = page.locator("#messages > li.summary-block").first
    expect(again).to_be_visible()
    before = again.locator("xpath=preceding-sibling::li[1]")
    expect(before.get_by_role("group", name="Version 1 of 2")).to_be_visible()
    expect(before.locator(":scope > .text")).to_have_text(old_reply)
    expect(page.get_by_role("button", name="Previous version")).to_be_focused()
    assert http("GET", f"{base}/long/chat").json()[-1]["id"] > summary["covers"][1]
