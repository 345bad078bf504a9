"""The real server process for the Responses API's tests, with the official openai SDK's clients
of two tenants (the `proxy` fixture), and what those tests compare (the chat a response is in,
what the fake upstream was sent, what it answers) and send (a function tool)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.types.responses import Response

from harness.fake_upstream import FakeUpstream, Fault
from harness.server_process import StartServer, http, server_env

KEY = "responses-key-0123456789abcdef"
OTHER_KEY = "responses-other-0123456789abc"
MODEL = "gpt-4.1-mini"
SYSTEM = "Be kind."
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


class Proxy:
    """The real server process, with a key for the tenant `ana` and one for `bo`."""

    def __init__(self, url: str):
        self.url = url
        self.client = openai.OpenAI(api_key=KEY, base_url=f"{url}/v1", max_retries=0)
        self.other = openai.OpenAI(api_key=OTHER_KEY, base_url=f"{url}/v1", max_retries=0)

    def get(self, path: str) -> Any:
        reply = http("GET", f"{self.url}{path}", headers={"X-API-Key": KEY})
        assert reply.status == 200, reply.body
        return reply.json()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        reply = http("POST", f"{self.url}{path}", body, headers={"X-API-Key": KEY})
        assert reply.status == 200, reply.body
        return reply.json()

    def chats(self) -> list[str]:
        return [chat["id"] for chat in self.get("/chats")["chats"]]

    def path(self, chat: str) -> list[tuple[str, Any]]:
        """The chat's current path as (role, content) pairs, its system prompt first."""
        return [(m["role"], m["content"]) for m in self.get(f"/{chat}/chat")]

    def __enter__(self) -> Proxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()
        self.other.close()


def start_proxy(start_server: StartServer, proxy_env: dict[str, str], **env: str) -> Proxy:
    keys = f"ana={KEY},bo={OTHER_KEY}"
    values = {**proxy_env, "PROXY_API_KEYS": keys, "SYSTEM_PROMPT": SYSTEM, **env}
    return Proxy(start_server(server_env(**values)).url)


@pytest.fixture
def proxy(start_server: StartServer, proxy_env: dict[str, str]) -> Iterator[Proxy]:
    with start_proxy(start_server, proxy_env) as proxy:
        yield proxy


def chat_named(response_id: str) -> str:
    """The chat a response id names (`resp_<chat>_<reply id>`)."""
    return response_id.removeprefix("resp_").rsplit("_", 1)[0]


def chat_of(response: Response) -> str:
    """The chat a response names."""
    return chat_named(response.id)


def sent_upstream(fake_upstream: FakeUpstream) -> list[tuple[str, Any]]:
    """The messages of the upstream's last request, as (role, content) pairs."""
    return [(m["role"], m.get("content")) for m in fake_upstream.chat_requests()[-1]["messages"]]


def said(text: str, earlier: int) -> str:
    """The fake upstream's reply to the user message `text` after `earlier` messages."""
    plural = "" if earlier == 1 else "s"
    return f"[dev upstream] You said: {text}. (I can see {earlier} earlier message{plural}.)"


def script_call(fake_upstream: FakeUpstream, call_id: str, name: str = "get_weather") -> str:
    """Have the model's next reply call the function `name` by the id `call_id` (as another
    server's model may, either longer than OpenAI's 64 characters); return the id."""
    call = {"id": call_id, "type": "function", "function": {"name": name}}
    call["function"]["arguments"] = '{"city": "Oslo"}'
    message = {"role": "assistant", "content": None, "tool_calls": [call]}
    choice = {"index": 0, "message": message, "finish_reason": "tool_calls"}
    usage = {"prompt_tokens": 9, "completion_tokens": 9, "total_tokens": 18}
    completion = {"id": "c", "object": "chat.completion", "created": 1, "model": MODEL}
    fake_upstream.script(Fault(body={**completion, "choices": [choice], "usage": usage}))
    return call_id
