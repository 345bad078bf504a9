"""The model's replies on the chat page: Markdown rendered, nothing in a reply ever runs, and
tool calls and their results shown as collapsed plain text.

The fake upstream answers with a given text (`reply_text`), streamed word by word as a model
would; each reply is checked as it arrives and again from the history after a reload. A chat
with tool calls is written straight into the server's store.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from playwright.sync_api import Browser, Dialog, Page, expect

from chatproxy.store.items import OPEN_TENANT, ChatRef, Message, chained
from chatproxy.store.sqlite import SqliteStore
from harness.fake_upstream import FakeUpstream
from tests.ui.pages import PHONE, Serve, shoot

CODE = 'def greet(name):\n    return f"Hello, {name}!"'
MARKDOWN = f"""Here is **the plan**, with `inline code`:

1. Install it
2. Run it
   - on a laptop
   - on a server

| Store | Kept |
|:------|-----:|
| Redis | 30 days |
| SQLite | for good |

```python
{CODE}
```

Read [the docs](https://example.com/docs) or write to <mailto:team@example.com>.
"""

ATTACKS = """Look at these:

<script>window.pwned = "script"; alert("script")</script>

<img src=x onerror="window.pwned = 'img'; alert('img')">

<a href="javascript:window.pwned = 'raw link'">raw link</a>

[md link](javascript:window.pwned='md-link') and [data link](data:text/html;base64,PHNjcmlwdD4=)

![picture](javascript:window.pwned='picture') <iframe srcdoc="<script>parent.pwned=1</script>">

<svg onload="window.pwned = 'svg'"></svg> [a page here](/admin)
"""

NOON = "<b>noon</b>"

# Everything in the rendered replies an attack could use: elements that run or load something,
# attributes named on…, links anywhere but the web or mail.
DANGERS = """() => {
  const replies = document.querySelector("#messages");
  const found = [];
  for (const node of replies.querySelectorAll("script, img, iframe, svg, object, embed, style")) {
    found.push(node.tagName);
  }
  for (const node of replies.querySelectorAll("*")) {
    for (const attribute of node.attributes) {
      if (/^on/i.test(attribute.name) || attribute.name === "style") found.push(attribute.name);
    }
  }
  for (const link of replies.querySelectorAll("a")) {
    if (!/^(https?|mailto):/.test(link.getAttribute("href") || "")) found.push(link.outerHTML);
  }
  return found;
}"""


def send(page: Page, text: str) -> None:
    """Send `text` from the message box and wait for the whole reply."""
    done = page.locator("#messages li.assistant:not(.streaming)")
    replies_before = done.count()
    page.get_by_label("Message", exact=True).fill(text)
    page.keyboard.press("Enter")
    expect(done).to_have_count(replies_before + 1)


def expect_markdown(page: Page) -> None:
    """The MARKDOWN reply, rendered."""
    reply = page.locator("#messages li.assistant").last
    expect(reply.locator("strong")).to_have_text("the plan")
    expect(reply.locator(":not(pre) > code")).to_have_text("inline code")
    expect(reply.locator("ol > li")).to_have_count(2)
    expect(reply.locator("ol > li ul > li")).to_have_text(["on a laptop", "on a server"])
    table = reply.get_by_role("table")
    expect(table.get_by_role("columnheader")).to_have_text(["Store", "Kept"])
    expect(table.get_by_role("row")).to_have_count(3)
    expect(table.get_by_role("cell", name="30 days")).to_have_class("align-right")
    expect(reply.locator(".code-block .code-language")).to_have_text("python")
    expect(reply.locator(".code-block pre")).to_have_text(CODE)
    docs = reply.get_by_role("link", name="the docs")
    expect(docs).to_have_attribute("href", "https://example.com/docs")
    expect(docs).to_have_attribute("rel", "noopener noreferrer")
    expect(docs).to_have_attribute("target", "_blank")
    expect(reply.get_by_role("link", name="team@example.com")).to_have_attribute(
        "href", "mailto:team@example.com"
    )


def test_a_reply_in_markdown_is_rendered_and_its_code_copied(
    serve: Serve, page: Page, fake_upstream: FakeUpstream
) -> None:
    base = serve()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page.goto(base + "/ui")
    fake_upstream.reply_text = MARKDOWN
    send(page, "How do I run it? **Not bold**, <b>not HTML</b>")

    expect_markdown(page)
    mine = page.locator("#messages li.user .text")  # the user's text stays as typed
    expect(mine).to_have_text("How do I run it? **Not bold**, <b>not HTML</b>")
    expect(mine.locator("*")).to_have_count(0)
    shoot(page, "14-markdown")

    copy = page.get_by_role("button", name="Copy code")
    copy.focus()
    page.keyboard.press("Enter")  # the copy button works from the keyboard
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    expect(page.get_by_role("status")).to_have_text("Code copied.")
    assert page.evaluate("navigator.clipboard.readText()") == CODE

    page.reload()  # the same, rendered from the stored history
    expect(page.locator("#messages > li")).to_have_count(2)
    expect_markdown(page)


def test_nothing_in_a_reply_runs_or_loads(
    serve: Serve, page: Page, fake_upstream: FakeUpstream
) -> None:
    base = serve()
    dialogs: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.goto(base + "/ui")
    fake_upstream.reply_text = ATTACKS
    send(page, "Show me something dangerous")

    for when in ("as it arrived", "from the history"):
        reply = page.locator("#messages li.assistant").last
        expect(reply).to_contain_text('<script>window.pwned = "script"')  # shown as text
        expect(reply).to_contain_text("<img src=x onerror=")
        expect(reply).to_contain_text("[md link](javascript:")
        expect(reply).to_contain_text("[a page here](/admin)")
        assert page.evaluate(DANGERS) == [], when
        reply.get_by_text("md link").click()
        assert page.evaluate("window.pwned") is None, when
        assert dialogs == [], when
        page.reload()
        expect(page.locator("#messages > li")).to_have_count(2)
    shoot(page, "15-attacks-as-text")


# The sanitizer alone, on HTML that markdown-it (raw HTML off) would never make: what it keeps.
SANITIZED = {
    "<p>hi<script>window.pwned=1</script></p>": "<p>hi</p>",
    "<img src=x onerror=window.pwned=1>": "",
    '<a href="javascript:window.pwned=1">x</a>': "<a>x</a>",
    '<a href=" JaVaScRiPt:window.pwned=1">x</a>': "<a>x</a>",
    '<a href="data:text/html,<script>window.pwned=1</script>">x</a>': "<a>x</a>",
    '<a href="/admin">x</a>': "<a>x</a>",
    '<a href="https://example.com/" onclick="window.pwned=1">x</a>': (
        '<a href="https://example.com/" target="_blank" rel="noopener noreferrer">x</a>'
    ),
    '<a href="mailto:a@example.com" target="_top">x</a>': (
        '<a href="mailto:a@example.com" target="_blank" rel="noopener noreferrer">x</a>'
    ),
    '<p style="color:red" class="align-right">x</p>': '<p class="align-right">x</p>',
    "<svg><script>window.pwned=1</script></svg>": "",
    '<iframe src="https://example.com/"></iframe><b>bold</b>': "bold",
    '<math><mi xlink:href="javascript:window.pwned=1">x</mi></math>': "",
    '<noscript><p title="</noscript><img src=x onerror=window.pwned=1>">': "<p></p>",
    '<form action="https://example.com/"><button>go</button></form>': "go",
}
SANITIZE = """async (cases) => {
  const { sanitize } = await import("./ui/markdown.js");
  const results = {};
  for (const html of cases) {
    const holder = document.createElement("div");
    holder.append(sanitize(html));
    results[html] = holder.innerHTML;
  }
  return results;
}"""


def test_the_sanitizer_keeps_only_what_markdown_makes(serve: Serve, browser: Browser) -> None:
    """Parsing this raw HTML (in DOMPurify's inert document) makes Chromium report the inline
    handlers and style the page's policy blocks: here those reports are expected, and only they."""
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
    page.goto(serve() + "/ui")
    results = page.evaluate(SANITIZE, list(SANITIZED))
    pwned = page.evaluate("window.pwned")
    context.close()
    assert results == SANITIZED
    assert pwned is None
    blocked = "Content Security Policy directive"
    assert [e for e in errors if blocked not in e or "has been blocked" not in e] == []


def store_chat(path: Path, chat_id: str, messages: list[Message]) -> None:
    """Store `messages` as one chat's path, in the SQLite file the server process uses (on a
    thread of its own: Playwright's event loop runs on this one)."""

    async def save() -> None:
        store = SqliteStore(str(path), None)
        try:
            placed = chained(messages, 0, None)
            assert await store.save_turn(ChatRef(OPEN_TENANT, chat_id), "tools", placed)
        finally:
            await store.close()

    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, save()).result()


def test_tool_calls_and_results_are_shown_collapsed_as_text(
    serve: Serve, page: Page, store_path: Path
) -> None:
    base = serve()
    arguments = {"city": "Paris", "note": "<img src=x onerror=window.pwned=1>"}
    weather = {"celsius": 21, "sky": "clear"}
    calls = [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": json.dumps(arguments)},
        },
        {"id": "call_2", "type": "function", "function": {"name": "get_time"}},
    ]
    store_chat(
        store_path,
        "tools",
        [
            Message("user", "Weather in Paris?", created_at=1.7e9),
            Message("assistant", None, tool_calls=calls, finish_reason="tool_calls"),
            Message("tool", '{"celsius": 21, "sky": "clear"}', tool_call_id="call_1"),
            Message("tool", "<b>noon</b>", tool_call_id="call_2", name="get_time"),
            Message("assistant", "It is **21 °C** and clear.", model="gpt-4.1-mini"),
        ],
    )
    page.goto(base + "/ui#chat=tools")

    messages = page.locator("#messages > li")
    expect(messages).to_have_count(5)
    call = messages.nth(1)
    expect(call.locator(".text")).to_be_hidden()  # no text, only its calls
    blocks = call.locator("details")
    expect(blocks.locator("summary")).to_have_text(["Called get_weather", "Called get_time"])
    pre = blocks.first.locator("pre")
    expect(pre).to_be_hidden()  # collapsed until opened
    blocks.first.locator("summary").focus()
    page.keyboard.press("Enter")
    expect(pre).to_be_visible()
    expect(pre).to_have_text(json.dumps(arguments, indent=2))
    expect(blocks.nth(1).locator("pre")).to_have_text("(empty)", use_inner_text=False)

    results = messages.locator("details.tool-result")
    expect(results.locator("summary")).to_have_text(["Result of get_weather", "Result of get_time"])
    expect(results.first.locator("pre")).to_have_text(
        json.dumps(weather, indent=2), use_inner_text=False
    )
    expect(results.nth(1).locator("pre")).to_have_text(NOON, use_inner_text=False)
    expect(messages.last.locator("strong")).to_have_text("21 °C")
    # Another reply answers a user message: the one after the tools' results has none.
    expect(call.get_by_role("button", name="Regenerate reply")).to_be_visible()
    expect(messages.last.get_by_role("button", name="Regenerate reply")).to_have_count(0)
    expect(page.get_by_role("button", name="Show earlier messages")).to_be_hidden()
    assert page.evaluate(DANGERS) == []
    shoot(page, "16-tool-calls")


def test_a_message_with_a_file_or_audio_names_them_not_images(
    serve: Serve, page: Page, store_path: Path
) -> None:
    base = serve()
    pdf = {"filename": "report.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}
    parts = [
        {"type": "text", "text": "Summarize these"},
        {"type": "image_url", "image_url": {"url": "https://example.com/chart.png"}},
        {"type": "file", "file": pdf},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
    ]
    store_chat(store_path, "parts", [Message("user", parts), Message("assistant", "Done.")])
    page.goto(base + "/ui#chat=parts")

    mine = page.locator("#messages li.user .text")
    expect(mine).to_have_text("Summarize these\n[image]\n[file: report.pdf]\n[audio]")


def test_wide_code_and_tables_scroll_inside_the_reply_on_a_phone(
    serve: Serve, phone: Page, fake_upstream: FakeUpstream
) -> None:
    base = serve()
    fake_upstream.chunk_delay = 0  # a long reply: no need to watch it grow
    phone.goto(base + "/ui")
    wide = "x = [" + ", ".join(str(n) for n in range(60)) + "]"
    columns = " | ".join(f"column {n}" for n in range(12))
    fake_upstream.reply_text = f"```\n{wide}\n```\n\n| {columns} |\n|{'---|' * 12}\n"
    send(phone, "Something wide")

    widths = phone.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1] == PHONE["width"], "the page scrolls sideways"
    for scroller in (".code-block pre", ".table-scroll"):
        sizes = phone.locator(scroller).evaluate("el => [el.scrollWidth, el.clientWidth]")
        assert sizes[0] > sizes[1], f"{scroller} does not scroll on its own"
    copy = phone.get_by_role("button", name="Copy code").bounding_box()
    assert copy is not None
    assert copy["x"] + copy["width"] <= PHONE["width"]
    shoot(phone, "17-phone-markdown")
