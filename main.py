"""Cloud Functions entry point: load settings, build the app once, hand it every request."""

from __future__ import annotations

import gc
import os
from typing import Any

import functions_framework.aio
from dotenv import load_dotenv
from starlette.requests import Request

from chatproxy.config import load_settings
from chatproxy.http.app import create_app, with_cors
from chatproxy.http.every_path import serve_every_path
from chatproxy.logs import configure_logging

load_dotenv(".env")
settings = load_settings(os.environ)
configure_logging(settings.log_level)
app = create_app(settings)
serve = with_cors(app, settings.allowed_origins)
# functions-framework builds its app after importing this module: the paths it would answer
# itself (/robots.txt, /favicon.ico, a path with a line break) go to the proxy too.
serve_every_path(serve)
# Everything loaded so far lives as long as the process: keep it out of the garbage collector's
# full passes (shorter pauses under load), and unwritten in a forked worker's shared pages.
gc.freeze()


@functions_framework.aio.http
async def main(request: Request) -> Any:
    """Answer one HTTP request: the proxy is an ASGI application, and functions-framework runs
    what a function returns as one (a Starlette response is one too)."""
    return serve
