"""Cloud Functions entry point: load settings, build the app once, hand it every request."""

from __future__ import annotations

import gc
import os
from typing import Any

import functions_framework.aio
from dotenv import load_dotenv
from starlette.requests import Request

from chatproxy.config import load_settings
from chatproxy.http.app import create_app
from chatproxy.http.cors import with_cors
from chatproxy.http.every_path import serve_every_path
from chatproxy.logs import configure_logging

load_dotenv(".env")
settings = load_settings(os.environ)
configure_logging(settings.log_level)
app = create_app(settings)
serve = with_cors(app, settings.allowed_origins)
# functions-framework builds its app after importing this module: every HTTP request goes to
# the proxy directly, past the framework's router and `main` (see http/every_path.py). With
# LOG_EXECUTION_ID on, the framework replaces the logging set up above: the proxy's is set up
# again once the framework's app is built (see logs.py).
serve_every_path(serve, built=lambda: configure_logging(settings.log_level))
# Everything loaded so far lives as long as the process: keep it out of the garbage collector's
# full passes (shorter pauses under load), and unwritten in a forked worker's shared pages.
gc.freeze()


@functions_framework.aio.http
async def main(request: Request) -> Any:
    """The function functions-framework serves. With the hook in place the proxy answers every
    HTTP request before this is reached; without it, functions-framework runs what this returns
    as an ASGI application (the proxy is one)."""
    return serve
