"""Fuzz the running proxy from its own spec: schemathesis generates requests for every operation of
`GET /openapi.json` and checks each answer against the spec (status, content type, headers, body).

The proxy is the real server process with API keys, Redis and the fake upstream; the test
authenticates with an admin key, so generated requests reach the handlers rather than a 401.
Data are generated deterministically (`derandomize`), so a run is the same on every machine.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import CheckFunction
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from harness.fake_upstream import FakeUpstream
from harness.server_process import Server, StartServer, http, server_env

KEY = "fuzz-key-0123456789abcdef"
AUTH = {"X-API-Key": KEY}
MIN_REQUESTS = 1000
# Examples per operation and mode; operations without inputs stop after their one request.
EXAMPLES = {GenerationMode.POSITIVE: 100, GenerationMode.NEGATIVE: 50}
UPSTREAM_FAULTS = {502, 503, 504}  # the provider failed or is away: not the proxy's fault
CHECKS: dict[GenerationMode, list[CheckFunction]] = {
    GenerationMode.POSITIVE: [
        status_code_conformance,
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
    ],
}
CHECKS[GenerationMode.NEGATIVE] = [*CHECKS[GenerationMode.POSITIVE], negative_data_rejection]


@pytest.fixture
def proxy(start_server: StartServer, fake_upstream: FakeUpstream, redis_url: str) -> Server:
    env = server_env(
        GPT_API_KEY="sk-test-proxy-key",
        OPENAI_BASE_URL=fake_upstream.base_url,
        UPSTREAM_MAX_RETRIES="0",
        UPSTREAM_TIMEOUT="5",
        REDIS_URL=redis_url,
        PROXY_API_KEYS=f"fuzz={KEY}",
        ADMIN_KEYS="fuzz",
        LOG_LEVEL="WARNING",
    )
    return start_server(env)


@pytest.mark.timeout(300)
def test_generated_requests_get_answers_that_match_the_spec(proxy: Server) -> None:
    reply = http("GET", f"{proxy.url}/openapi.json")  # a client that ignores proxy settings
    assert reply.status == 200
    schema = schemathesis.openapi.from_dict(reply.json())
    # The test sends its own key; generated X-API-Key / Authorization values would only be
    # overridden by it (X-API-Key wins), and their negations would then be wrongly "accepted".
    schema.config.generation.update(with_security_parameters=False)
    session = requests.Session()
    session.trust_env = False  # every request goes to the local server, never through a proxy
    sent: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    answered: Counter[tuple[str, int]] = Counter()
    started = time.monotonic()
    # The conversation the spec's examples name, held by the chat of that id (any chat is a
    # conversation) and made again before each operation: a fuzzed DELETE may remove it.
    example = reply.json()["paths"]["/v1/conversations/{conversation_id}"]["get"]
    conversation = f"{proxy.url}/{example['parameters'][0]['example']}/chat"

    def fuzz(operation: APIOperation, mode: GenerationMode) -> None:
        assert http("POST", conversation, {"content": "hi"}, headers=AUTH).status == 200

        @settings(
            max_examples=EXAMPLES[mode],
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(mode))
        def run(case: Case) -> None:
            response = case.call(base_url=proxy.url, session=session, headers=AUTH)
            sent[operation.label] += 1
            statuses[response.status_code] += 1
            answered[operation.label, response.status_code] += 1
            assert response.status_code < 500 or response.status_code in UPSTREAM_FAULTS, (
                f"{case.method} {case.formatted_path}: {response.status_code} {response.text}"
            )
            case.validate_response(response, checks=CHECKS[mode], headers=AUTH)

        run()

    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:
        fuzz(operation, GenerationMode.POSITIVE)
        if operation.body or any(operation.iter_parameters()):  # else there is nothing to break
            fuzz(operation, GenerationMode.NEGATIVE)

    elapsed = time.monotonic() - started
    total = sum(sent.values())
    print(f"{total} requests in {elapsed:.1f} s; statuses {dict(sorted(statuses.items()))}")
    assert total >= MIN_REQUESTS, sent
    assert set(sent) == {operation.label for operation in operations}, "an operation got none"
    assert statuses[200] > 0, statuses
    assert statuses[400] > 0, statuses
    for operation in operations:  # the examples reach a conversation, its items and the rest
        if operation.path.startswith("/v1/conversations"):
            assert answered[operation.label, 200] > 0, operation.label
