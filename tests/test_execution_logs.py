"""`LOG_EXECUTION_ID`, which Cloud Run functions sets on a function deployed with `gcloud
functions`: functions-framework then replaces the logging configuration main.py set up (its
own handler at WARNING, the proxy's loggers disabled), so the proxy sets its own up again; and
every line written while a request is served names the request's execution, as the framework's
own lines would, a summary made in the background too. Against the real server process, and in
process for the summaries' lines."""

from __future__ import annotations

import io
import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from chatproxy.logs import EXECUTION, JsonFormatter, execution
from chatproxy.service.folding import PROMPT
from harness.fake_upstream import FakeUpstream
from harness.server_process import StartServer, http, server_env
from tests.conftest import MakeClient
from tests.test_compaction import FACT, SMALL_WINDOW, filler, wait_for_summary

LABELS = "logging.googleapis.com/labels"
SPAN = "logging.googleapis.com/spanId"


def log_lines(stderr: str) -> list[dict[str, Any]]:
    """Every line the server wrote to stderr, each of which must be one JSON object."""
    return [json.loads(line) for line in stderr.splitlines() if line.strip()]


def requests_logged(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {line["message"]: line for line in lines if line["logger"] == "chatproxy.requests"}


@pytest.fixture
def env(fake_upstream: FakeUpstream, tmp_path: Path) -> dict[str, str]:
    return server_env(
        GPT_API_KEY="sk-test",
        OPENAI_BASE_URL=fake_upstream.base_url,
        STORE_PATH=str(tmp_path / "chats.sqlite3"),
        UPSTREAM_MAX_RETRIES="0",
    )


def test_with_execution_ids_on_the_proxys_lines_are_kept_and_name_their_request(
    start_server: StartServer, env: dict[str, str]
) -> None:
    server = start_server({**env, "LOG_EXECUTION_ID": "true"})
    named = {"Function-Execution-Id": "exec-7Ab", "X-Cloud-Trace-Context": "4bf92f35/42;o=1"}
    assert http("POST", f"{server.url}/c1/chat", {"content": "hi"}, headers=named).status == 200
    assert http("GET", f"{server.url}/c1/chat").status == 200
    forged = {"Function-Execution-Id": 'x" injected', "X-Cloud-Trace-Context": "nonsense"}
    assert http("GET", f"{server.url}/c2/chat", headers=forged).status == 200
    server.stop()  # flush its output before reading it

    lines = log_lines(server.stderr_text())
    logged = requests_logged(lines)
    assert logged["POST /c1/chat 200"][LABELS] == {"execution_id": "exec-7Ab"}
    assert logged["POST /c1/chat 200"][SPAN] == "42"
    made = [logged[m][LABELS]["execution_id"] for m in ("GET /c1/chat 200", "GET /c2/chat 200")]
    assert all(len(made_id) == 12 for made_id in made)
    assert made[0] != made[1]
    assert SPAN not in logged["GET /c2/chat 200"]
    started = [line for line in lines if "chatproxy ready" in line["message"]]
    assert len(started) == 1
    assert LABELS not in started[0]  # written before any request


def test_without_execution_ids_no_line_names_an_execution(
    start_server: StartServer, env: dict[str, str]
) -> None:
    server = start_server(env)
    named = {"Function-Execution-Id": "exec-7Ab"}
    assert http("POST", f"{server.url}/c1/chat", {"content": "hi"}, headers=named).status == 200
    server.stop()

    lines = log_lines(server.stderr_text())
    assert "POST /c1/chat 200" in requests_logged(lines)
    assert not [line for line in lines if LABELS in line or SPAN in line]


def test_every_line_written_while_a_request_is_served_names_its_execution() -> None:
    written = io.StringIO()
    handler = logging.StreamHandler(written)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.execution_logs")
    logger.addHandler(handler)
    named = EXECUTION.set(execution({"Function-Execution-Id": "exec-9"}))
    try:
        logger.warning("while serving")
    finally:
        EXECUTION.reset(named)
        logger.warning("after")
        logger.removeHandler(handler)

    during, after = (json.loads(line) for line in written.getvalue().splitlines())
    assert during[LABELS] == {"execution_id": "exec-9"}
    assert LABELS not in after


def test_a_summary_made_after_another_names_the_turn_that_made_it_due(
    make_client: MakeClient, fake_upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client(COMPACTION="summary", LOG_EXECUTION_ID="true", **SMALL_WINDOW)
    written = io.StringIO()
    handler = logging.StreamHandler(written)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("chatproxy.service.compactor")
    answer = fake_upstream.handle_chat

    def slow_summaries(handler: Any, body: dict[str, Any]) -> None:
        if body["messages"][0]["content"] == PROMPT:
            time.sleep(1.0)  # later turns make the next summary due while this one is made
        answer(handler, body)

    monkeypatch.setattr(fake_upstream, "handle_chat", slow_summaries)
    logger.addHandler(handler)
    try:
        for n, text in enumerate([FACT, *map(filler, range(1, 8))]):
            named = {"Function-Execution-Id": f"turn-{n}"}
            assert client.post("/c/chat", json={"content": text}, headers=named).status_code == 200
        wait_for_summary(client, covering=7)
        time.sleep(0.3)  # its log line
    finally:
        logger.removeHandler(handler)

    made = [json.loads(line) for line in written.getvalue().splitlines()]
    named = [line[LABELS]["execution_id"] for line in made if "summaries made" in line["message"]]
    assert len(named) >= 2
    assert len(set(named)) == len(named)  # each by the turn that made it due
