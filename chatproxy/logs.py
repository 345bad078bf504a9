"""Own the log format: one JSON object per line, in the shape Google Cloud Logging reads.

Every request is logged once by `http/app.py` with `severity`, `message`, `httpRequest` (method, URL
path, status, latency, client address), the route, chat id, tenant, error code and upstream token
usage. Nothing here ever sees a request header, so API keys and the `Authorization` header cannot
reach a log; message text is logged only with `LOG_CONTENT=1`.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

# Client libraries whose debug output could show request details: kept at WARNING whatever
# LOG_LEVEL says.
QUIET_LOGGERS = ("httpx2", "httpcore2", "httpx", "httpcore", "openai", "urllib3", "aiohttp")
# Each line is written by orjson; this encoder writes what orjson refuses (`json.dumps` with
# options would build a new one per call).
LINE_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)


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
        if record.exc_info:
            entry["message"] += "\n" + self.formatException(record.exc_info)
        try:
            return orjson.dumps(entry, default=str).decode()
        except TypeError:  # what orjson refuses (see jsontext.py)
            return LINE_ENCODER.encode(entry)


def configure_logging(level: str) -> None:
    """Send every log record to stderr as JSON lines at `level`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


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
