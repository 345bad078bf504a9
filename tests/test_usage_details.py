"""A reply keeps the breakdowns of its usage that the model provider gave (cached prompt
tokens, reasoning tokens, ...): the Responses API reports them, when it answers and when a
response is retrieved, streamed or not; the chat API shows them with the reply's counts; an
export carries them and imports again. Against the real server process, both stores, with the
official openai SDK; and a `/v1` answer passes on the provider's usage as it came, as its schema
says."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openai.types.responses import Response

from harness.fake_upstream import FakeUpstream
from harness.server_process import http
from tests.asgi_client import ProxyClient
from tests.responses_client import KEY, MODEL, OTHER_KEY, Proxy, chat_of, proxy

__all__ = ["proxy"]  # the fixture this module's tests use

COUNTS = {"prompt_tokens": 120, "completion_tokens": 40, "total_tokens": 160}
KEPT = {
    **COUNTS,
    "prompt_tokens_details": {"cached_tokens": 96},
    "completion_tokens_details": {"reasoning_tokens": 32},
}
USAGE = {  # as OpenAI gives it: every breakdown's counts, those that are 0 too
    **COUNTS,
    "prompt_tokens_details": {"cached_tokens": 96, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 32, "audio_tokens": 0},
}
ZEROS = {"prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {}}


def reported(response: Response) -> tuple[int, int, int, int]:
    usage = response.usage
    assert usage is not None
    cached = usage.input_tokens_details.cached_tokens
    reasoning = usage.output_tokens_details.reasoning_tokens
    return usage.input_tokens, cached, usage.output_tokens, reasoning


def test_a_response_reports_its_cached_and_reasoning_tokens_now_and_when_retrieved(
    proxy: Proxy, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.usage = USAGE

    made = proxy.client.responses.create(model=MODEL, input="Hi, I'm Ana.")
    with proxy.client.responses.stream(
        model=MODEL, input="And now?", previous_response_id=made.id
    ) as stream:
        streamed = stream.get_final_response()

    for response in (made, streamed):
        assert reported(response) == (120, 96, 40, 32)
        assert reported(proxy.client.responses.retrieve(response.id)) == (120, 96, 40, 32)
    reply = proxy.get(f"/{chat_of(made)}/chat")[-1]
    assert reply["tokens"] == KEPT  # the breakdowns' counts but those that are 0


@pytest.mark.parametrize("usage", [COUNTS, {**COUNTS, **ZEROS}], ids=["none", "all 0"])
def test_a_reply_without_breakdowns_reports_none_and_its_counts_alone_are_kept(
    proxy: Proxy, fake_upstream: FakeUpstream, usage: dict[str, Any]
) -> None:
    fake_upstream.usage = usage

    made = proxy.client.responses.create(model=MODEL, input="Hi")

    assert reported(made) == (120, 0, 40, 0)
    assert proxy.get(f"/{chat_of(made)}/chat")[-1]["tokens"] == COUNTS


def test_an_export_carries_the_breakdowns_and_imports_as_the_same_bytes(
    proxy: Proxy, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.usage = USAGE
    chat = chat_of(proxy.client.responses.create(model=MODEL, input="Hi"))
    exported = http("GET", f"{proxy.url}/{chat}/export", headers={"X-API-Key": KEY})
    assert exported.status == 200, exported.body

    other = {"X-API-Key": OTHER_KEY}
    imported = http("POST", f"{proxy.url}/import", exported.body, headers=other)

    assert imported.status == 200, imported.body
    assert imported.json()["imported"] == [chat]
    again = http("GET", f"{proxy.url}/{chat}/export", headers=other)
    assert again.body == exported.body
    assert exported.json()["items"][-1]["tokens"] == KEPT


@pytest.mark.parametrize("details", [None, {"cached_tokens": None}], ids=["null", "null entry"])
@pytest.mark.parametrize("headers", [{"X-Chat-Id": "c1"}, {}], ids=["chat", "pass-through"])
def test_a_chat_completion_passes_on_the_providers_breakdowns_as_its_schema_says(
    client: ProxyClient, fake_upstream: FakeUpstream, headers: dict[str, str], details: Any
) -> None:
    fake_upstream.usage = {**COUNTS, "prompt_tokens_details": details}
    sent = {"messages": [{"role": "user", "content": "hi"}]}

    answer = client.post("/v1/chat/completions", json=sent, headers=headers)

    assert answer.status_code == 200
    assert answer.get_json()["usage"]["prompt_tokens_details"] == details
    spec = client.get("/openapi.json").get_json()
    schema = {**spec, "$ref": "#/components/schemas/ChatCompletion"}
    assert [e.message for e in Draft202012Validator(schema).iter_errors(answer.get_json())] == []
