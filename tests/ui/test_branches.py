"""Branches on the chat page: editing a message, regenerating a reply, stepping between versions.

A chat is a tree; the page shows one path through it. Each check reads what the page shows,
what the server holds (`GET /<chat_id>/chat`, the path to the chat's current leaf) and what the
fake upstream was sent: only the path of the branch, never a sibling.
"""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Locator, Page, expect

from chatproxy.store.items import Message
from harness.fake_upstream import FakeUpstream, Fault
from harness.server_process import http
from tests.ui.pages import PHONE, RECORD_REPLY_TEXTS, Serve, send_and_watch, shoot, stored
from tests.ui.test_replies import store_chat

# The texts each message of the list shows, with its role: [("user", "A"), ("assistant", …)].
SHOWN = """() => Array.from(document.querySelectorAll("#messages > li"),
  (li) => [li.dataset.role, li.querySelector(":scope > .text").textContent.trim()])"""


GONE_NOTE = "No longer in this chat: it keeps only its newest messages."


# Records whether the first two messages shown ever offer a control that acts (not one marked
# disabled while a reply streams in) from the next change of the list on.
RECORD_FIRST_TWO_USABLE = """() => {
  window.firstTwoUsable = false;
  const usable = '#messages > li:nth-child(-n+2) .actions button:not([aria-disabled="true"])';
  new MutationObserver(() => {
    if (document.querySelector(usable)) window.firstTwoUsable = true;
  }).observe(document.getElementById("messages"), {subtree: true, childList: true,
                                                     attributes: true});
}"""


def said(text: str, earlier: int) -> str:
    """The fake upstream's reply to `text` with `earlier` messages before it on the path."""
    return f"[dev upstream] You said: {text}. (I can see {earlier} earlier messages.)"


def seed(base: str, chat: str, *texts: str) -> None:
    """Store a turn for each text, one after the other."""
    for text in texts:
        answer = http("POST", f"{base}/{chat}/chat", {"content": text})
        assert answer.status == 200, answer.body


def open_seeded(page: Page, base: str, chat: str, *texts: str) -> list[tuple[str, str]]:
    """Store a turn for each text, open the chat on the page; return its path as stored."""
    seed(base, chat, *texts)
    path = stored(base, chat)
    page.goto(f"{base}/ui#chat={chat}")
    expect(messages(page)).to_have_count(len(path))
    return path


def open_with_another_reply(page: Page, base: str, chat: str) -> None:
    """Store a turn and another reply to its message (items 0, 1 and 2, beside 1), and open the
    chat on the page."""
    seed(base, chat, "Plan a trip")
    answer = http("POST", f"{base}/{chat}/chat", {"parent": 0})
    assert answer.status == 200, answer.body
    open_seeded(page, base, chat)


def shown(page: Page) -> list[tuple[str, str]]:
    return [(role, text) for role, text in page.evaluate(SHOWN)]


def messages(page: Page) -> Locator:
    return page.locator("#messages > li")


def versions(item: Locator, at: int, of: int) -> Locator:
    """The message's versions group ("< at/of >"), checked to be there."""
    group = item.get_by_role("group", name=f"Version {at} of {of}")
    expect(group).to_be_visible()
    expect(group).to_contain_text(f"{at}/{of}")
    return group


def upstream_saw(fake_upstream: FakeUpstream) -> list[tuple[str, str]]:
    """The messages of the last request the model got."""
    return [(m["role"], m["content"]) for m in fake_upstream.chat_requests()[-1]["messages"]]


def test_editing_a_middle_message_starts_a_branch_and_the_old_one_stays_a_step_away(
    serve: Serve, page: Page, fake_upstream: FakeUpstream
) -> None:
    base = serve()
    old_path = open_seeded(page, base, "trip", "Plan a trip", "Somewhere warm", "Three days")
    expect(messages(page).get_by_role("group")).to_have_count(0)  # one version of each

    middle = messages(page).nth(2)
    middle.get_by_role("button", name="Edit message").click()
    box = middle.get_by_label("Edited message")
    expect(box).to_be_focused()
    expect(box).to_have_value("Somewhere warm")
    box.fill("Somewhere cold")
    page.evaluate(RECORD_REPLY_TEXTS)
    middle.get_by_role("button", name="Save").click()

    reply = said("Somewhere cold", 2)
    expect(page.locator("#messages li.assistant:not(.streaming)")).to_have_count(2)
    assert shown(page) == [*old_path[:2], ("user", "Somewhere cold"), ("assistant", reply)]
    seen: list[str] = page.evaluate("window.replyTexts")
    assert [t for t in seen if t and t != reply and reply.startswith(t)], "it did not stream in"
    edited = messages(page).nth(2)
    versions(edited, 2, 2)
    expect(edited.get_by_role("button", name="Edit message")).to_be_focused()
    # The model got the new branch's path only: not the old message, nor what followed it.
    assert upstream_saw(fake_upstream) == [*old_path[:2], ("user", "Somewhere cold")]
    assert stored(base, "trip") == shown(page)  # the new reply is the chat's leaf
    shoot(page, "18-edited")

    edited.get_by_role("button", name="Previous version").click()
    expect(messages(page)).to_have_count(6)  # the old branch, down to its last reply
    assert shown(page) == old_path
    versions(messages(page).nth(2), 1, 2)
    expect(page.get_by_role("status")).to_have_text("Showing version 1 of 2.")
    assert stored(base, "trip") == old_path  # and it is the chat's current branch again

    messages(page).nth(2).get_by_role("button", name="Next version").click()
    expect(messages(page)).to_have_count(4)
    assert shown(page) == stored(base, "trip")
    page.reload()  # the branch shown is the one the chat continues from
    expect(messages(page)).to_have_count(4)
    versions(messages(page).nth(2), 2, 2)

    page.get_by_label("Message", exact=True).fill("Which coat?")
    page.keyboard.press("Enter")
    expect(messages(page)).to_have_count(6)
    expect(page.locator("#messages li.assistant:not(.streaming)")).to_have_count(3)
    assert upstream_saw(fake_upstream) == [*shown(page)[:4], ("user", "Which coat?")]
    assert len(fake_upstream.chat_requests()) == 5


def test_regenerating_a_reply_puts_a_new_one_beside_it(
    serve: Serve, page: Page, fake_upstream: FakeUpstream
) -> None:
    base = serve()
    old_path = open_seeded(page, base, "colours", "Name a colour", "Another one")
    users = page.locator("#messages li.user")
    expect(users.get_by_role("button", name="Regenerate reply")).to_have_count(0)

    fake_upstream.reply_text = "Teal, **surely**."
    first_reply = messages(page).nth(1)
    first_reply.get_by_role("button", name="Regenerate reply").click()
    expect(messages(page)).to_have_count(2)  # the new reply ends the branch: nothing below it
    fresh = messages(page).nth(1)
    expect(fresh.locator("strong")).to_have_text("surely")
    versions(fresh, 2, 2)
    expect(fresh.get_by_role("button", name="Regenerate reply")).to_be_focused()
    assert upstream_saw(fake_upstream) == [old_path[0]]  # the path to the question, no more
    assert stored(base, "colours") == [old_path[0], ("assistant", "Teal, **surely**.")]

    fresh.get_by_role("button", name="Regenerate reply").click()
    expect(messages(page).nth(1).get_by_role("group", name="Version 3 of 3")).to_be_visible()
    messages(page).nth(1).get_by_role("button", name="Previous version").click()
    versions(messages(page).nth(1), 2, 3)
    messages(page).nth(1).get_by_role("button", name="Previous version").click()
    versions(messages(page).nth(1), 1, 3)
    expect(messages(page)).to_have_count(4)  # the first reply, with the turn after it
    assert shown(page) == old_path
    assert len(fake_upstream.chat_requests()) == 4


def test_versions_are_stepped_and_messages_edited_from_the_keyboard(
    serve: Serve, page: Page, fake_upstream: FakeUpstream
) -> None:
    base = serve()
    open_seeded(page, base, "keys", "First question", "Second question")

    edit = messages(page).first.get_by_role("button", name="Edit message")
    edit.focus()
    page.keyboard.press("Enter")
    box = page.get_by_label("Edited message")
    expect(box).to_be_focused()
    page.keyboard.type(" changed")
    page.keyboard.press("Escape")  # cancelled: nothing sent, the text as it was
    expect(box).to_have_count(0)
    expect(edit).to_be_focused()
    expect(messages(page).first.locator(".text")).to_have_text("First question")
    assert len(fake_upstream.chat_requests()) == 2

    page.keyboard.press("Enter")
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.type("A new first question")
    page.keyboard.press("Shift+Enter")  # a new line, as in the message box
    page.keyboard.type("on two lines")
    page.keyboard.press("Enter")  # saved: the first message's edit starts a new path
    expect(messages(page)).to_have_count(2)
    expect(page.locator("#messages li.assistant:not(.streaming)")).to_have_count(1)
    assert upstream_saw(fake_upstream) == [("user", "A new first question\non two lines")]
    first = messages(page).first
    versions(first, 2, 2)
    expect(first.get_by_role("button", name="Edit message")).to_be_focused()

    first.get_by_role("button", name="Previous version").focus()
    page.keyboard.press("Enter")
    expect(messages(page)).to_have_count(4)
    versions(messages(page).first, 1, 2)
    previous = messages(page).first.get_by_role("button", name="Previous version")
    expect(previous).to_be_focused()  # kept on the control, now at the first version
    expect(previous).to_be_disabled()
    assert previous.evaluate("el => getComputedStyle(el).outlineStyle") == "solid"
    shoot(page, "19-keyboard-versions")
    page.keyboard.press("Enter")  # no version before the first: nothing changes
    page.keyboard.press("Tab")
    following = messages(page).first.get_by_role("button", name="Next version")
    expect(following).to_be_focused()
    page.keyboard.press("Enter")
    expect(messages(page)).to_have_count(2)
    versions(messages(page).first, 2, 2)
    expect(messages(page).first.get_by_role("button", name="Next version")).to_be_focused()
    assert len(fake_upstream.chat_requests()) == 3


def test_stepping_to_a_version_with_a_long_branch_below_shows_all_of_it(
    serve: Serve, page: Page
) -> None:
    base = serve()
    seed(base, "long", *(f"message {n}" for n in range(30)))
    http("POST", f"{base}/long/chat", {"parent": 0})  # another first reply: the chat's leaf
    page.goto(base + "/ui#chat=long")
    expect(messages(page)).to_have_count(2)

    messages(page).nth(1).get_by_role("button", name="Previous version").click()
    expect(messages(page)).to_have_count(60)  # more than a page: read back until it is in
    assert shown(page) == stored(base, "long")
    versions(messages(page).nth(1), 1, 2)
    expect(page.get_by_role("button", name="Show earlier messages")).to_be_hidden()


def test_an_edit_that_fails_leaves_the_branch_as_it_was(
    serve: Serve, page: Page, fake_upstream: FakeUpstream
) -> None:
    base = serve()
    old_path = open_seeded(page, base, "fails", "One", "Two")
    fake_upstream.script(Fault.error(500))

    messages(page).nth(2).get_by_role("button", name="Edit message").click()
    page.get_by_label("Edited message").fill("Two, edited")
    page.keyboard.press("Enter")

    expect(page.get_by_role("alert")).to_contain_text("The model provider is unavailable")
    assert shown(page) == old_path
    expect(page.get_by_label("Edited message")).to_have_value("Two, edited")  # to save again
    expect(page.get_by_label("Edited message")).to_be_focused()
    assert stored(base, "fails") == old_path
    children = http("GET", f"{base}/fails/children?parent=1").json()
    assert children["children"] == [2]  # nothing was stored


def test_branch_controls_fit_a_phone_screen(
    serve: Serve, phone: Page, fake_upstream: FakeUpstream
) -> None:
    base = serve()
    seed(base, "narrow", "A question that is long enough to wrap on a phone screen, " * 2)
    http("POST", f"{base}/narrow/chat", {"parent": 0})  # another reply
    http("POST", f"{base}/narrow/chat", {"content": "An edit of the first", "parent": None})
    http("POST", f"{base}/narrow/leaf", {"id": 0, "descend": True})
    phone.goto(base + "/ui#chat=narrow")
    expect(messages(phone)).to_have_count(2)
    versions(messages(phone).first, 1, 2)
    versions(messages(phone).last, 2, 2)

    def fits() -> None:
        widths = phone.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1] == PHONE["width"], "the page scrolls sideways"
        for control in phone.locator("#messages :is(button, textarea):visible").all():
            box = control.bounding_box()
            assert box is not None
            assert box["x"] >= 0
            assert box["x"] + box["width"] <= PHONE["width"]
            assert box["height"] >= 24, "too small a target for a finger"

    fits()
    shoot(phone, "20-phone-versions")
    messages(phone).first.get_by_role("button", name="Edit message").click()
    expect(phone.get_by_label("Edited message")).to_be_visible()
    fits()
    shoot(phone, "21-phone-editing")
    phone.get_by_role("button", name="Cancel").click()
    expect(phone.get_by_label("Edited message")).to_have_count(0)
    messages(phone).first.get_by_role("button", name="Next version").click()
    expect(messages(phone).first.locator(".text")).to_have_text("An edit of the first")
    expect(messages(phone).nth(1)).to_contain_text(re.compile("You said: An edit"))
    fits()


def test_a_trimmed_chats_first_message_steps_to_its_other_versions(
    serve: Serve, page: Page
) -> None:
    base = serve(MAX_CHAT_MESSAGES="4")
    seed(base, "trimmed", "Plan a trip", "Somewhere warm")
    old_path = stored(base, "trimmed")
    answer = http("POST", f"{base}/trimmed/chat", {"content": "Somewhere cold", "parent": 1})
    assert answer.status == 200, answer.body  # items 0 and 1 are dropped: two paths start now
    page.goto(f"{base}/ui#chat=trimmed")
    expect(messages(page)).to_have_count(2)

    versions(messages(page).first, 2, 2).get_by_role("button", name="Previous version").click()

    expect(messages(page).first).to_contain_text("Somewhere warm")
    versions(messages(page).first, 1, 2)
    assert shown(page) == stored(base, "trimmed") == old_path[2:]


def test_editing_a_trimmed_chats_oldest_message_adds_a_version_of_it(
    serve: Serve, page: Page, fake_upstream: FakeUpstream
) -> None:
    base = serve(MAX_CHAT_MESSAGES="4")
    seed(base, "trimmed", "Plan a trip", "Somewhere warm", "Three days")  # 0 and 1 are dropped
    old_path = open_seeded(page, base, "trimmed")
    expect(page.get_by_role("button", name="Show earlier messages")).to_be_hidden()  # none left
    oldest = messages(page).first
    oldest.get_by_role("button", name="Edit message").click()
    page.get_by_label("Edited message").fill("Somewhere cold")
    page.keyboard.press("Enter")

    expect(page.locator("#messages li.assistant:not(.streaming)")).to_have_count(1)
    expect(page.get_by_role("alert")).to_be_hidden()
    # A first message's edit starts a new path (`"parent": null`), not one under a dropped id.
    assert upstream_saw(fake_upstream) == [("user", "Somewhere cold")]
    assert shown(page) == stored(base, "trimmed")
    assert shown(page) == [("user", "Somewhere cold"), ("assistant", said("Somewhere cold", 0))]
    # The turn dropped the old version in turn (the chat holds 4): what followed it is a path,
    # the edit's other version now, as the page shows without being opened again.
    versions(messages(page).first, 2, 2).get_by_role("button", name="Previous version").click()
    expect(messages(page).first.locator(".text")).to_have_text("Three days")
    versions(messages(page).first, 1, 2)
    expect(page.get_by_role("alert")).to_be_hidden()
    assert shown(page) == old_path[2:]
    page.reload()
    expect(messages(page)).to_have_count(2)
    versions(messages(page).first, 1, 2)


def test_versions_a_later_turn_trimmed_away_are_no_longer_offered(serve: Serve, page: Page) -> None:
    base = serve(MAX_CHAT_MESSAGES="4")
    open_with_another_reply(page, base, "trimmed")
    versions(messages(page).nth(1), 2, 2)

    send_and_watch(page, "Three days")  # 0 dropped: 1 and 2 start paths, versions still
    versions(messages(page).nth(1), 2, 2)
    send_and_watch(page, "Four days")  # 1 and 2 dropped: the reply shown has no versions left

    expect(page.get_by_role("group", name=re.compile("^Version"))).to_have_count(0)
    assert shown(page)[2:] == stored(base, "trimmed")  # what the chat still holds
    for dropped in (messages(page).nth(0), messages(page).nth(1)):  # nothing to act on
        expect(dropped.get_by_role("button")).to_have_count(0)
    expect(messages(page).nth(3).get_by_role("button", name="Regenerate reply")).to_be_visible()


def saved_as_a_first_message(page: Page, base: str, fake_upstream: FakeUpstream, text: str) -> None:
    """Check that the edit `text` of the third message shown (the first two dropped) was saved as
    a first message (`"parent": null`), beside the one it edits."""
    expect(page.locator("#messages li.assistant:not(.streaming)")).to_have_count(2)
    expect(page.get_by_role("alert")).to_be_hidden()
    assert upstream_saw(fake_upstream) == [("user", text)]
    assert shown(page)[2:] == stored(base, "trimmed")
    versions(messages(page).nth(2), 2, 2)


def test_a_message_whose_parent_a_later_turn_trimmed_away_is_edited_as_a_first_one(
    serve: Serve, page: Page, fake_upstream: FakeUpstream
) -> None:
    base = serve(MAX_CHAT_MESSAGES="4")
    open_with_another_reply(page, base, "trimmed")
    send_and_watch(page, "Three days")  # 3, 4
    send_and_watch(page, "Four days")  # 5, 6: 0, 1 and 2 dropped, 3 starts a path
    expect(messages(page).nth(1).get_by_role("button")).to_have_count(0)

    messages(page).nth(2).get_by_role("button", name="Edit message").click()
    page.get_by_label("Edited message").fill("Two days")
    page.keyboard.press("Enter")

    saved_as_a_first_message(page, base, fake_upstream, "Two days")  # beside "Three days"


def test_messages_the_pages_own_turn_trimmed_away_offer_nothing_that_must_fail(
    serve: Serve, page: Page, fake_upstream: FakeUpstream
) -> None:
    base = serve(MAX_CHAT_MESSAGES="4")
    open_seeded(page, base, "trimmed", "Plan a trip", "Somewhere warm")  # 0..3, no versions
    refused: list[str] = []
    page.on("response", lambda r: refused.append(r.url) if r.status == 404 else None)
    page.evaluate(RECORD_FIRST_TWO_USABLE)
    send_and_watch(page, "Three days")  # 4, 5: 0 and 1 dropped, still on screen

    assert page.evaluate("window.firstTwoUsable") is False  # not even until the page knew
    for dropped in (messages(page).nth(0), messages(page).nth(1)):  # nothing to act on, and why
        expect(dropped.get_by_role("button")).to_have_count(0)
        expect(dropped.locator(".gone")).to_have_text(GONE_NOTE)
    kept = messages(page).nth(2)  # its parent is gone: it starts the path now
    expect(page.locator("#messages .gone")).to_have_count(2)
    messages(page).first.scroll_into_view_if_needed()
    shoot(page, "25-trimmed-away")
    expect(messages(page).nth(3).get_by_role("button", name="Regenerate reply")).to_be_visible()
    kept.get_by_role("button", name="Edit message").click()
    page.get_by_label("Edited message").fill("Somewhere cold")
    page.keyboard.press("Enter")

    saved_as_a_first_message(page, base, fake_upstream, "Somewhere cold")  # beside "…warm"
    assert refused == []


def edit_after_turns_elsewhere(page: Page, base: str, *texts: str) -> None:
    """Open a chat of two turns (items 0 to 3), store a turn of each text elsewhere (the chat
    holds 4: each drops two items), then save an edit of the second question on the page: it is
    refused, and the chat read again."""
    open_seeded(page, base, "trimmed", "Plan a trip", "Somewhere warm")
    seed(base, "trimmed", *texts)
    messages(page).nth(2).get_by_role("button", name="Edit message").click()
    page.get_by_label("Edited message").fill("Somewhere cold")
    page.keyboard.press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("no longer in the chat")
    expect(messages(page)).to_have_count(4)
    assert shown(page) == stored(base, "trimmed")


def test_an_edit_under_a_message_another_client_trimmed_away_reads_the_chat_again(
    serve: Serve, page: Page, fake_upstream: FakeUpstream
) -> None:
    base = serve(MAX_CHAT_MESSAGES="4")
    edit_after_turns_elsewhere(page, base, "Three days")  # 0 and 1 dropped: 2 starts the path

    box = messages(page).first.get_by_label("Edited message")
    expect(box).to_have_value("Somewhere cold")  # the edit, open again to save
    expect(box).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#messages li.assistant:not(.streaming)")).to_have_count(1)
    expect(page.get_by_role("alert")).to_be_hidden()
    assert upstream_saw(fake_upstream) == [("user", "Somewhere cold")]
    assert shown(page) == stored(base, "trimmed")
    versions(messages(page).first, 2, 2)


def test_an_edit_of_a_message_another_client_trimmed_away_keeps_its_text_to_send(
    serve: Serve, page: Page
) -> None:
    base = serve(MAX_CHAT_MESSAGES="4")
    edit_after_turns_elsewhere(page, base, "Three days", "Four days")  # 0 to 3 dropped

    expect(page.get_by_label("Edited message")).to_have_count(0)  # nothing left to edit
    box = page.get_by_label("Message", exact=True)
    expect(box).to_have_value("Somewhere cold")
    expect(box).to_be_focused()
    expect(page.get_by_role("status")).to_have_text(
        "The message you edited is gone: your text is in the message box, to send."
    )


def test_regenerating_a_reply_trimming_dropped_meanwhile_reads_the_chat_again(
    serve: Serve, page: Page
) -> None:
    base = serve(MAX_CHAT_MESSAGES="4")
    open_seeded(page, base, "trimmed", "Plan a trip", "Somewhere warm")  # 0..3
    seed(base, "trimmed", "Three days")  # elsewhere: 0 and 1 dropped

    messages(page).nth(1).get_by_role("button", name="Regenerate reply").click()

    expect(page.get_by_role("alert")).to_contain_text("no longer in the chat")
    expect(messages(page)).to_have_count(4)
    assert shown(page) == stored(base, "trimmed")
    expect(messages(page).first.get_by_role("button", name="Edit message")).to_be_visible()
    expect(page.get_by_label("Message", exact=True)).to_be_focused()  # not lost with the button


def test_editing_the_first_message_shown_below_a_stored_system_message_keeps_it(
    serve: Serve, page: Page, fake_upstream: FakeUpstream, store_path: Path
) -> None:
    base = serve()
    store_chat(  # as an import can hold: a system message at the start of the path
        store_path,
        "system-first",
        [Message("system", "Speak French."), Message("user", "Hi"), Message("assistant", "Salut")],
    )
    page.goto(f"{base}/ui#chat=system-first")
    expect(messages(page)).to_have_count(2)  # the system message is not shown
    expect(page.get_by_role("button", name="Show earlier messages")).to_be_hidden()

    messages(page).first.get_by_role("button", name="Edit message").click()
    page.get_by_label("Edited message").fill("Hello")
    page.keyboard.press("Enter")
    expect(page.locator("#messages li.assistant:not(.streaming)")).to_have_count(1)
    assert stored(base, "system-first")[:2] == [("system", "Speak French."), ("user", "Hello")]
    versions(messages(page).first, 2, 2)


def test_stepping_to_a_version_another_client_trimmed_away_says_so_and_reads_the_chat_again(
    serve: Serve, page: Page
) -> None:
    base = serve(MAX_CHAT_MESSAGES="4")
    open_with_another_reply(page, base, "trimmed")
    seed(base, "trimmed", "Three days", "Four days")  # elsewhere: 0, 1 and 2 dropped

    versions(messages(page).nth(1), 2, 2).get_by_role("button", name="Previous version").click()

    expect(page.get_by_role("alert")).to_contain_text("no longer in the chat")
    expect(messages(page)).to_have_count(4)  # what the chat holds: all that was shown is gone
    assert shown(page) == stored(base, "trimmed")
    expect(page.get_by_role("group", name=re.compile("^Version"))).to_have_count(0)
    expect(page.get_by_label("Message", exact=True)).to_be_focused()  # not lost with the arrow


def test_once_a_turn_trims_what_is_above_the_page_earlier_messages_are_no_longer_offered(
    serve: Serve, page: Page
) -> None:
    base = serve(MAX_CHAT_MESSAGES="52")
    seed(base, "long", *(f"message {n}" for n in range(26)))  # 0..51
    page.goto(base + "/ui#chat=long")
    expect(messages(page)).to_have_count(50)  # 2..51
    earlier = page.get_by_role("button", name="Show earlier messages")
    expect(earlier).to_be_visible()

    send_and_watch(page, "message 26")  # 52, 53: 0 and 1, above the page, dropped

    expect(earlier).to_be_hidden()
    assert shown(page) == stored(base, "long")
    expect(messages(page).first.get_by_role("button", name="Edit message")).to_be_visible()
