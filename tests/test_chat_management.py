"""Listing chats, paging long histories and reading a chat's token usage, on both stores."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from harness.fake_upstream import FakeUpstream
from tests.asgi_client import ProxyClient
from tests.conftest import MakeClient

WEB = {"X-API-Key": "web-key-0123456789abcdef"}
OPS = {"X-API-Key": "ops-key-0123456789abcdef"}
KEYS = f"web={WEB['X-API-Key']},ops={OPS['X-API-Key']}"


def say(client: ProxyClient, chat: str, text: str, headers: dict[str, str] | None = None) -> Any:
    response = client.post(f"/{chat}/chat", data=json.dumps({"content": text}), headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


@pytest.fixture
def client(make_client: MakeClient, fake_upstream: FakeUpstream) -> ProxyClient:
    fake_upstream.usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    return make_client(PROXY_API_KEYS=KEYS)


def test_chats_are_listed_newest_activity_first_with_totals_and_titles(
    client: ProxyClient,
) -> None:
    say(client, "older", "What is the capital of France? " + "Please answer. " * 10, WEB)
    say(client, "newer", "Hi", WEB)
    say(client, "older", "And of Spain?", WEB)  # activity moves it to the top
    say(client, "theirs", "not web's", OPS)

    listing = client.get("/chats", headers=WEB).get_json()

    assert [c["id"] for c in listing["chats"]] == ["older", "newer"]
    older = listing["chats"][0]
    assert older["title"].startswith("What is the capital of France?")
    assert older["title"].endswith("…")
    assert len(older["title"]) == 60
    assert older["messages"] == 4
    assert older["tokens"] == {"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30}
    assert older["created"] <= older["updated"] <= time.time()
    assert listing["next_before"] is None


def test_chat_listing_pages_with_a_cursor(client: ProxyClient) -> None:
    for n in range(5):
        say(client, f"c{n}", f"message {n}", WEB)

    first = client.get("/chats?limit=2", headers=WEB).get_json()
    second = client.get(f"/chats?limit=2&before={first['next_before']}", headers=WEB).get_json()
    third = client.get(f"/chats?limit=2&before={second['next_before']}", headers=WEB).get_json()

    pages = [[c["id"] for c in page["chats"]] for page in (first, second, third)]
    assert pages == [["c4", "c3"], ["c2", "c1"], ["c0"]]
    assert third["next_before"] is None


def test_chats_of_the_same_activity_are_each_listed_once_across_pages(
    client: ProxyClient,
) -> None:
    say(client, "model", "a chat to copy", WEB)
    document = client.get("/model/export", headers=WEB).get_json()
    for n in range(5):  # imports keep the chat's activity: five chats of one time
        copy = json.dumps({**document, "id": f"same-{n}"})
        assert client.post("/import", data=copy, headers=WEB).status_code == 200
    pages, cursor = [], ""
    while True:
        page = client.get(f"/chats?limit=2{cursor}", headers=WEB).get_json()
        pages.append([c["id"] for c in page["chats"]])
        if page["next_before"] is None:
            break
        cursor = f"&before={page['next_before']}&before_id={page['next_before_id']}"

    assert pages == [["same-4", "same-3"], ["same-2", "same-1"], ["same-0", "model"], []]
    assert client.get("/chats?limit=2&before_id=a%20b", headers=WEB).status_code == 400


def test_deleted_and_expired_chats_are_not_listed(make_client: MakeClient) -> None:
    client = make_client(EXPIRE_HOURS="0.0003")  # about one second
    say(client, "gone", "a")
    say(client, "deleted", "b")
    client.delete("/deleted/chat")
    time.sleep(1.3)
    say(client, "fresh", "c")

    assert [c["id"] for c in client.get("/chats").get_json()["chats"]] == ["fresh"]


def test_a_chat_with_only_a_system_prompt_is_listed_without_a_title(client: ProxyClient) -> None:
    client.post("/setup/system", data=json.dumps({"content": "Be brief."}), headers=WEB)

    (listed,) = client.get("/chats", headers=WEB).get_json()["chats"]

    assert (listed["id"], listed["title"], listed["messages"]) == ("setup", None, 0)


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=1001", "limit=abc", "before=-1", "before=x", "before=inf"]
)
def test_bad_listing_parameters_are_400(client: ProxyClient, query: str) -> None:
    response = client.get(f"/chats?{query}", headers=WEB)

    assert response.status_code == 400
    assert response.get_json()["code"] == "invalid_request"


def test_history_messages_are_numbered_and_paged_backwards(make_client: MakeClient) -> None:
    client = make_client(SYSTEM_PROMPT="sys")
    for n in range(5):
        say(client, "long", f"q{n}")

    whole = client.get("/long/chat").get_json()
    last = client.get("/long/chat?limit=4").get_json()
    before = client.get(f"/long/chat?limit=4&before={last[0]['id']}").get_json()
    start = client.get("/long/chat?limit=4&before=2").get_json()

    assert whole[0] == {"role": "system", "content": "sys"}
    assert [m["id"] for m in whole[1:]] == list(range(10))
    assert [m["id"] for m in last] == [6, 7, 8, 9]
    assert [m["id"] for m in before] == [2, 3, 4, 5]
    assert [m["content"] for m in before][::2] == ["q1", "q2"]
    assert [m["id"] for m in start] == [0, 1]
    assert client.get("/long/chat?limit=4&before=0").get_json() == []
    assert [m["id"] for m in client.get("/long/chat?before=99").get_json()] == list(range(10))
    assert client.get("/never/chat?limit=5").get_json() == []


def test_message_numbers_stay_put_when_old_messages_are_dropped(make_client: MakeClient) -> None:
    client = make_client(MAX_CHAT_MESSAGES="4")
    for n in range(3):
        say(client, "capped", f"q{n}")

    kept = client.get("/capped/chat").get_json()

    assert [(m["id"], m["content"]) for m in kept][::2] == [(2, "q1"), (4, "q2")]
    assert client.get("/capped/chat?limit=2&before=2").get_json() == []


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "limit=-3", "before=-1", "before=a"])
def test_bad_paging_parameters_are_400(client: ProxyClient, query: str) -> None:
    response = client.get(f"/c1/chat?{query}", headers=WEB)

    assert response.status_code == 400
    assert response.get_json()["code"] == "invalid_request"


def test_usage_adds_up_the_chats_tokens(client: ProxyClient) -> None:
    say(client, "c1", "one", WEB)
    say(client, "c1", "two", WEB)

    usage = client.get("/c1/usage", headers=WEB).get_json()

    assert usage["id"] == "c1"
    assert usage["messages"] == 4
    assert usage["tokens"] == {"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30}


def test_usage_of_an_unknown_or_foreign_chat_is_404(client: ProxyClient) -> None:
    say(client, "c1", "one", WEB)

    assert client.get("/nope/usage", headers=WEB).status_code == 404
    assert client.get("/c1/usage", headers=OPS).status_code == 404
