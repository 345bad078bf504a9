"""Own how the proxy reads and writes JSON text: compact, with non-ASCII characters as they are.

orjson does the work: a turn encodes the request it sends upstream, its stored messages, its
answer and its log line, and decodes the upstream's answer (or each chunk of a stream), which
took a tenth of a turn's instructions with the standard library. What orjson refuses and the
standard library takes (writing: integers past 64 bits, keys that are not strings, text with
lone surrogates; reading: NaN and Infinity) goes through the standard library. Two things
differ from it: a NaN or infinite number is written as `null` (valid JSON, where the standard
library wrote a token JSON does not have), and an integer past 64 bits in a request is read as
a floating-point number, as JavaScript and most JSON parsers read it.

What a client sends is read with `parse_sent`, which also refuses the JSON the proxy could read
but not write on (to the store, the model or an answer): a string with a lone surrogate escape
(`"\\ud800"`, which is no Unicode text), and nesting deeper than orjson writes.
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


class Unwritable(ValueError):
    """JSON text the proxy reads but could not write on; the message says why."""


def parse(text: str | bytes) -> Any:
    """Read JSON text; raise `json.JSONDecodeError` (a ValueError) if it is not JSON."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)  # what orjson refuses (big integers, NaN), or the same error


def parse_sent(text: str | bytes) -> Any:
    """`parse` what a client sent; raise `Unwritable` (a ValueError, as `parse`'s errors are)
    for a string with a lone surrogate escape, or for more than 254 levels of nesting (orjson
    writes no deeper; the standard library's encoder fails near Python's recursion limit).
    Writing it once with orjson tells both, at about a tenth of the parse's cost."""
    value = parse(text)
    try:
        orjson.dumps(value)
    except orjson.JSONEncodeError as exc:
        if "surrogate" in str(exc):
            raise Unwritable("a string holds a lone surrogate escape, which is not text") from None
        raise Unwritable("it is nested more than 254 levels deep") from None
    return value
