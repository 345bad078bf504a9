"""Export and import on the chat page: the open chat's document and all chats (NDJSON) as
downloads made with the page's key, and a file imported with the server's report shown.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from playwright.sync_api import Locator, Page, expect

from harness.server_process import http
from tests.test_foreign_formats import GPT_ID, WEBUI_ID, chatgpt_conversation, openwebui_chat
from tests.ui.pages import API_KEY, PHONE, Serve, chat_id_of, send_and_watch, shoot

KEY = {"X-API-Key": API_KEY}


def seed(base: str, chat: str, text: str) -> None:
    answer = http("POST", f"{base}/{chat}/chat", {"content": text}, headers=KEY)
    assert answer.status == 200, answer.body


def exported(base: str, chat: str) -> bytes:
    answer = http("GET", f"{base}/{chat}/export", headers=KEY)
    assert answer.status == 200, answer.body
    return answer.body


def choose(page: Page, path: Path) -> None:
    """Open the file chooser from the keyboard, as the Import button's user would, and pick."""
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="Import chats…").focus()
        page.keyboard.press("Enter")
    chooser.value.set_files(str(path))


def report(page: Page) -> Locator:
    return page.get_by_role("region", name="Export and import report")


def test_export_downloads_the_chat_and_all_chats_with_the_key(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    base = serve(PROXY_API_KEYS=f"web={API_KEY}")
    seed(base, "older", "An older chat")
    page.goto(base + "/ui")
    page.get_by_role("dialog", name="API key").get_by_label("Key").fill(API_KEY)
    page.get_by_role("button", name="Save key").click()
    expect(page.get_by_role("button", name="Export chat")).to_be_disabled()  # nothing stored yet
    send_and_watch(page, "Export me, please")
    chat_id = chat_id_of(page)

    with page.expect_download() as chat_download:
        page.get_by_role("button", name="Export chat").click()
    download = chat_download.value
    assert download.suggested_filename == f"{chat_id}.json"
    body = Path(download.path()).read_bytes()
    document = json.loads(body)
    assert (document["format"], document["id"]) == ("chatproxy.chat", chat_id)
    assert document["title"] == "Export me, please"
    assert body == exported(base, chat_id)

    with page.expect_download() as all_download:
        page.get_by_role("button", name="Export all chats").click()
    download = all_download.value
    assert download.suggested_filename == "chats.ndjson"
    lines = Path(download.path()).read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [chat_id, "older"]  # newest first
    expect(report(page)).to_have_text("Exported all chats.")


def test_import_adds_a_chat_reports_it_and_skips_it_the_second_time(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    base = serve()
    seed(base, "moved", "A chat that moves")
    document = exported(base, "moved")
    assert http("DELETE", f"{base}/moved/chat").status == 200
    file = tmp_path / "moved.json"
    file.write_bytes(document)

    page.goto(base + "/ui")
    expect(page.get_by_text("No chats yet.")).to_be_visible()
    choose(page, file)
    expect(report(page)).to_contain_text("Import of moved.json:")
    expect(report(page)).to_contain_text("1 chat imported, 0 skipped, 0 renamed, 0 failed.")
    expect(report(page).locator(".imported li")).to_have_text(["moved"])
    chats = page.get_by_role("navigation", name="Chats")
    chat = chats.get_by_role("button", name=re.compile("A chat that moves"))
    expect(chat).to_be_visible()  # the list was read again
    assert exported(base, "moved") == document
    shoot(page, "22-imported")

    choose(page, file)  # the same file again: nothing is added
    expect(report(page)).to_contain_text("0 chats imported, 1 skipped, 0 renamed, 0 failed.")
    expect(report(page).locator(".skipped li")).to_have_text(["moved"])
    chat.click()
    expect(page.locator("#messages > li")).to_have_count(2)


def test_ndjson_is_recognised_and_its_bad_lines_reported(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    base = serve()
    seed(base, "first", "The first chat")
    line = json.loads(exported(base, "first"))
    line["id"] = "second"
    file = tmp_path / "chats.txt"  # no telling name: the content says NDJSON
    file.write_text(json.dumps(line) + "\n" + '{"format": "chatproxy.chat", "version": 1}\n')

    page.goto(base + "/ui")
    choose(page, file)
    expect(report(page)).to_contain_text("1 chat imported, 0 skipped, 0 renamed, 1 failed.")
    expect(report(page).locator(".imported li")).to_have_text(["second"])
    expect(report(page).locator(".failed li")).to_have_text(re.compile(r"^line 2: .+"))
    expect(
        page.get_by_role("navigation").get_by_role("button", name=re.compile("first"))
    ).to_have_count(2)


def test_chatgpt_and_open_webui_exports_are_recognised_and_imported(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    base = serve()
    chatgpt = tmp_path / "conversations.json"
    chatgpt.write_text(json.dumps([chatgpt_conversation()], indent=2))
    webui = tmp_path / "webui.json"
    webui.write_text(json.dumps([openwebui_chat()]))

    page.goto(base + "/ui")
    choose(page, chatgpt)
    expect(report(page)).to_contain_text("1 chat imported, 0 skipped, 0 renamed, 0 failed.")
    expect(report(page).locator(".imported li")).to_have_text([GPT_ID])
    choose(page, webui)
    expect(report(page)).to_contain_text("1 chat imported, 0 skipped, 0 renamed, 0 failed.")
    expect(report(page).locator(".imported li")).to_have_text([WEBUI_ID])

    path = http("GET", f"{base}/{GPT_ID}/chat").json()
    assert [m["content"] for m in path] == ["What is 2+2?", "4", "[image]\nAnd this?", "A cat."]
    assert http("GET", f"{base}/{WEBUI_ID}/chat").status == 200


def test_a_bad_file_shows_the_failure_and_imports_nothing(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    base = serve()
    file = tmp_path / "broken.json"
    file.write_text('{"format": "chatproxy.chat", "version": 1, "id": "broken", "items": [')

    page.goto(base + "/ui")
    choose(page, file)
    expect(report(page)).to_contain_text("0 chats imported, 0 skipped, 0 renamed, 1 failed.")
    expect(report(page).locator(".failed li")).to_have_count(1)
    expect(page.get_by_role("alert")).to_be_hidden()
    expect(page.get_by_text("No chats yet.")).to_be_visible()
    assert http("GET", f"{base}/chats").json()["chats"] == []
    shoot(page, "23-import-failed")


def test_export_and_import_fit_a_phone_screen(serve: Serve, phone: Page, tmp_path: Path) -> None:
    base = serve()
    seed(base, "small", "A chat on a phone")
    file = tmp_path / "small.json"
    file.write_bytes(exported(base, "small"))

    phone.goto(base + "/ui#chat=small")
    expect(phone.get_by_role("button", name="Export chat")).to_be_enabled()
    phone.get_by_role("button", name="Chats", exact=True).click()
    choose(phone, file)
    expect(report(phone)).to_contain_text("0 chats imported, 1 skipped")
    for target in (
        phone.get_by_role("button", name="Export all chats"),
        phone.get_by_role("button", name="Import chats…"),
        report(phone),
    ):
        box = target.bounding_box()
        assert box is not None
        assert box["x"] >= 0
        assert box["x"] + box["width"] <= PHONE["width"]
    widths = phone.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1] == PHONE["width"], "the page scrolls sideways"
    shoot(phone, "24-import-phone")
