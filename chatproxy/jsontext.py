"""Own how the proxy writes JSON text: compact, with non-ASCII characters as they are.

`json.dumps` with any option builds a new encoder on every call, a third of the time a stored
message takes to encode; a turn writes its two messages, its answer and each streamed event
this way, so the encoder is built once here.
"""

from __future__ import annotations

import json
from typing import Any

_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def compact(value: Any) -> str:
    """Return `value` as compact JSON text (no spaces, UTF-8 characters not escaped)."""
    return _COMPACT.encode(value)
