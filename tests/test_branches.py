"""Edit and regenerate on the seed route: a chat is a tree, `parent` places a turn, GET follows
one path, and only that path goes upstream. Both stores, the real app, the test upstream."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis

from harness.fake_upstream import FakeUpstream
from tests.asgi_client import ProxyClient
from tests.conftest import MakeClient

WEB = {"X-API-Key": "web-key-0123456789abcdef"}
OPS = {"X-API-Key": "ops-key-0123456789abcdef"}
KEYS = f"web={WEB['X-API-Key']},ops={OPS['X-API-Key']}"


@pytest.fixture
def client(make_client: MakeClient, fake_upstream: FakeUpstream) -> ProxyClient:
    return make_client(PROXY_API_KEYS=KEYS)


def post(client: ProxyClient, body: dict[str, Any], headers: dict[str, str] = WEB) -> Any:
    return client.post("/c/chat", data=json.dumps(body), headers=headers)


def say(client: ProxyClient, body: dict[str, Any], reply: str, up: FakeUpstream) -> Any:
    up.reply_text = reply
    response = post(client, body)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def path(client: ProxyClient, query: str = "") -> list[tuple[int, str]]:
    messages = client.get(f"/c/chat{query}", headers=WEB).get_json()
    return [(m["id"], m["content"]) for m in messages if m["role"] != "system"]


def sent(up: FakeUpstream) -> list[str]:
    """The texts of the last request's messages, system prompt left out."""
    return [m["content"] for m in up.chat_requests()[-1]["messages"] if m["role"] != "system"]


def test_a_reply_carries_its_id_and_parent(
    client: ProxyClient, fake_upstream: FakeUpstream
) -> None:
    reply = say(client, {"content": "q0"}, "a0", fake_upstream)

    assert (reply["id"], reply["parent"], reply["content"]) == (1, 0, "a0")
    history = client.get("/c/chat", headers=WEB).get_json()
    assert [(m["id"], m["parent"], m["siblings"]) for m in history] == [
        (0, None, [0]),
        (1, 0, [1]),
    ]


def test_an_edit_branches_and_only_its_path_goes_upstream(
    client: ProxyClient, fake_upstream: FakeUpstream
) -> None:
    say(client, {"content": "q0"}, "a0", fake_upstream)
    say(client, {"content": "q1"}, "a1", fake_upstream)  # 2, 3

    reply = say(client, {"content": "q1 edited", "parent": 1}, "a1'", fake_upstream)  # 4, 5

    assert (reply["id"], reply["parent"]) == (5, 4)
    assert sent(fake_upstream) == ["q0", "a0", "q1 edited"]
    assert path(client) == [(0, "q0"), (1, "a0"), (4, "q1 edited"), (5, "a1'")]
    assert path(client, "?leaf=3") == [(0, "q0"), (1, "a0"), (2, "q1"), (3, "a1")]
    history = client.get("/c/chat", headers=WEB).get_json()
    assert history[2]["siblings"] == [2, 4]
    say(client, {"content": "q2"}, "a2", fake_upstream)  # the next turn follows the new leaf
    assert sent(fake_upstream) == ["q0", "a0", "q1 edited", "a1'", "q2"]


def test_editing_the_first_message_starts_a_new_path(
    client: ProxyClient, fake_upstream: FakeUpstream
) -> None:
    say(client, {"content": "q0"}, "a0", fake_upstream)

    say(client, {"content": "again", "parent": None}, "fresh", fake_upstream)

    assert sent(fake_upstream) == ["again"]
    assert path(client) == [(2, "again"), (3, "fresh")]
    first = client.get("/c/children", headers=WEB).get_json()
    assert first == {"parent": None, "children": [0, 2], "messages": 4}


def test_regenerate_asks_again_and_stores_a_sibling_reply(
    client: ProxyClient, fake_upstream: FakeUpstream
) -> None:
    say(client, {"content": "q0"}, "a0", fake_upstream)
    say(client, {"content": "q1"}, "a1", fake_upstream)  # 2, 3

    reply = say(client, {"parent": 2}, "a1 again", fake_upstream)

    assert (reply["id"], reply["parent"], reply["content"]) == (4, 2, "a1 again")
    assert sent(fake_upstream) == ["q0", "a0", "q1"]
    assert path(client) == [(0, "q0"), (1, "a0"), (2, "q1"), (4, "a1 again")]
    children = client.get("/c/children?parent=2", headers=WEB).get_json()
    assert children == {"parent": 2, "children": [3, 4]}


def test_a_streamed_regeneration_is_stored_as_a_sibling(
    client: ProxyClient, fake_upstream: FakeUpstream
) -> None:
    say(client, {"content": "q0"}, "a0", fake_upstream)
    fake_upstream.reply_text = "streamed again"

    response = post(client, {"parent": 0, "stream": True})

    assert response.status_code == 200
    assert "event: done" in response.get_data(as_text=True)
    assert path(client) == [(0, "q0"), (2, "streamed again")]


def test_a_page_of_a_given_path_holds_only_that_paths_messages(
    client: ProxyClient, fake_upstream: FakeUpstream
) -> None:
    say(client, {"content": "q0"}, "a0", fake_upstream)
    say(client, {"content": "q1"}, "a1", fake_upstream)  # 2, 3
    say(client, {"content": "e", "parent": 1}, "ae", fake_upstream)  # 4, 5

    # 5 is on the other branch: the page is of the path to 3, its messages numbered below 5.
    assert path(client, "?leaf=3&limit=10&before=5") == [(0, "q0"), (1, "a0"), (2, "q1"), (3, "a1")]
    assert path(client, "?leaf=3&limit=10&before=3") == [(0, "q0"), (1, "a0"), (2, "q1")]
    assert path(client, "?limit=10&before=5") == [(0, "q0"), (1, "a0"), (4, "e")]


def test_a_page_before_a_message_off_the_current_path_is_of_that_messages_own_path(
    client: ProxyClient, fake_upstream: FakeUpstream
) -> None:
    say(client, {"content": "q0"}, "a0", fake_upstream)
    say(client, {"content": "q1"}, "a1", fake_upstream)  # 2, 3
    say(client, {"content": "q2"}, "a2", fake_upstream)  # 4, 5
    say(client, {"content": "e", "parent": 1}, "ae", fake_upstream)  # 6, 7: the leaf moves

    # A client that read the newest page before the edit goes on up the path it began (as the
    # chat page does), not into the current path: 3 is not on it.
    assert path(client, "?limit=2&before=4") == [(2, "q1"), (3, "a1")]
    assert path(client, "?limit=2&before=2") == [(0, "q0"), (1, "a0")]
    assert path(client, "?before=5") == [(0, "q0"), (1, "a0"), (2, "q1"), (3, "a1"), (4, "q2")]
    # On the current path, or with it named by `leaf`: that path's messages only.
    assert path(client, "?limit=2&before=7") == [(1, "a0"), (6, "e")]
    assert path(client, "?leaf=7&limit=10&before=4") == [(0, "q0"), (1, "a0")]
    # An id the chat does not hold: the current path's messages numbered below it.
    assert path(client, "?limit=10&before=99") == [(0, "q0"), (1, "a0"), (6, "e"), (7, "ae")]


def test_the_leaf_can_be_set_to_any_message_and_descend(
    client: ProxyClient, fake_upstream: FakeUpstream
) -> None:
    say(client, {"content": "q0"}, "a0", fake_upstream)
    say(client, {"content": "q1"}, "a1", fake_upstream)  # 2, 3
    say(client, {"content": "e", "parent": 1}, "ae", fake_upstream)  # 4, 5

    moved = client.post("/c/leaf", data=json.dumps({"id": 2, "descend": True}), headers=WEB)

    assert moved.get_json() == {"leaf": 3}
    assert [i for i, _ in path(client)] == [0, 1, 2, 3]
    client.post("/c/leaf", data=json.dumps({"id": 1}), headers=WEB)
    assert [i for i, _ in path(client)] == [0, 1]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"content": "x", "parent": 99}, 404),  # no such message
        ({"parent": 99}, 404),
        ({"parent": 1}, 400),  # a reply cannot be regenerated from an assistant message
        ({"parent": None}, 400),  # nothing to regenerate
        ({"content": "x", "parent": -1}, 400),
        ({"content": "x", "parent": "0"}, 400),
    ],
)
def test_bad_parents_are_refused_and_store_nothing(
    client: ProxyClient, fake_upstream: FakeUpstream, body: dict[str, Any], status: int
) -> None:
    say(client, {"content": "q0"}, "a0", fake_upstream)
    calls = len(fake_upstream.chat_requests())

    response = post(client, body)

    assert response.status_code == status, response.get_json()
    assert response.get_json()["error"]
    assert len(fake_upstream.chat_requests()) == calls
    assert path(client) == [(0, "q0"), (1, "a0")]


def test_another_tenants_messages_are_not_found(
    client: ProxyClient, fake_upstream: FakeUpstream
) -> None:
    say(client, {"content": "q0"}, "a0", fake_upstream)

    assert post(client, {"content": "x", "parent": 0}, OPS).status_code == 404
    assert post(client, {"parent": 0}, OPS).status_code == 404
    assert client.get("/c/chat?leaf=1", headers=OPS).status_code == 404
    assert client.get("/c/children?parent=0", headers=OPS).status_code == 404
    empty = {"parent": None, "children": [], "messages": 0}  # nothing of the web key's chat
    assert client.get("/c/children", headers=OPS).get_json() == empty
    leaf = client.post("/c/leaf", data=json.dumps({"id": 0}), headers=OPS)
    assert leaf.status_code == 404
    assert path(client) == [(0, "q0"), (1, "a0")]


@pytest.mark.parametrize(
    "body", [{}, {"id": -1}, {"id": "1"}, {"id": 1, "descend": "yes"}, {"id": 1, "other": 1}]
)
def test_a_bad_leaf_body_is_a_400(client: ProxyClient, body: dict[str, Any]) -> None:
    response = client.post("/c/leaf", data=json.dumps(body), headers=WEB)

    assert response.status_code == 400


@pytest.mark.parametrize(("length", "expected"), [("50", 4), ("3", 3), ("0", 0)])
def test_a_turn_sends_the_newest_messages_length_messages_of_its_path(
    make_client: MakeClient, fake_upstream: FakeUpstream, length: str, expected: int
) -> None:
    client = make_client(PROXY_API_KEYS=KEYS, MESSAGES_LENGTH=length)
    say(client, {"content": "q0"}, "a0", fake_upstream)
    say(client, {"content": "q1"}, "a1", fake_upstream)

    say(client, {"content": "q2"}, "a2", fake_upstream)

    history = ["q0", "a0", "q1", "a1"]
    assert sent(fake_upstream) == [*history[len(history) - expected :], "q2"]


def test_a_trimmed_chats_first_messages_are_listed_and_are_versions_of_each_other(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    client = make_client(PROXY_API_KEYS=KEYS, MAX_CHAT_MESSAGES="4")
    say(client, {"content": "q0"}, "a0", fake_upstream)
    say(client, {"content": "q1"}, "a1", fake_upstream)  # 2, 3

    say(client, {"content": "q1 edited", "parent": 1}, "a1'", fake_upstream)  # 4, 5; 0, 1 dropped

    # What trimming left: the paths' starts, and as many messages as GET /chats lists.
    first = client.get("/c/children", headers=WEB).get_json()
    assert first == {"parent": None, "children": [2, 4], "messages": 4}
    assert client.get("/chats", headers=WEB).get_json()["chats"][0]["messages"] == 4
    for query, ids in (("", [4, 5]), ("?leaf=3", [2, 3])):
        history = client.get(f"/c/chat{query}", headers=WEB).get_json()
        assert [(m["id"], m["siblings"]) for m in history] == [(ids[0], [2, 4]), (ids[1], [ids[1]])]


@pytest.mark.parametrize("store_kind", ["redis"])
@pytest.mark.parametrize(
    ("query", "siblings"),
    [("", [[2, 4], [5]]), ("?limit=2&before=5", [[2, 4]]), ("?leaf=3", [[2, 4], [3]])],
)
def test_a_history_read_is_one_script_that_refreshes_the_chats_ttl_once(
    make_client: MakeClient,
    fake_upstream: FakeUpstream,
    admin: redis.Redis,
    query: str,
    siblings: list[list[int]],
) -> None:
    client = make_client(PROXY_API_KEYS=KEYS, MAX_CHAT_MESSAGES="4")
    say(client, {"content": "q0"}, "a0", fake_upstream)
    say(client, {"content": "q1"}, "a1", fake_upstream)  # 2, 3
    say(client, {"content": "e", "parent": 1}, "ae", fake_upstream)  # 4, 5; 0 and 1 dropped
    assert client.get(f"/c/chat{query}", headers=WEB).status_code == 200  # its scripts loaded
    admin.config_resetstat()

    history = client.get(f"/c/chat{query}", headers=WEB).get_json()

    assert [m["siblings"] for m in history] == siblings
    stats = admin.info("commandstats")
    # One script: the path, each message's versions, the TTL of the chat's three keys and of
    # its tenant's listing, each refreshed once.
    assert stats["cmdstat_evalsha"]["calls"] == 1
    assert stats["cmdstat_expire"]["calls"] == 4


@pytest.mark.parametrize("store_kind", ["redis"])
@pytest.mark.parametrize(("query", "children"), [("?parent=1", [2, 4]), ("", [0])])
def test_a_childrens_read_is_one_script_that_refreshes_the_chats_ttl_once(
    client: ProxyClient,
    fake_upstream: FakeUpstream,
    admin: redis.Redis,
    query: str,
    children: list[int],
) -> None:
    say(client, {"content": "q0"}, "a0", fake_upstream)
    say(client, {"content": "q1"}, "a1", fake_upstream)  # 2, 3
    say(client, {"content": "e", "parent": 1}, "ae", fake_upstream)  # 4, 5
    assert client.get(f"/c/children{query}", headers=WEB).status_code == 200  # its script loaded
    admin.config_resetstat()

    found = client.get(f"/c/children{query}", headers=WEB).get_json()

    assert found["children"] == children
    stats = admin.info("commandstats")
    # One script: whether the chat holds the parent, its children, the TTL of the chat's three
    # keys and of its tenant's listing, each refreshed once.
    assert stats["cmdstat_evalsha"]["calls"] == 1
    assert stats["cmdstat_expire"]["calls"] == 4


@pytest.mark.parametrize(("chat", "parent"), [("c", 99), ("c", 0), ("none", 0), ("none", 99)])
def test_the_children_of_a_message_the_chat_does_not_hold_are_a_404(
    make_client: MakeClient, fake_upstream: FakeUpstream, chat: str, parent: int
) -> None:
    client = make_client(PROXY_API_KEYS=KEYS, MAX_CHAT_MESSAGES="4")
    say(client, {"content": "q0"}, "a0", fake_upstream)
    say(client, {"content": "q1"}, "a1", fake_upstream)  # 2, 3
    say(client, {"content": "q2"}, "a2", fake_upstream)  # 4, 5; 0 and 1 dropped

    response = client.get(f"/{chat}/children?parent={parent}", headers=WEB)

    assert response.status_code == 404
    assert response.get_json()["error"]
    assert client.get(f"/{chat}/children?parent=2", headers=WEB).status_code == (
        200 if chat == "c" else 404
    )
