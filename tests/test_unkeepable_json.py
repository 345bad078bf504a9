"""JSON the proxy could read but not keep: a string with a lone surrogate escape (no Unicode
text: it cannot be written as UTF-8, to the store or to the model) and nesting deeper than
orjson writes. Every route that reads a body refuses it with a 400 in its own error shape, an
import reports the line it was on and goes on, and nothing is stored."""

from __future__ import annotations

import json

import pytest

from harness.fake_upstream import FakeUpstream
from tests.asgi_client import ProxyClient

LONE = '"x\\ud800"'  # JSON text for a string holding a lone surrogate
DEEP = "[" * 300 + "]" * 300  # orjson writes 254 levels at most, Python's encoder ~1,000
CHAT = {"X-Chat-Id": "c1"}


def document(chat_id: str, content: str) -> str:
    """A chat document of one user message whose content is the JSON text `content`."""
    item = f'{{"id":0,"parent":null,"role":"user","content":{content},"created_at":1.0}}'
    return (
        f'{{"format":"chatproxy.chat","version":1,"id":"{chat_id}","created":1.0,'
        f'"updated":2.0,"items":[{item}],"leaf":0}}'
    )


def bodies(value: str) -> list[tuple[str, str, dict[str, str]]]:
    """(path, body, headers) of every kind of body, carrying the JSON text `value`."""
    part = f'{{"type":"text","text":"a","x":{value}}}'
    return [
        ("/c1/chat", f'{{"content":{value}}}', {}),
        ("/v1/chat/completions", f'{{"messages":[{{"role":"user","content":{value}}}]}}', CHAT),
        ("/v1/chat/completions", f'{{"messages":[{{"role":"user","content":[{part}]}}]}}', CHAT),
        (
            "/v1/chat/completions",
            f'{{"messages":[{{"role":"user","content":"a"}}],"x":{value}}}',
            {},
        ),
        ("/v1/responses", f'{{"input":{value}}}', {}),
        (
            "/v1/responses",
            f'{{"input":"a","tools":[{{"type":"function","name":"f",'
            f'"parameters":{{"d":{value}}}}}]}}',
            {},
        ),
        ("/v1/conversations", f'{{"items":[{{"role":"user","content":{value}}}]}}', {}),
        ("/import", document("imp", value), {}),
    ]


@pytest.mark.parametrize(("value", "says"), [(LONE, "lone surrogate"), (DEEP, "254 levels")])
def test_every_route_refuses_it_and_stores_nothing(
    client: ProxyClient, fake_upstream: FakeUpstream, value: str, says: str
) -> None:
    for path, body, headers in bodies(value):
        answer = client.post(path, data=body.encode(), headers=headers)

        assert answer.status_code == 400, (path, answer.status_code)
        error = answer.get_json()["error"]
        assert says in (error["message"] if path.startswith("/v1/") else error), path
    assert fake_upstream.requests == []
    assert client.get("/chats").get_json()["chats"] == []


def test_an_import_reports_such_a_line_and_imports_the_rest(client: ProxyClient) -> None:
    lines = [document("a", LONE), document("b", '"fine"'), document("c", DEEP)]
    ndjson = {"Content-Type": "application/x-ndjson"}

    report = client.post("/import", data="\n".join(lines), headers=ndjson).get_json()

    assert report["imported"] == ["b"]
    assert [(f["line"], f["error"]) for f in report["failed"]] == [
        (1, "cannot be kept: a string holds a lone surrogate escape, which is not text"),
        (3, "cannot be kept: it is nested more than 254 levels deep"),
    ]


def test_text_the_proxy_can_keep_still_goes_through(
    client: ProxyClient, fake_upstream: FakeUpstream
) -> None:
    pair = '"x\\ud83d\\ude00"'  # a surrogate pair: one character, 😀
    nested = "[" * 200 + "]" * 200
    body = f'{{"messages":[{{"role":"user","content":{pair}}}],"x":{nested}}}'

    answer = client.post("/v1/chat/completions", data=body.encode(), headers=CHAT)

    assert answer.status_code == 200
    sent = fake_upstream.chat_requests()[-1]
    assert sent["messages"][-1]["content"] == "x😀"
    assert json.dumps(sent["x"]) == json.dumps(json.loads(nested))
