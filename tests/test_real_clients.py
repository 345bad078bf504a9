"""Real clients of `/v1/chat/completions` in chat mode, against the real server process.

The clients people use, as they ship: the official openai Node SDK (npm `openai`, driven by
`tests/js/complete.mjs`), simonw's `llm` CLI (an OpenAI-compatible model configured in
`extra-openai-models.yaml`, its headers carrying the chat id) and LangChain's `ChatOpenAI`
(`default_headers`). Each holds a chat by its `X-Chat-Id`, streamed and not; the tests read what
the proxy stored (`GET /<chat_id>/chat`) and what the fake upstream was sent. Both stores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from langchain_openai import ChatOpenAI

from harness.fake_upstream import FakeUpstream
from harness.server_process import StartServer, http, server_env

PROXY_KEY = "clients-key-0123456789abcdef"
MODEL = "gpt-4.1-mini"
SYSTEM = "Be kind."
JS = Path(__file__).parent / "js"
LLM = Path(sys.executable).parent / "llm"  # the CLI that requirements-dev.txt installs

Plan = dict[str, Any]  # JSON to and from the Node scripts


@pytest.fixture
def proxy_url(start_server: StartServer, proxy_env: dict[str, str]) -> str:
    """The real server process on the fake upstream and the parametrized store, with a key and
    a global system prompt."""
    env = server_env(**proxy_env, PROXY_API_KEYS=f"clients={PROXY_KEY}", SYSTEM_PROMPT=SYSTEM)
    return start_server(env).url


def stored(url: str, chat: str) -> list[tuple[str, Any]]:
    """The chat's current path as (role, content) pairs."""
    reply = http("GET", f"{url}/{chat}/chat", headers={"X-API-Key": PROXY_KEY})
    assert reply.status == 200, reply.body
    return [(m["role"], m["content"]) for m in reply.json()]


def sent_upstream(fake_upstream: FakeUpstream) -> list[list[tuple[str, Any]]]:
    """The messages of each request the upstream got, as (role, content) pairs."""
    requests = fake_upstream.chat_requests()
    return [[(m["role"], m.get("content")) for m in r["messages"]] for r in requests]


def conversation(turns: list[str], replies: list[str]) -> list[tuple[str, Any]]:
    """The stored path of a chat with the global system prompt and these turns."""
    pairs = [
        [("user", turn), ("assistant", reply)] for turn, reply in zip(turns, replies, strict=True)
    ]
    return [("system", SYSTEM), *(message for pair in pairs for message in pair)]


def user_message(text: str) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": text}]}


def reply_text(completion: Plan) -> str:
    """The text of a chat.completion, or of the chunks that streamed one (`{"chunks": [...]}`)."""
    assert "error" not in completion, completion["error"]
    if "chunks" not in completion:
        return str(completion["choices"][0]["message"]["content"])
    chunks = completion["chunks"]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def run_client(command: list[str], stdin: str, env: dict[str, str] | None = None) -> str:
    """Run a client's command with `stdin` as its standard input; its standard output."""
    done = subprocess.run(
        command, input=stdin, capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


# -- the official openai Node SDK ---------------------------------------------------------------


def run_script(script: str, plan: Plan) -> Any:
    """Run the Node script `tests/js/<script>` on `plan`; the JSON it printed."""
    if not (JS / "node_modules" / "openai").is_dir():
        pytest.fail("the JS clients are not installed: `make unit` runs `npm ci` in tests/js")
    return json.loads(run_client(["node", str(JS / script)], json.dumps(plan)))


def run_node(url: str, chat: str, requests: list[Plan]) -> list[Plan]:
    """Send `requests` with the Node SDK (`tests/js/complete.mjs`); what it made of each."""
    plan = {
        "baseURL": f"{url}/v1",
        "apiKey": PROXY_KEY,
        "headers": {"X-Chat-Id": chat},
        "requests": requests,
    }
    results: list[Plan] = run_script("complete.mjs", plan)
    return results


def test_node_sdk_holds_a_chat_by_id_plain_and_streamed(
    proxy_url: str, fake_upstream: FakeUpstream
) -> None:
    turns = ["Hi, I'm Ana.", "What is my name?", "Bye"]
    streamed_body = {**user_message(turns[1]), "stream_options": {"include_usage": True}}

    plain, streamed, helper = run_node(
        proxy_url,
        "node-chat",
        [
            {"call": "create", "body": user_message(turns[0])},
            {"call": "chunks", "body": streamed_body},
            {"call": "stream", "body": user_message(turns[2])},  # the SDK's stream helper
        ],
    )

    assert plain["object"] == "chat.completion"
    assert plain["choices"][0]["finish_reason"] == "stop"
    assert plain["usage"]["total_tokens"] > 0
    chunks = streamed["chunks"]
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["total_tokens"] > 0
    assert helper["choices"][0]["finish_reason"] == "stop"
    replies = [reply_text(plain), reply_text(streamed), reply_text(helper)]
    history = stored(proxy_url, "node-chat")
    assert history == conversation(turns, replies)
    assert sent_upstream(fake_upstream)[-1] == history[:-1]  # the proxy sent the history


def test_node_sdk_raises_the_proxys_errors_and_nothing_is_stored(
    proxy_url: str, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.cut_stream_after = 3  # every stream breaks off after its third event

    first, wrong_key, broken = run_node(
        proxy_url,
        "node-errors",
        [
            {"call": "create", "body": user_message("kept")},
            {
                "call": "create",
                "body": user_message("refused"),
                "options": {"headers": {"Authorization": "Bearer wrong-key-0123456789abcd"}},
            },
            {"call": "chunks", "body": user_message("broken off")},
        ],
    )

    assert wrong_key["error"]["class"] == "AuthenticationError"
    assert (wrong_key["error"]["status"], wrong_key["error"]["code"]) == (401, "unauthorized")
    # After its first bytes a stream's error is its last event; the SDK raises it as an APIError.
    assert broken["error"]["class"] == "APIError"
    assert broken["error"]["code"] == "upstream_error"
    assert stored(proxy_url, "node-errors") == conversation(["kept"], [reply_text(first)])


# -- simonw's llm CLI ---------------------------------------------------------------------------


def llm_home(tmp_path: Path, url: str, chat: str) -> Path:
    """An `LLM_USER_PATH` with the proxy as the model `chatproxy`: its `api_base`, a key stored
    as `llm keys set` stores it, and the chat id in `headers`."""
    home = tmp_path / "llm"
    home.mkdir()
    (home / "extra-openai-models.yaml").write_text(
        f"- model_id: chatproxy\n"
        f"  model_name: {MODEL}\n"
        f"  api_base: {url}/v1\n"
        f"  api_key_name: chatproxy\n"
        f"  headers:\n"
        f"    X-Chat-Id: {chat}\n"
    )
    (home / "keys.json").write_text(json.dumps({"chatproxy": PROXY_KEY}))
    return home


def run_llm(home: Path, *args: str, stdin: str = "") -> str:
    """Run the `llm` CLI with its home in `home`; its standard output. Its standard input is
    `stdin`, never the test runner's: llm adds one that is not a terminal to the prompt."""
    return run_client([str(LLM), *args], stdin, {**os.environ, "LLM_USER_PATH": str(home)})


def test_llm_cli_sends_each_prompt_into_the_chat_by_id(
    proxy_url: str, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    home = llm_home(tmp_path, proxy_url, "llm-chat")
    turns = ["Hi, I'm Ana.", "What is my name?"]

    streamed = run_llm(home, "-m", "chatproxy", turns[0])  # llm streams unless told not to
    plain = run_llm(home, "-m", "chatproxy", "--no-stream", turns[1])

    replies = [streamed.removesuffix("\n"), plain.removesuffix("\n")]
    history = stored(proxy_url, "llm-chat")
    assert history == conversation(turns, replies)
    # Each prompt started a new conversation in llm's eyes: the chat's memory is the proxy's.
    assert sent_upstream(fake_upstream)[-1] == history[:-1]


# -- LangChain's ChatOpenAI ---------------------------------------------------------------------


def chat_model(url: str, chat: str) -> ChatOpenAI:
    """LangChain's ChatOpenAI on the proxy, the chat id in its default headers."""
    return ChatOpenAI(
        model=MODEL,
        base_url=f"{url}/v1",
        api_key=PROXY_KEY,
        default_headers={"X-Chat-Id": chat},
        max_retries=0,
        timeout=20,
    )


def test_langchain_chat_openai_talks_into_the_chat_by_id(
    proxy_url: str, fake_upstream: FakeUpstream
) -> None:
    model = chat_model(proxy_url, "langchain-chat")
    turns = ["Hi, I'm Ana.", "What is my name?"]

    answer = model.invoke([HumanMessage(turns[0])])
    streamed = "".join(str(chunk.content) for chunk in model.stream([HumanMessage(turns[1])]))

    assert answer.usage_metadata is not None
    assert answer.usage_metadata["total_tokens"] > 0
    assert answer.response_metadata["finish_reason"] == "stop"
    history = stored(proxy_url, "langchain-chat")
    assert history == conversation(turns, [str(answer.content), streamed])
    assert sent_upstream(fake_upstream)[-1] == history[:-1]
