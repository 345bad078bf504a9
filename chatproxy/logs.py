"""Own the log format: one JSON object per line, in the shape Google Cloud Logging reads.

Every request is logged once by `http/app.py` with `severity`, `message`, `httpRequest` (method, URL
path, status, latency, client address), the route, chat id, tenant, error code and upstream token
usage. With `LOG_EXECUTION_ID` on, every line written while a request is served carries its
execution id (`EXECUTION`, set by the app), as functions-framework's own lines would. No request
header reaches a log but those two (`execution`: the execution id and the trace context), so API
keys and the `Authorization` header cannot; message text is logged only with `LOG_CONTENT=1`.

functions-framework, when `LOG_EXECUTION_ID` is on, replaces the logging configuration after
main.py has set it (its root handler, at WARNING, and every logger there was then disabled):
`configure_logging` is run again once the framework's app is built (main.py).
"""

from __future__ import annotations

import json
import logging
import logging.config
import re
import secrets
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

# Client libraries whose debug output could show request details: kept at WARNING whatever
# LOG_LEVEL says.
QUIET_LOGGERS = ("httpx2", "httpcore2", "httpx", "httpcore", "openai", "urllib3", "aiohttp")
# Each line is written by orjson; this encoder writes what orjson refuses (`json.dumps` with
# options would build a new one per call).
LINE_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)
# The fields that name the request being served (its execution id, in Cloud Logging's shape), on
# every line written meanwhile; None: none (LOG_EXECUTION_ID off, or no request).
EXECUTION: ContextVar[dict[str, Any] | None] = ContextVar("execution", default=None)
EXECUTION_ID_HEADER = "Function-Execution-Id"
EXECUTION_ID = re.compile(r"[\w.-]{1,64}", re.ASCII)  # else the request gets one of its own
TRACE_CONTEXT_HEADER = "X-Cloud-Trace-Context"
TRACE_CONTEXT = re.compile(r"[0-9a-fA-F]{1,64}/(?P<span>\d{1,20})(;o=[01])?", re.ASCII)


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON line; `extra={"fields": {...}}` adds structured fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": record.levelname,
            "message": record.getMessage(),
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "logger": record.name,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if (execution := EXECUTION.get()) is not None:
            entry.update(execution)
        if record.exc_info:
            entry["message"] += "\n" + self.formatException(record.exc_info)
        try:
            return orjson.dumps(entry, default=str).decode()
        except TypeError:  # what orjson refuses (see jsontext.py)
            return LINE_ENCODER.encode(entry)


def configure_logging(level: str) -> None:
    """Send every log record to stderr as JSON lines at `level`; loggers an earlier
    configuration disabled write again (`disable_existing_loggers: False` enables them)."""
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"json": {"()": JsonFormatter}},
            "handlers": {
                "stderr": {
                    "class": "logging.StreamHandler",
                    "stream": "ext://sys.stderr",
                    "formatter": "json",
                }
            },
            "root": {"level": level, "handlers": ["stderr"]},
            "loggers": {name: {"level": "WARNING"} for name in QUIET_LOGGERS},
        }
    )


def execution(headers: Mapping[str, str]) -> dict[str, Any]:
    """The fields naming a request's execution: its `Function-Execution-Id` (else a new one) as
    Cloud Logging's label `execution_id`, and the span of its `X-Cloud-Trace-Context`, as
    functions-framework writes them. Only those two headers are read."""
    given = headers.get(EXECUTION_ID_HEADER, "")
    named = given if EXECUTION_ID.fullmatch(given) else secrets.token_hex(6)
    fields: dict[str, Any] = {"logging.googleapis.com/labels": {"execution_id": named}}
    if trace := TRACE_CONTEXT.fullmatch(headers.get(TRACE_CONTEXT_HEADER, "")):
        fields["logging.googleapis.com/spanId"] = trace["span"]
    return fields


def request_fields(
    *,
    method: str,
    path: str,
    status: int,
    latency: float,
    remote_ip: str | None,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """Build the structured part of a request's log line."""
    fields: dict[str, Any] = {
        "httpRequest": {
            "requestMethod": method,
            "requestUrl": path,
            "status": status,
            "latency": f"{latency:.6f}s",
            "remoteIp": remote_ip,
        },
        "latency_ms": round(latency * 1000, 3),
    }
    fields.update({key: value for key, value in extra.items() if value is not None})
    return fields
