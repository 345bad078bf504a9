"""What a tenant is told when the model provider refuses the proxy's call: the provider's words
about the request itself (a bad parameter, an unknown model, a context too long) are passed on,
as the tenant needs them; its words about the operator's account (a fragment of the key, the
organization's or project's id, its rate limits, billing, plan, quota or credits) never reach
a tenant, in an answer or in a stream's error event, and the operator's log names the error's
code. The real server process over the fake upstream, made to answer each error, driven by the
official openai SDK on `/v1/chat/completions` (with a chat id and without) and `/v1/responses`.
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any

import openai
import pytest

from harness.fake_upstream import FakeUpstream, Fault
from harness.server_process import StartServer, server_env
from tests.conftest import SDK_KEY

MODEL = "gpt-4.1-mini"
KEY_FRAGMENT = "sk-ab***cd"
ORG = "org-AbC123xyz"
PROJECT = "proj_AbC123xyz"
# What of the operator's account the provider's messages below hold: none of it may show.
ACCOUNT = (KEY_FRAGMENT, ORG, PROJECT, "billing", "Billing", "plan", "credits", "organization")

TPM = (
    f"Rate limit reached for gpt-4.1-mini in organization {ORG} on tokens per min (TPM):"
    " Limit 30000, Used 29000, Requested 2000. Please try again in 2s. Visit"
    " https://platform.openai.com/account/rate-limits to learn more."
)
WITHHELD = [
    # status, message, code, the proxy's status, its code
    (401, f"Incorrect API key provided: {KEY_FRAGMENT}. You can find your API key at"
     " https://platform.openai.com/account/api-keys.", "invalid_api_key", 502, "upstream_auth"),
    (429, TPM, "rate_limit_exceeded", 503, "upstream_rate_limited"),
    (429, "You exceeded your current quota, please check your plan and billing details.",
     "insufficient_quota", 502, "upstream_rejected"),
    (413, f"Request too large for gpt-4.1-mini in organization {ORG} on tokens per min (TPM):"
     " Limit 30000, Requested 45000.", "rate_limit_exceeded", 502, "upstream_rejected"),
    (400, "Billing hard limit has been reached", "billing_hard_limit_reached", 502,
     "upstream_rejected"),
    (400, "Your organization must be verified to stream this model. Please go to:"
     " https://platform.openai.com/settings/organization/general", None, 502,
     "upstream_rejected"),
    (404, f"Project `{PROJECT}` does not have access to model `gpt-4.1-mini`", "model_not_found",
     502, "upstream_rejected"),
    (402, "Insufficient credits. Add more using https://example.com/settings/credits", None,
     502, "upstream_rejected"),
    (500, f"The server had an error processing your request for {ORG}.", None, 502,
     "upstream_error"),
]  # fmt: skip
PASSED_ON = [
    (400, "This model's maximum context length is 128000 tokens. However, your messages"
     " resulted in 130000 tokens. Please reduce the length of the messages.",
     "context_length_exceeded", 400),
    (400, "Invalid value for 'top_p': expected a number between 0 and 1.", "invalid_value", 400),
    (404, "The model `gpt-4.1-mini` does not exist or you do not have access to it.",
     "model_not_found", 502),
    (400, "Invalid value for 'stop'.", {"odd": "a code that is no string"}, 400),
]  # fmt: skip


@pytest.fixture
def proxy(start_server: StartServer, proxy_env: dict[str, str]) -> tuple[openai.OpenAI, str]:
    server = start_server(server_env(**proxy_env, PROXY_API_KEYS=f"sdk={SDK_KEY}"))
    return openai.OpenAI(api_key=SDK_KEY, base_url=f"{server.url}/v1", max_retries=0), server.url


def calls(client: openai.OpenAI) -> dict[str, Any]:
    """One call of each kind, by its name: chat mode, pass-through, a Responses turn."""
    ask: Any = [{"role": "user", "content": "hi"}]
    complete = partial(client.chat.completions.create, model=MODEL, messages=ask)
    return {
        "chat": lambda: complete(extra_headers={"X-Chat-Id": "refused"}),
        "pass-through": complete,
        "responses": lambda: client.responses.create(model=MODEL, input="hi"),
    }


def answer_to(fake_upstream: FakeUpstream, call: Any, fault: Fault) -> openai.APIStatusError:
    fake_upstream.script(fault)
    with pytest.raises(openai.APIStatusError) as failed:
        call()
    return failed.value


@pytest.mark.parametrize(("status", "message", "code", "answered", "ours"), WITHHELD)
def test_the_providers_words_about_the_operators_account_reach_no_tenant(
    proxy: tuple[openai.OpenAI, str],
    fake_upstream: FakeUpstream,
    status: int,
    message: str,
    code: str | None,
    answered: int,
    ours: str,
) -> None:
    client, _ = proxy
    for name, call in calls(client).items():
        error = answer_to(fake_upstream, call, Fault.error(status, message, code=code))

        assert (error.status_code, error.code) == (answered, ours), name
        body = error.response.text
        assert not [word for word in ACCOUNT if word in body], (name, body)
        if ours == "upstream_rejected" and status != 429:
            assert error.response.json()["error"]["message"] == (
                "the model provider refused the call over this service's account with it, not"
                f" over the request (HTTP {status})"
            )


@pytest.mark.parametrize(("status", "message", "code", "answered"), PASSED_ON)
def test_the_providers_words_about_the_request_reach_the_tenant(
    proxy: tuple[openai.OpenAI, str],
    fake_upstream: FakeUpstream,
    status: int,
    message: str,
    code: Any,
    answered: int,
) -> None:
    client, _ = proxy
    for name, call in calls(client).items():
        error = answer_to(fake_upstream, call, Fault.error(status, message, code=code))

        assert (error.status_code, error.code) == (answered, "upstream_rejected"), name
        assert error.response.json()["error"]["message"] == message, name


def stream_failing(error: dict[str, Any]) -> Fault:
    """A stream that says one word, then an error event."""
    chunk = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": MODEL,
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hello"}}],
    }
    events = f"data: {json.dumps(chunk)}\n\ndata: {json.dumps({'error': error})}\n\n"
    return Fault(body=events, headers={"Content-Type": "text/event-stream"})


@pytest.mark.parametrize(
    ("error", "told"),
    [
        (
            {"message": TPM, "type": "tokens", "code": "rate_limit_exceeded"},
            "the model provider's stream failed over this service's account with it",
        ),
        (
            {"message": "The server had an error while processing your request.", "type": "x"},
            "the model provider's stream failed: The server had an error while processing your"
            " request.",
        ),
    ],
    ids=["account", "request"],
)
def test_a_streams_error_event_is_told_as_an_answer_would_be(
    proxy: tuple[openai.OpenAI, str],
    fake_upstream: FakeUpstream,
    error: dict[str, Any],
    told: str,
) -> None:
    client, _ = proxy
    fake_upstream.script(stream_failing(error))
    stream = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True
    )

    with pytest.raises(openai.APIError) as failed:
        for _ in stream:
            pass

    assert failed.value.message == told
    assert ORG not in str(failed.value.body)


def test_the_operators_log_names_what_was_withheld_but_not_its_words(
    start_server: StartServer, proxy_env: dict[str, str], fake_upstream: FakeUpstream
) -> None:
    server = start_server(server_env(**proxy_env, PROXY_API_KEYS=f"sdk={SDK_KEY}"))
    client = openai.OpenAI(api_key=SDK_KEY, base_url=f"{server.url}/v1", max_retries=0)
    words = "Billing hard limit has been reached"
    fault = Fault.error(400, words, code="billing_hard_limit_reached")

    answer_to(fake_upstream, calls(client)["pass-through"], fault)
    server.stop()

    logs = server.stderr_text() + server.stdout_text()
    assert "code billing_hard_limit_reached" in logs
    assert words not in logs
