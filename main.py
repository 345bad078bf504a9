"""Cloud Functions entry point: load settings, build the app once, hand it every request."""

from __future__ import annotations

import gc
import os
from typing import Any

import functions_framework
import functions_framework.aio
from dotenv import load_dotenv
from starlette.convertors import PathConvertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import Response

from chatproxy.config import load_settings
from chatproxy.errors import NotFound
from chatproxy.http.app import create_app, error_response, with_cors
from chatproxy.logs import configure_logging

load_dotenv(".env")
settings = load_settings(os.environ)
configure_logging(settings.log_level)
app = create_app(settings)
serve = with_cors(app, settings.allowed_origins)
# Everything loaded so far lives as long as the process: keep it out of the garbage collector's
# full passes (shorter pauses under load), and unwritten in a forked worker's shared pages.
gc.freeze()


@functions_framework.aio.http
async def main(request: Request) -> Any:
    """Answer one HTTP request: the proxy is an ASGI application, and functions-framework runs
    what a function returns as one (a Starlette response is one too)."""
    return serve


async def not_found(request: Request) -> Response:
    """Answer the paths functions-framework keeps for itself (/robots.txt, /favicon.ico) in JSON."""
    return error_response(NotFound())


class AnyPath(PathConvertor):
    """A path of any characters, line breaks too: functions-framework routes every path to the
    function as `{path:path}`, whose `.*` would leave a path with a %0A in it (a chat id the
    proxy refuses in JSON) to Starlette's plain-text 404."""

    regex = "(?s:.*)"


# functions-framework builds its app after importing this module: with these, its routes take
# every path, and answer the two it keeps for itself (/robots.txt, /favicon.ico) in JSON.
register_url_convertor("path", AnyPath())
functions_framework.aio._handle_not_found = not_found
