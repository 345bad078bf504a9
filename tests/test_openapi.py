"""The OpenAPI spec names every route the app serves, is valid OpenAPI 3.1, and its docs page is
served offline with a strict Content-Security-Policy."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from chatproxy.http import bodies, conversation_bodies
from chatproxy.http.openapi import OPERATIONS, template
from chatproxy.http.responses_request import ResponsesRequest
from harness.server_process import StartServer, http, server_env
from tests.asgi_client import ProxyClient
from tests.conftest import MakeClient

KEY = "docs-test-key-0123456789"


@pytest.fixture
def store_kind() -> str:
    """The spec does not depend on the store: one is enough here."""
    return "sqlite"


@pytest.fixture
def keyed_client(make_client: MakeClient) -> ProxyClient:
    return make_client(PROXY_API_KEYS=f"docs={KEY}")


def served_spec(client: ProxyClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    spec: dict[str, Any] = response.get_json()
    return spec


def app_rules() -> dict[tuple[str, str], bool]:
    """Every (path, method) the running app's router answers, its path as the spec writes it,
    and whether it is public (a path with one slash more is the same route)."""
    router = sys.modules["main"].app.router
    return {
        (template(route.path), method): handled.public
        for route in router.routes
        if route.path == "/" or not route.path.endswith("/")
        for method, handled in route.endpoint.by_method.items()
    }


def spec_operations(spec: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (path, method.upper()): operation
        for path, item in spec["paths"].items()
        for method, operation in item.items()
    }


def test_spec_names_every_route_of_the_app_with_its_methods(keyed_client: ProxyClient) -> None:
    spec = served_spec(keyed_client)
    assert set(spec_operations(spec)) == set(app_rules())


def test_every_listed_operation_names_a_route_of_the_app(keyed_client: ProxyClient) -> None:
    assert set(OPERATIONS) <= set(app_rules())


def test_spec_marks_exactly_the_public_routes_as_needing_no_key(keyed_client: ProxyClient) -> None:
    operations = spec_operations(served_spec(keyed_client))
    for route, public in app_rules().items():
        assert (operations[route].get("security") == []) == public, route
    assert served_spec(keyed_client)["security"] == [{"apiKey": []}, {"bearer": []}]


def test_spec_is_valid_openapi_3_1(client: ProxyClient) -> None:
    spec = served_spec(client)
    assert spec["openapi"] == "3.1.0"
    validate(spec)  # raises on an invalid document


def test_request_bodies_are_the_handlers_pydantic_models(client: ProxyClient) -> None:
    schemas = served_spec(client)["components"]["schemas"]
    template = "#/components/schemas/{model}"
    models = (
        bodies.ContentBody,
        bodies.TurnBody,
        bodies.LeafBody,
        bodies.ImageBody,
        bodies.SettingsBody,
        bodies.CompletionRequest,
        conversation_bodies.ConversationBody,
        conversation_bodies.MetadataBody,
        conversation_bodies.ItemsBody,
    )
    for model in models:
        expected = model.model_json_schema(ref_template=template)
        expected.pop("$defs", None)
        assert schemas[model.__name__] == expected
    body = served_spec(client)["paths"]["/{chat_id}/chat"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {"$ref": f"{template[:-7]}TurnBody"}


def test_turns_document_idempotency_and_their_event_stream(client: ProxyClient) -> None:
    paths = served_spec(client)["paths"]
    for path in ("/{chat_id}/chat", "/{chat_id}/img", "/v1/chat/completions", "/v1/responses"):
        operation = paths[path]["post"]
        params = {p["$ref"].rsplit("/", 1)[1] for p in operation["parameters"]}
        assert "Idempotency-Key" in params
        ok = operation["responses"]["200"]
        assert set(ok["content"]) == {"application/json", "text/event-stream"}
        assert "Idempotent-Replayed" in ok["headers"]
    assert "X-Chat-Id" in str(paths["/v1/chat/completions"]["post"]["parameters"])
    assert paths["/v1/models"]["get"]["responses"]["401"]["$ref"].endswith("OpenAIError401")
    assert paths["/chats"]["get"]["responses"]["401"]["$ref"].endswith("/Error401")


@pytest.mark.parametrize("headers", [{"X-Chat-Id": "c1"}, {}], ids=["chat", "pass-through"])
def test_a_chat_completion_answer_matches_its_schema_down_to_the_message(
    client: ProxyClient, headers: dict[str, str]
) -> None:
    schema = {**served_spec(client), "$ref": "#/components/schemas/ChatCompletion"}
    body = {"messages": [{"role": "user", "content": "hi"}]}
    answer = client.post("/v1/chat/completions", json=body, headers=headers).get_json()
    without_message = {**answer, "choices": [{"index": 0, "finish_reason": "stop"}]}

    assert list(Draft202012Validator(schema).iter_errors(answer)) == []
    assert list(Draft202012Validator(schema).iter_errors(without_message)) != []
    assert answer["choices"][0]["message"]["content"]


def test_the_responses_request_schema_names_the_fields_the_dialect_reads(
    client: ProxyClient,
) -> None:
    schema = served_spec(client)["components"]["schemas"]["ResponsesRequest"]
    assert set(schema["properties"]) == set(ResponsesRequest.model_fields)
    required = {name for name, f in ResponsesRequest.model_fields.items() if f.is_required()}
    assert set(schema["required"]) == required
    assert schema["additionalProperties"] is False  # an unknown field is refused


def test_a_response_and_its_items_match_their_schemas_and_its_id_the_parameters_pattern(
    client: ProxyClient,
) -> None:
    spec = served_spec(client)
    validator = Draft202012Validator({**spec, "$ref": "#/components/schemas/Response"})
    answer = client.post("/v1/responses", json={"input": "hi"}).get_json()
    pattern = spec["components"]["parameters"]["response_id"]["schema"]["pattern"]

    assert list(validator.iter_errors(answer)) == []
    assert list(validator.iter_errors({**answer, "output": [{"type": "message"}]})) != []
    assert re.fullmatch(pattern, answer["id"])
    assert client.get(f"/v1/responses/{answer['id']}").get_json() == answer
    items = client.get(f"/v1/responses/{answer['id']}/input_items").get_json()
    listing = Draft202012Validator({**spec, "$ref": "#/components/schemas/ResponseItemList"})
    assert list(listing.iter_errors(items)) == []
    assert [item["role"] for item in items["data"]] == ["user"]


def test_conversation_answers_match_their_schemas_down_to_the_items(client: ProxyClient) -> None:
    spec = served_spec(client)

    def errors(answer: Any, name: str) -> list[Any]:
        schema = {**spec, "$ref": f"#/components/schemas/{name}"}
        return list(Draft202012Validator(schema).iter_errors(answer))

    items = [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": "hi"},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "done"},
    ]
    made = client.post("/v1/conversations", json={"items": items}).get_json()
    listed = client.get(f"/v1/conversations/{made['id']}/items").get_json()
    listing = client.get("/v1/conversations").get_json()
    history = client.get(f"/{made['id']}/chat").get_json()  # the chat API reads the same chat
    gone = client.delete(f"/v1/conversations/{made['id']}").get_json()

    assert errors(made, "Conversation") == []
    assert [item["type"] for item in listed["data"]] == [
        "function_call_output", "function_call", "message", "message"
    ]  # fmt: skip
    assert [m["role"] for m in history] == ["developer", "user", "assistant", "tool"]
    message = {**spec, "$ref": "#/components/schemas/Message"}
    assert all(not list(Draft202012Validator(message).iter_errors(m)) for m in history)
    assert errors(listed, "ConversationItemList") == []
    assert errors(listing, "ConversationList") == []
    assert errors(gone, "ConversationDeleted") == []
    assert errors(
        {**listed, "data": [{"id": "x", "type": "web_search_call"}]}, "ConversationItemList"
    )
    assert errors({**made, "created_at": 1.5}, "Conversation")


def test_error_responses_carry_their_headers(client: ProxyClient) -> None:
    responses = served_spec(client)["components"]["responses"]
    assert {"Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} <= set(
        responses["Error429"]["headers"]
    )
    assert responses["Error409"]["headers"]["Retry-After"]["required"] is True
    assert responses["Error401"]["headers"]["WWW-Authenticate"]["required"] is True


@pytest.mark.parametrize("path", ["/openapi.json", "/docs", "/docs/docs.js"])
def test_docs_need_no_key(keyed_client: ProxyClient, path: str) -> None:
    assert keyed_client.get(path).status_code == 200
    assert keyed_client.get("/system").status_code == 401  # while the API does


def test_docs_with_a_trailing_slash_redirect_to_the_page(client: ProxyClient) -> None:
    response = client.get("/docs/")

    assert response.status_code == 308
    assert response.headers["Location"] == "../docs"  # relative: works under a path prefix


def test_docs_page_loads_only_files_the_proxy_serves(client: ProxyClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert "script-src 'self';" in csp
    assert "unsafe" not in csp
    html = page.get_data(as_text=True)
    assert "<script>" not in html  # no inline script
    assert "://" not in html  # nothing remote
    links = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert len(links) == 4
    kinds = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
    for link in links:
        asset = client.get(f"/{link}")  # relative to /docs, as a browser resolves it
        assert asset.status_code == 200, link
        assert asset.mimetype == kinds[link[link.rindex(".") :]], link
        assert asset.headers["X-Content-Type-Options"] == "nosniff"
    assert b"SwaggerUIBundle" in client.get("/docs/swagger-ui-bundle.js").data


@pytest.mark.parametrize("name", ["limit", "before"])
@pytest.mark.parametrize("value", ["²", "\u0661", "-1", "1.5", "9" * 19, "9" * 5000])
def test_history_query_numbers_outside_the_spec_are_refused(
    client: ProxyClient, name: str, value: str
) -> None:
    response = client.get("/demo/chat", query_string={name: value})
    assert response.status_code == 400
    assert response.get_json()["code"] == "invalid_request"


def test_history_before_up_to_the_specs_maximum_is_accepted(client: ProxyClient) -> None:
    operation = served_spec(client)["paths"]["/{chat_id}/chat"]["get"]
    before = next(p for p in operation["parameters"] if p.get("name") == "before")
    maximum = before["schema"]["maximum"]
    assert client.post("/demo/chat", json={"content": "hi"}).status_code == 200
    response = client.get("/demo/chat", query_string={"before": str(maximum), "limit": "5"})
    assert response.status_code == 200
    assert [m["role"] for m in response.get_json()] == ["user", "assistant"]


def test_docs_page_renders_every_operation_in_a_browser(
    start_server: StartServer, proxy_env: dict[str, str], tmp_path: Path
) -> None:
    """Debian's chromium (`make test` installs it) renders /docs with only the proxy's files."""
    server = start_server(server_env(**proxy_env, PROXY_API_KEYS=f"docs={KEY}"))
    command = [
        "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={tmp_path / 'chromium'}",
        "--virtual-time-budget=10000", "--dump-dom", f"{server.url}/docs",
    ]  # fmt: skip
    dom = subprocess.run(command, capture_output=True, text=True, timeout=90, check=True).stdout
    rendered = set(re.findall(r'class="opblock-summary-path" data-path="([^"]+)"', dom))
    assert rendered == set(http("GET", f"{server.url}/openapi.json").json()["paths"])
