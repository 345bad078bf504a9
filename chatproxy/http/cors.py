"""Own the answers to browsers: which origins may call the API (ALLOWED_ORIGINS) and which
headers their requests may carry and their answers show, by Starlette's CORS middleware around
the app (main.py).
"""

from __future__ import annotations

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

STAINLESS = (
    "Arch", "Helper-Method", "Lang", "OS", "Package-Version", "Retry-Count", "Runtime",
    "Runtime-Version", "Timeout",
)  # fmt: skip

CORS_HEADERS_IN = [
    "Authorization",
    "X-API-Key",
    "Content-Type",
    "Idempotency-Key",
    "X-Chat-Id",
    # What the official openai SDK for JavaScript sends from a browser
    # (`dangerouslyAllowBrowser`): its platform, retry and helper headers, and the account's.
    *(f"X-Stainless-{name}" for name in STAINLESS),
    "OpenAI-Organization",
    "OpenAI-Project",
]
CORS_HEADERS_OUT = [
    "Retry-After",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "Idempotent-Replayed",
    "X-Should-Retry",
]


def with_cors(app: ASGIApp, origins: tuple[str, ...]) -> ASGIApp:
    """Answer browsers from `origins` (ALLOWED_ORIGINS) with Starlette's CORS middleware,
    preflights included.

    Origins not on the list get no CORS headers; with no list, no CORS at all.
    """
    if not origins:
        return app
    return CORSMiddleware(
        app,
        allow_origins=list(origins),
        allow_methods=["GET", "POST", "DELETE"],
        allow_headers=CORS_HEADERS_IN,
        expose_headers=CORS_HEADERS_OUT,
        max_age=600,
    )
