"""Cloud Functions entry point: load settings, build the app once, hand it every request."""

from __future__ import annotations

import gc
import os

import functions_framework
from dotenv import load_dotenv
from flask import Request
from werkzeug.wrappers import Response

from chatproxy.app import create_app, error_response, with_cors
from chatproxy.config import load_settings
from chatproxy.errors import NotFound
from chatproxy.logs import configure_logging

load_dotenv(".env")
settings = load_settings(os.environ)
configure_logging(settings.log_level)
app = create_app(settings)
handle = with_cors(app.handle, settings.allowed_origins)
# Everything loaded so far lives as long as the process: keep it out of the garbage collector's
# full passes (shorter pauses under load), and unwritten in a forked worker's shared pages.
gc.freeze()


@functions_framework.http
def main(request: Request) -> Response:
    """Answer one HTTP request."""
    return handle(request)


@functions_framework.errorhandler(404)  # type: ignore[untyped-decorator]
def not_found(_error: Exception) -> Response:
    """Answer the paths functions-framework keeps for itself (/robots.txt, /favicon.ico) in JSON."""
    return error_response(NotFound())
