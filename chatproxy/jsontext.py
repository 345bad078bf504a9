"""Own how the proxy reads and writes JSON text: compact, with non-ASCII characters as they are.

orjson does the work: a turn encodes the request it sends upstream, its stored messages, its
answer and its log line, and decodes the upstream's answer (or each chunk of a stream), which
took a tenth of a turn's instructions with the standard library. What orjson refuses and the
standard library takes (writing: integers past 64 bits, keys that are not strings, text with
lone surrogates; reading: NaN and Infinity) goes through the standard library. Two things
differ from it: a NaN or infinite number is written as `null` (valid JSON, where the standard
library wrote a token JSON does not have), and an integer past 64 bits in a request is read as
a floating-point number, as JavaScript and most JSON parsers read it.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def compact(value: Any) -> str:
    """Return `value` as compact JSON text (no spaces, UTF-8 characters not escaped)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return _COMPACT.encode(value)


def compact_bytes(value: Any) -> bytes:
    """`compact`, as UTF-8 bytes (a request body)."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return _COMPACT.encode(value).encode()


def parse(text: str | bytes) -> Any:
    """Read JSON text; raise `json.JSONDecodeError` (a ValueError) if it is not JSON."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)  # what orjson refuses (big integers, NaN), or the same error
