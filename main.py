"""Cloud Functions entry point: load settings, build the app once, hand it every request."""

from __future__ import annotations

import logging
import os

import functions_framework
from dotenv import load_dotenv
from flask import Request
from werkzeug.wrappers import Response

from chatproxy.app import create_app, error_response
from chatproxy.config import load_settings
from chatproxy.errors import NotFound

load_dotenv(".env")
settings = load_settings(os.environ)
logging.basicConfig(level=settings.log_level, format="%(levelname)s %(name)s: %(message)s")
logging.getLogger("httpx2").setLevel(logging.WARNING)  # one line per upstream call is noise
app = create_app(settings)


@functions_framework.http
def main(request: Request) -> Response:
    """Answer one HTTP request."""
    return app.handle(request)


@functions_framework.errorhandler(404)  # type: ignore[untyped-decorator]
def not_found(_error: Exception) -> Response:
    """Answer the paths functions-framework keeps for itself (/robots.txt, /favicon.ico) in JSON."""
    return error_response(NotFound())
