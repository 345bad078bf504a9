"""The chat page at `/ui` in a real browser: chats, streaming, history, keys, errors, layout.

The fixtures (`tests/ui/conftest.py`) start the real server process with the fake upstream and
open the page in Debian's Chromium, driven by Playwright.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, Route, expect

from harness.fake_upstream import FakeUpstream, Fault
from harness.server_process import http
from tests.ui.pages import API_KEY, PHONE, Serve, chat_id_of, send_and_watch, shoot, stored


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


def test_a_saved_key_the_server_no_longer_takes_is_reported_when_the_page_opens(
    serve: Serve, page: Page
) -> None:
    base = serve(PROXY_API_KEYS=f"web={API_KEY}")
    page.goto(base + "/ui")
    page.evaluate("localStorage.setItem('chatproxy.apiKey', 'sk-revoked-key-0123456789')")
    page.reload()  # as when the key saved here was revoked since

    expect(page.get_by_role("dialog", name="API key")).to_be_hidden()  # a key is saved
    expect(page.get_by_label("Message", exact=True)).to_be_enabled()  # the page has started
    expect(page.get_by_role("alert")).to_contain_text("The server did not accept your API key")


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

    toggle = phone.get_by_role("button", name="Chats", exact=True)
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
    page.keyboard.press("Shift+Tab")  # back past the message box to the messages' controls
    expect(page.get_by_role("button", name="Regenerate reply")).to_be_focused()
    page.keyboard.press("Shift+Tab")
    expect(page.get_by_role("button", name="Edit message")).to_be_focused()
    page.keyboard.press("Shift+Tab")  # and to the chat's actions
    expect(page.get_by_role("button", name="Delete chat")).to_be_focused()
    shoot(page, "12-keyboard-focus")


def test_a_turn_that_ends_after_another_chat_was_opened_leaves_that_chat_as_it_is(
    serve: Serve, page: Page, fake_upstream: FakeUpstream
) -> None:
    base = serve()
    page.goto(base + "/ui")
    fake_upstream.reply_text = "A reply long enough to switch chats while it streams in. " * 2
    page.get_by_label("Message", exact=True).fill("Tell me something")
    page.keyboard.press("Enter")
    expect(page.locator("#messages li.assistant.streaming .text")).not_to_have_text("")
    first = chat_id_of(page)

    page.get_by_role("button", name="New chat").click()
    expect(page.locator("#messages li")).to_have_count(0)
    chats = page.get_by_role("navigation", name="Chats")
    expect(chats.get_by_role("button", name=re.compile("2 messages"))).to_be_visible()
    assert len(stored(base, first)) == 2  # the first chat's turn is done and stored

    # The new chat is not stored yet: nothing to delete or export.
    assert chat_id_of(page) != first
    expect(page.get_by_role("button", name="Delete chat")).to_be_disabled()
    expect(page.get_by_role("button", name="Export chat")).to_be_disabled()
    expect(page.get_by_role("heading", name="New chat")).to_be_visible()


def test_a_reply_still_streaming_when_its_chat_is_opened_again_is_shown_once_done(
    serve: Serve, page: Page, fake_upstream: FakeUpstream
) -> None:
    base = serve()
    page.goto(base + "/ui")
    send_and_watch(page, "First question")
    fake_upstream.reply_text = "A reply long enough to open the chat again while it streams. " * 2
    page.get_by_label("Message", exact=True).fill("Second question")
    page.keyboard.press("Enter")
    expect(page.locator("#messages li.assistant.streaming .text")).not_to_have_text("")

    chats = page.get_by_role("navigation", name="Chats")
    chats.get_by_role("button", name=re.compile("First question")).click()  # the open chat
    expect(chats.get_by_role("button", name=re.compile("4 messages"))).to_be_visible()
    chat = chat_id_of(page)
    assert len(stored(base, chat)) == 4  # the turn is done and stored

    expect(page.locator("#messages li")).to_have_count(4)  # and shown: the path as it is now
    assert [m.inner_text() for m in page.locator("#messages li .text").all()][2] == (
        "Second question"
    )
    send_and_watch(page, "Third question")
    assert stored(base, chat)[4] == ("user", "Third question")  # below the turn, not beside it


def test_an_error_with_a_long_address_fits_a_phone_screen(
    serve: Serve, phone: Page, fake_upstream: FakeUpstream
) -> None:
    base = serve()
    phone.goto(base + "/ui")
    address = "https://images.example.com/uploads/2026/12/a-very-long-file-name-for-a-phone.png"
    fake_upstream.script(  # as OpenAI words it, with an address wider than a phone
        Fault.error(400, f"Error while downloading {address}. Upstream status code: 404.")
    )
    phone.get_by_label("Message", exact=True).fill("Hello")
    phone.keyboard.press("Enter")

    alert = phone.get_by_role("alert")
    expect(alert).to_contain_text(address)
    widths = phone.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1] == PHONE["width"], "the page scrolls sideways"
    dismiss = alert.get_by_role("button", name="Dismiss").bounding_box()
    assert dismiss is not None
    assert dismiss["x"] + dismiss["width"] <= PHONE["width"]
    alert.get_by_role("button", name="Dismiss").click()
    expect(alert).to_be_hidden()
    expect(phone.get_by_label("Message", exact=True)).to_have_value("Hello")


def test_the_system_prompt_form_fits_a_phone_screen_with_a_long_default(
    serve: Serve, phone: Page
) -> None:
    address = "https://intranet.example.com/policies/support/AnsweringGuidelinesVersion3.html"
    base = serve(SYSTEM_PROMPT=f"Answer as our guidelines at {address} say.")
    phone.goto(base + "/ui")
    send_and_watch(phone, "Hello")
    phone.get_by_role("button", name="System prompt").click()

    expect(phone.locator("#system-source")).to_contain_text(address)
    widths = phone.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1] == PHONE["width"], "the page scrolls sideways"
    source = phone.locator("#system-source").evaluate("el => [el.scrollWidth, el.clientWidth]")
    assert source[0] <= source[1], "the default prompt runs out of its box"


def open_one_turn(page: Page, base: str, chat: str) -> str:
    """Store a turn of `chat` and open it on the page; return the server's URL."""
    assert http("POST", f"{base}/{chat}/chat", {"content": "Hello"}).status == 200
    page.goto(f"{base}/ui#chat={chat}")
    expect(page.locator("#messages > li")).to_have_count(2)
    return base


# Where the message list is scrolled: [top, the most it can be], and the bottom edge it shows at.
SCROLLED = """() => {
  const box = document.getElementById("messages").parentElement;
  return [box.scrollTop, box.scrollHeight - box.clientHeight, box.getBoundingClientRect().bottom];
}"""


def test_a_finished_reply_is_shown_whole_with_its_controls(serve: Serve, phone: Page) -> None:
    base = serve()
    for n in range(4):
        assert http("POST", f"{base}/tall/chat", {"content": f"Question {n}"}).status == 200
    phone.goto(base + "/ui#chat=tall")
    expect(phone.locator("#messages > li")).to_have_count(8)

    send_and_watch(phone, "One more")

    top, most, bottom = phone.evaluate(SCROLLED)
    assert top == most > 0  # still at the end, now that the reply has its controls
    regenerate = phone.locator("#messages > li").last.get_by_role("button", name="Regenerate")
    box = regenerate.bounding_box()
    assert box is not None
    assert box["y"] + box["height"] <= bottom


def test_a_reply_streaming_in_leaves_the_view_where_the_reader_scrolled(
    serve: Serve, phone: Page, fake_upstream: FakeUpstream
) -> None:
    base = serve()
    for n in range(4):
        assert http("POST", f"{base}/tall/chat", {"content": f"Question {n}"}).status == 200
    phone.goto(base + "/ui#chat=tall")
    expect(phone.locator("#messages > li")).to_have_count(8)
    fake_upstream.reply_text = "A long answer, word by word. " * 10
    phone.get_by_label("Message", exact=True).fill("Tell me at length")
    phone.keyboard.press("Enter")
    expect(phone.locator("#messages li.streaming .text")).not_to_have_text("")

    streaming = phone.evaluate("""() => {
      document.getElementById("messages").parentElement.scrollTop = 0;  // up, to read
      return document.querySelector("#messages li.streaming") !== null;
    }""")
    assert streaming
    expect(phone.locator("#messages li.assistant:not(.streaming)")).to_have_count(5, timeout=10_000)
    top, most, _ = phone.evaluate(SCROLLED)
    assert top == 0 < most  # not pulled back down as the reply grew
    expect(phone.locator("#messages > li").first).to_be_in_viewport()


def test_the_chats_actions_take_one_row_on_a_phone(serve: Serve, phone: Page) -> None:
    """Above the messages, which the on-screen keyboard leaves little room to, the chat's name
    and its actions take two rows, not three."""
    open_one_turn(phone, serve(), "narrow")

    names = ("System prompt", "Export chat", "Delete chat")
    boxes = [phone.get_by_role("button", name=name, exact=True).bounding_box() for name in names]
    assert all(boxes)
    assert len({box["y"] for box in boxes if box}) == 1, "the actions wrap"
    for box in boxes:
        assert box
        assert box["x"] >= 0
        assert box["x"] + box["width"] <= PHONE["width"]
        assert box["height"] >= 24, "too small a target for a finger"


def test_the_chat_list_open_on_a_phone_keeps_the_focus_out_of_the_chat_it_covers(
    serve: Serve, phone: Page
) -> None:
    open_one_turn(phone, serve(), "covered")
    in_chat = "() => document.activeElement.closest('#chat') !== null"

    toggle = phone.get_by_role("button", name="Chats", exact=True)
    toggle.focus()
    phone.keyboard.press("Enter")
    expect(phone.get_by_role("navigation", name="Chats")).to_be_visible()
    for _ in range(12):  # round the page and back: never onto what the list covers
        phone.keyboard.press("Tab")
        assert not phone.evaluate(in_chat), "the focus went behind the chat list"
    phone.keyboard.press("Escape")
    expect(toggle).to_be_focused()
    phone.get_by_role("button", name="System prompt").focus()
    assert phone.evaluate(in_chat)  # reachable again once the list is closed

    toggle.click()
    phone.set_viewport_size({"width": 1100, "height": 720})  # wide: the list is beside the chat
    # Closed by the page once it sees the change, an event that may come after the resize.
    expect(phone.locator("#toggle-chats")).to_have_attribute("aria-expanded", "false")
    phone.get_by_role("button", name="System prompt").focus()
    assert phone.evaluate(in_chat)


def test_earlier_messages_are_paged_in_from_the_keyboard_without_losing_the_focus(
    serve: Serve, page: Page
) -> None:
    base = serve()
    for n in range(55):
        assert http("POST", f"{base}/long/chat", {"content": f"message {n}"}).status == 200
    page.goto(base + "/ui#chat=long")
    messages = page.locator("#messages > li")
    expect(messages).to_have_count(50)
    earlier = page.get_by_role("button", name="Show earlier messages")
    earlier.focus()

    page.keyboard.press("Enter")
    expect(messages).to_have_count(100)
    expect(earlier).to_be_focused()  # to page on with Enter again
    page.keyboard.press("Enter")
    expect(messages).to_have_count(110)
    expect(earlier).to_be_hidden()  # none left: the focus goes to the oldest message
    expect(messages.first.get_by_role("button", name="Edit message")).to_be_focused()


def test_an_error_dismissed_from_the_keyboard_leaves_the_focus_in_the_message_box(
    serve: Serve, page: Page, fake_upstream: FakeUpstream
) -> None:
    base = serve()
    page.goto(base + "/ui")
    fake_upstream.script(Fault.error(500))
    page.get_by_label("Message", exact=True).fill("Hello")
    page.keyboard.press("Enter")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("The model provider is unavailable")

    alert.get_by_role("button", name="Dismiss").focus()
    page.keyboard.press("Enter")
    expect(alert).to_be_hidden()
    expect(page.get_by_label("Message", exact=True)).to_be_focused()  # not on a hidden button


def test_escape_closes_the_system_prompt_form_unsaved_as_cancel_does(
    serve: Serve, page: Page
) -> None:
    base = open_one_turn(page, serve(), "prompt")
    opener = page.get_by_role("button", name="System prompt")
    opener.focus()
    page.keyboard.press("Enter")
    box = page.get_by_label("System prompt for this chat")
    expect(box).to_be_focused()
    page.keyboard.type("Answer like a pirate.")

    page.keyboard.press("Escape")
    expect(box).to_be_hidden()
    expect(opener).to_be_focused()
    expect(opener).to_have_attribute("aria-expanded", "false")
    assert http("GET", f"{base}/prompt/system").json()["source"] == "global"  # nothing saved
