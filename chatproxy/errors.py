"""Own the error tree: every failure a client can see, with its HTTP status and a short code.

    ProxyError                      500 internal
    ├── BadRequest                  400 bad_request
    │   ├── InvalidJSON             400 invalid_json
    │   ├── InvalidChatId           400 invalid_chat_id
    │   ├── InvalidIdempotencyKey   400 invalid_idempotency_key
    │   └── ValidationFailed        400 invalid_request
    │       └── ContextLengthExceeded  400 context_length_exceeded
    ├── Unauthorized                401 unauthorized         (WWW-Authenticate)
    ├── Forbidden                   403 admin_only
    ├── NotFound                    404 not_found
    │   ├── ResponseNotFound        404 not_found
    │   ├── ModelNotFound           404 model_not_found
    │   └── NoRoute                 404 not_found
    │       └── NotOffered          404 not_found
    ├── MethodNotAllowed            405 method_not_allowed   (Allow header)
    ├── Conflict                    409 conflict             (Retry-After)
    │   ├── ChatBusy                409 chat_busy
    │   ├── TurnLeaseLost           409 turn_lease_lost
    │   └── IdempotencyInProgress   409 idempotency_in_progress
    ├── IdempotencyKeyReused        422 idempotency_key_reused
    ├── RateLimited                 429 rate_limited         (Retry-After, RateLimit-*)
    │   └── TokenBudgetExhausted    429 token_budget_exhausted
    ├── PayloadTooLarge             413 payload_too_large
    ├── StoreError                  500 store_error
    │   └── StoreUnavailable        503 store_unavailable    (Retry-After)
    └── UpstreamError               502 upstream_error       (upstream_errors.py)
        ├── UpstreamRejected        400/502 upstream_rejected (its words on the request only)
        ├── UpstreamAuthFailed      502 upstream_auth
        ├── UpstreamBadResponse     502 upstream_bad_response
        ├── UpstreamRateLimited     503 upstream_rate_limited (Retry-After)
        └── UpstreamTimeout         504 upstream_timeout

Lower layers translate foreign exceptions (redis, openai) into these at their boundary;
`http/app.py` turns them into JSON responses in one place. In OpenAI's shape (under `/v1`) an
error's `type` follows its status (`OPENAI_ERROR_TYPES`): a 404 is an `invalid_request_error`,
as OpenAI answers a response, a conversation or a URL it has none of (its API has no
`not_found_error`).
"""

from __future__ import annotations

from typing import Any

OPENAI_ERROR_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    409: "conflict_error",
    429: "rate_limit_error",
}


class ProxyError(Exception):
    """Base of every error the proxy reports to a client."""

    status = 500
    code = "internal"
    default_message = "internal error"
    param: str | None = None  # the request field at fault, in OpenAI's shape

    def __init__(self, message: str | None = None, *, headers: dict[str, str] | None = None):
        super().__init__(message or self.default_message)
        self.message = message or self.default_message
        self.headers = dict(headers or {})

    def to_json(self) -> dict[str, str]:
        """Return the body clients receive: the seed's `error` plus a machine-readable `code`."""
        return {"error": self.message, "code": self.code}

    def to_openai_json(self) -> dict[str, Any]:
        """Return the body in OpenAI's error shape, for the OpenAI-compatible endpoint: the one
        place it is built, for an error answer and for the event that ends a stream alike."""
        kind = OPENAI_ERROR_TYPES.get(self.status, "invalid_request_error")
        if self.status >= 500:
            kind = "api_error"
        error = {"message": self.message, "type": kind, "param": self.param, "code": self.code}
        return {"error": error}


class BadRequest(ProxyError):
    status = 400
    code = "bad_request"
    default_message = "bad request"


class InvalidJSON(BadRequest):
    code = "invalid_json"
    default_message = "the request body must be a JSON object"


class InvalidChatId(BadRequest):
    code = "invalid_chat_id"
    default_message = "chat id must be 1-128 characters of A-Z a-z 0-9 . _ @ : -"


class InvalidIdempotencyKey(BadRequest):
    code = "invalid_idempotency_key"
    default_message = "Idempotency-Key must be 1-255 visible ASCII characters"


class ValidationFailed(BadRequest):
    code = "invalid_request"

    def __init__(self, message: str | None = None, *, param: str | None = None):
        super().__init__(message)
        self.param = param


class ContextLengthExceeded(ValidationFailed):
    """What a turn must send does not fit CONTEXT_TOKENS, and it may not leave history out."""

    code = "context_length_exceeded"


class Unauthorized(ProxyError):
    status = 401
    code = "unauthorized"
    default_message = "a valid API key is required"

    def __init__(self, message: str | None = None):
        super().__init__(message, headers={"WWW-Authenticate": 'Bearer realm="chatproxy"'})


class Forbidden(ProxyError):
    status = 403
    code = "admin_only"
    default_message = "only an admin key may do this"


class NotFound(ProxyError):
    status = 404
    code = "not_found"
    default_message = "not found"


class ResponseNotFound(NotFound):
    """A response (or conversation) the caller has none of, answered as OpenAI answers it."""

    def __init__(self, message: str, *, param: str | None = None):
        super().__init__(message)
        self.param = param


class ModelNotFound(NotFound):
    """A model the proxy does not allow (ALLOWED_MODELS), answered as OpenAI answers one it
    does not have."""

    code = "model_not_found"
    param = "model"

    def __init__(self, model: str):
        super().__init__(f"The model '{model:.200}' does not exist")


class NoRoute(NotFound):
    """A path the proxy has no route for, answered as OpenAI answers a URL it does not know."""


class NotOffered(NoRoute):
    """An endpoint of OpenAI's API that the proxy does not serve (its message says so)."""


class MethodNotAllowed(ProxyError):
    status = 405
    code = "method_not_allowed"

    def __init__(self, allowed: list[str]):
        methods = ", ".join(sorted(allowed))
        super().__init__(f"method not allowed; use {methods}", headers={"Allow": methods})


class Conflict(ProxyError):
    """The chat is in a state that refuses this request now; trying again later may work."""

    status = 409
    code = "conflict"

    def __init__(self, message: str | None = None, *, retry_after: int = 1):
        super().__init__(message, headers={"Retry-After": str(retry_after)})


class ChatBusy(Conflict):
    code = "chat_busy"
    default_message = "another message in this chat is still being answered; try again shortly"


class TurnLeaseLost(Conflict):
    code = "turn_lease_lost"
    default_message = (
        "the reply took longer than this chat's turn lease, so it was not stored; send it again"
    )


class IdempotencyInProgress(Conflict):
    code = "idempotency_in_progress"
    default_message = "a request with this Idempotency-Key is still being answered"


class IdempotencyKeyReused(ProxyError):
    status = 422
    code = "idempotency_key_reused"
    default_message = "this Idempotency-Key was already used with a different request body"


class RateLimited(ProxyError):
    """Too many requests for a key or a client address; the headers say when to come back."""

    status = 429
    code = "rate_limited"
    default_message = "too many requests; slow down"

    def __init__(self, message: str | None = None, *, headers: dict[str, str]):
        super().__init__(message, headers=headers)


class TokenBudgetExhausted(RateLimited):
    code = "token_budget_exhausted"  # hours to wait: the SDKs are told not to retry at once
    default_message = "this key has used its token budget for the day"

    def __init__(self, message: str | None = None, *, headers: dict[str, str]):
        super().__init__(message, headers={**headers, "X-Should-Retry": "false"})


class PayloadTooLarge(ProxyError):
    status = 413
    code = "payload_too_large"

    def __init__(self, limit: int):
        super().__init__(f"request body is larger than {limit} bytes")


class StoreError(ProxyError):
    code = "store_error"
    default_message = "the chat store failed"


class StoreUnavailable(StoreError):
    status = 503
    code = "store_unavailable"
    default_message = "the chat store is unavailable; try again shortly"

    def __init__(self, message: str | None = None):
        super().__init__(message, headers={"Retry-After": "1"})
