"""What the proxy's Responses API does not offer, answered as OpenAI answers it, so that the
official openai SDK raises its usual errors: `client.responses.cancel` (only a background
response can be cancelled, and the proxy makes none), `client.responses.input_tokens.count` and
`client.responses.compact` (endpoints the proxy does not serve). The real server process, both
stores."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from harness.fake_upstream import FakeUpstream
from harness.server_process import http
from tests.responses_client import KEY, MODEL, Proxy, chat_of, proxy

__all__ = ["proxy"]  # the fixture this module's tests use


def test_cancelling_a_response_is_refused_as_it_was_not_made_in_the_background(
    proxy: Proxy,
) -> None:
    response = proxy.client.responses.create(model=MODEL, input="Hi")

    with pytest.raises(openai.BadRequestError) as refused:
        proxy.client.responses.cancel(response.id)

    assert refused.value.body == {
        "message": "Only responses created with background=true can be cancelled; this proxy"
        f" answers every response when it is created ({response.id!r} is complete).",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_request",
    }
    found = proxy.client.responses.retrieve(response.id)
    assert found.model_dump() == response.model_dump()  # as it was


@pytest.mark.parametrize("names", ["another tenant's", "no reply", "not stored", "malformed"])
def test_cancelling_a_response_the_caller_has_none_of_is_not_found(
    proxy: Proxy, names: str
) -> None:
    mine = proxy.client.responses.create(model=MODEL, input="Hi")
    unstored = proxy.client.responses.create(model=MODEL, input="Hi", store=False)
    client = proxy.other if names == "another tenant's" else proxy.client
    response_id = {
        "another tenant's": mine.id,
        "no reply": f"resp_{chat_of(mine)}_7",
        "not stored": unstored.id,
        "malformed": "not-a-response",
    }[names]

    with pytest.raises(openai.NotFoundError) as missing:
        client.responses.cancel(response_id)

    assert missing.value.body == {
        "message": f"Response with id {response_id!r} not found.",
        "type": "invalid_request_error",
        "param": None,
        "code": "not_found",
    }


@pytest.mark.parametrize(
    ("call", "endpoint"),
    [
        (
            lambda client: client.responses.input_tokens.count(model=MODEL, input="How long?"),
            "POST /v1/responses/input_tokens",
        ),
        (
            lambda client: client.responses.compact(model=MODEL, input="Make it short."),
            "POST /v1/responses/compact",
        ),
    ],
    ids=["input-tokens-count", "compact"],
)
def test_an_endpoint_the_proxy_does_not_offer_is_not_found_naming_it(
    proxy: Proxy, fake_upstream: FakeUpstream, call: Any, endpoint: str
) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        call(proxy.client)

    assert_not_offered(missing.value.body, endpoint)
    assert fake_upstream.chat_requests() == []
    assert proxy.chats() == []


def assert_not_offered(error: object, endpoint: str) -> None:
    """`error` is the 404 in OpenAI's shape that says the proxy does not offer `endpoint`."""
    assert isinstance(error, dict)
    assert error["message"].startswith(f"{endpoint}: this proxy does not offer it")
    assert (error["type"], error["param"], error["code"]) == (
        "invalid_request_error",
        None,
        "not_found",
    )


@pytest.mark.parametrize("method", ["GET", "DELETE", "PUT", "PATCH", "POST"])
def test_every_method_of_an_endpoint_the_proxy_does_not_offer_is_not_found(
    proxy: Proxy, fake_upstream: FakeUpstream, method: str
) -> None:
    """Not a 405 that says to use POST, which is a 404 too: each method is the same 404 in
    OpenAI's shape, naming what was asked for."""
    for path in ("/v1/responses/input_tokens", "/v1/responses/compact"):
        body = {"model": MODEL, "input": "Hi"} if method in ("POST", "PUT", "PATCH") else None
        reply = http(method, f"{proxy.url}{path}", body, headers={"X-API-Key": KEY})

        assert (reply.status, reply.headers.get("Allow")) == (404, None)
        assert_not_offered(reply.json()["error"], f"{method} {path}")
    assert fake_upstream.chat_requests() == []
    assert proxy.chats() == []
