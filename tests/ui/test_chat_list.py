"""The chat list in the side bar, and as a drawer over the chat on a phone: what it says of each
chat once a turn is stored, and how the keyboard gets into, through and out of it.

The fixtures (`tests/ui/conftest.py`) start the real server process with the fake upstream and
open the page in Debian's Chromium, driven by Playwright.
"""

from __future__ import annotations

import re

from playwright.sync_api import Page, Route, expect

from harness.fake_upstream import FakeUpstream
from harness.server_process import http
from tests.ui.pages import Serve, chat_id_of, send_and_watch


def test_the_list_counts_the_messages_a_trimmed_chat_holds_after_a_turn(
    serve: Serve, page: Page
) -> None:
    """MAX_CHAT_MESSAGES drops a chat's oldest messages at a save: the list says what is left,
    from the read the page makes after every turn, not from one more request."""
    base = serve(MAX_CHAT_MESSAGES="4")
    page.goto(base + "/ui")
    chats = page.get_by_role("navigation", name="Chats")
    send_and_watch(page, "First question")
    send_and_watch(page, "Second question")
    link = chats.get_by_role("button", name=re.compile("First question"))
    expect(link).to_contain_text("4 messages")
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url.removeprefix(base)))

    send_and_watch(page, "Third question")  # the first turn is dropped
    expect(link).to_contain_text("4 messages")
    with page.expect_response(re.compile(r"/children$")):
        page.locator("#messages > li").last.get_by_role("button", name="Regenerate reply").click()
    expect(page.locator("#messages li.streaming")).to_have_count(0)
    expect(link).to_contain_text("4 messages")  # one more reply, and one more dropped

    chat = chat_id_of(page)
    listed = http("GET", f"{base}/chats").json()["chats"]
    assert [(c["id"], c["messages"]) for c in listed] == [(chat, 4)]
    assert asked == [f"/{chat}/chat", f"/{chat}/children"] * 2  # a turn, and what it left


def open_chat_list(phone: Page, base: str, chat: str = "") -> None:
    """Open the page on a phone (at `chat`, if given) and the chat list over it, from the
    keyboard: the focus stays on the Chats button."""
    phone.goto(f"{base}/ui#chat={chat}" if chat else f"{base}/ui")
    expect(phone.get_by_label("Message", exact=True)).to_be_enabled()  # the page has started
    toggle = phone.get_by_role("button", name="Chats", exact=True)
    toggle.focus()
    phone.keyboard.press("Enter")
    expect(phone.get_by_role("navigation", name="Chats")).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "true")


def expect_closed(phone: Page) -> None:
    expect(phone.get_by_role("navigation", name="Chats")).to_be_hidden()
    toggle = phone.get_by_role("button", name="Chats", exact=True)
    expect(toggle).to_have_attribute("aria-expanded", "false")


def test_the_skip_link_closes_the_chat_list_over_the_chat_to_reach_the_message_box(
    serve: Serve, phone: Page
) -> None:
    open_chat_list(phone, serve())

    phone.keyboard.press("Shift+Tab")  # back from the Chats button to the page's first link
    expect(phone.get_by_role("link", name="Skip to the message box")).to_be_focused()
    phone.keyboard.press("Enter")

    expect_closed(phone)
    expect(phone.get_by_label("Message", exact=True)).to_be_focused()


def seed_chats(base: str, *chats: str) -> None:
    """Store a turn in each of `chats`, its message "Hello <chat>"."""
    for chat in chats:
        assert http("POST", f"{base}/{chat}/chat", {"content": f"Hello {chat}"}).status == 200


def test_a_chat_chosen_from_the_list_on_a_phone_leaves_the_focus_in_the_message_box(
    serve: Serve, phone: Page
) -> None:
    """The list closes over the chosen chat, and its button with it: the focus goes on to the
    message box, as after New chat, not to the page's start."""
    base = serve()
    seed_chats(base, "one", "two")
    open_chat_list(phone, base, "one")
    chats = phone.get_by_role("navigation", name="Chats")
    chats.get_by_role("button", name=re.compile("Hello two")).focus()

    phone.keyboard.press("Enter")

    expect_closed(phone)
    expect(phone.locator("#messages > li").first).to_have_text(re.compile("Hello two"))
    expect(phone.get_by_label("Message", exact=True)).to_be_focused()


def test_the_lists_button_keeps_the_focus_when_the_list_is_shown_again(
    serve: Serve, page: Page, fake_upstream: FakeUpstream
) -> None:
    """The list is drawn again when a chat is chosen or a turn is stored: the focus on one of
    its buttons stays on that chat's, not dropped to the page's start."""
    base = serve()
    seed_chats(base, "one", "two")
    page.goto(f"{base}/ui#chat=one")
    expect(page.locator("#messages > li")).to_have_count(2)
    chats = page.get_by_role("navigation", name="Chats")
    two = chats.get_by_role("button", name=re.compile("Hello two"))
    two.focus()

    page.keyboard.press("Enter")
    expect(page.locator("#messages > li").first).to_have_text(re.compile("Hello two"))
    expect(two).to_have_attribute("aria-current", "true")
    expect(two).to_be_focused()

    fake_upstream.reply_text = "A reply long enough to move to the list while it streams. " * 2
    page.get_by_label("Message", exact=True).fill("And again")
    page.keyboard.press("Enter")
    expect(page.locator("#messages li.assistant.streaming .text")).not_to_have_text("")
    one = chats.get_by_role("button", name=re.compile("Hello one"))
    one.focus()
    expect(two).to_contain_text("4 messages")  # stored, and the list drawn again
    expect(one).to_be_focused()


def test_older_chats_are_listed_once_and_the_focus_goes_on_to_them(
    serve: Serve, page: Page
) -> None:
    """A second press of "Show older chats" while a page comes asks for nothing; once none is
    left the button goes, and the focus to the first chat it brought, not to the page's start."""
    base = serve()
    seed_chats(base, *(f"c{n}" for n in range(21)))  # a page of 20, then one more
    page.goto(base + "/ui")
    listed = page.locator("#chat-list > li")
    expect(listed).to_have_count(20)
    held: list[Route] = []
    page.route("**/chats?*", lambda route: held.append(route))  # each page asked for waits
    older = page.get_by_role("button", name="Show older chats")
    older.focus()

    with page.expect_request("**/chats?*"):
        page.keyboard.press("Enter")
    page.keyboard.press("Enter")  # again, before the page has come
    held[0].continue_()

    expect(older).to_be_hidden()
    expect(listed).to_have_count(21)
    expect(page.get_by_role("button", name=re.compile("^Hello c0 "))).to_be_focused()
    assert len(held) == 1  # the second press asked for nothing


def test_escape_closes_the_chat_list_on_a_phone_from_the_top_bar_too(
    serve: Serve, phone: Page
) -> None:
    """The list is open with the focus still on its Chats button (or on the API key button):
    Escape closes it there too; in the API key dialog Escape closes only the dialog."""
    open_chat_list(phone, serve())
    toggle = phone.get_by_role("button", name="Chats", exact=True)

    phone.keyboard.press("Escape")
    expect_closed(phone)
    expect(toggle).to_be_focused()

    phone.keyboard.press("Enter")
    expect(phone.get_by_role("navigation", name="Chats")).to_be_visible()
    phone.get_by_role("button", name="API key").focus()
    phone.keyboard.press("Enter")
    dialog = phone.get_by_role("dialog", name="API key")
    expect(dialog).to_be_visible()
    phone.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(phone.get_by_role("navigation", name="Chats")).to_be_visible()
    phone.keyboard.press("Escape")  # back on the API key button
    expect_closed(phone)
    expect(phone.get_by_role("button", name="API key")).to_be_focused()
