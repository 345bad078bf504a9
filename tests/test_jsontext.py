"""`jsontext`: orjson reads and writes the proxy's JSON, and what orjson refuses goes through the
standard library, so the proxy accepts and writes what it always did."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from chatproxy.jsontext import compact, compact_bytes, parse

VALUES: list[Any] = [
    {"id": 3, "parent": None, "role": "user", "content": 'héllo ✓ \u2028 \x00\n\t"\\'},
    {"created_at": 1796570181.9274688, "tokens": {"prompt_tokens": 10}},
    [{"type": "text", "text": "x"}, {"type": "image_url", "image_url": {"url": "data:,"}}],
    {"nested": [[[]], {}], "flag": True, "none": None, "small": -(2**63), "big": 2**64 - 1},
]


@pytest.mark.parametrize("value", VALUES)
def test_compact_writes_what_the_standard_library_wrote(value: Any) -> None:
    expected = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    assert json.loads(compact(value)) == value
    assert compact_bytes(value) == compact(value).encode()
    if not any(isinstance(v, float) for v in _leaves(value)):
        assert compact(value) == expected  # byte for byte (floats may differ in spelling only)


@pytest.mark.parametrize(
    "value",
    [
        {"seed": 2**70},  # an integer past 64 bits
        {1: "a", None: "b"},  # keys that are not strings
        {"text": "\ud800"},  # a lone surrogate
    ],
)
def test_what_orjson_refuses_is_written_by_the_standard_library(value: Any) -> None:
    assert compact(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if "text" not in value:
        assert compact_bytes(value) == compact(value).encode()


def test_a_number_json_does_not_have_is_written_as_null() -> None:
    assert compact({"t": math.nan, "u": math.inf}) == '{"t":null,"u":null}'


@pytest.mark.parametrize("text", ['{"a": 1}', b'{"a": 1}', ' {"a":1}\n'])
def test_parse_reads_text_and_bytes(text: str | bytes) -> None:
    assert parse(text) == {"a": 1}


def test_parse_takes_nan_as_the_standard_library_did_and_huge_integers_as_numbers() -> None:
    assert math.isnan(parse('{"t": NaN}')["t"])
    assert parse('{"seed": 123456789012345678901234567890}') == {"seed": 1.2345678901234568e29}


@pytest.mark.parametrize("text", ["", "{", "[1,]", b"\xff\xfe", "{'a': 1}"])
def test_parse_refuses_what_is_not_json_with_a_value_error(text: str | bytes) -> None:
    with pytest.raises(ValueError, match=r"."):  # json.JSONDecodeError or UnicodeDecodeError
        parse(text)


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]
