"""Own the token estimate used wherever the upstream did not count tokens for us.

The estimate is OpenAI's rule of thumb for English: a token is about four characters, plus a few
tokens of overhead per message. It needs no tokenizer files, so it works offline and at cold start.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

TOKENS_PER_MESSAGE = 4
CHARS_PER_TOKEN = 4
USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens")
# The breakdowns an upstream may give beside the counts (cached prompt tokens, reasoning
# tokens, ...): a reply keeps them with its counts, each entry a name and a count (not 0).
USAGE_DETAILS = ("prompt_tokens_details", "completion_tokens_details")
MAX_DETAILS = 16  # entries of one breakdown
MAX_DETAIL_NAME = 64  # characters of an entry's name
# The largest token count a chat or an item may carry: a store adds them up (Redis's HINCRBY
# stops at 2**63), and a window counts a reply's as exact.
MAX_TOKEN_COUNT = 10**12


def is_count(value: Any) -> bool:
    """Whether `value` is a token count: a whole number from 0 to MAX_TOKEN_COUNT."""
    return type(value) is int and 0 <= value <= MAX_TOKEN_COUNT


def estimate_tokens(text: str) -> int:
    """Estimate the tokens of `text` as ceil(characters / 4)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def content_text(content: Any) -> tuple[str, int]:
    """Return (joined text, number of image parts) of a string or a list of content parts."""
    if isinstance(content, str):
        return content, 0
    parts = [p for p in content if isinstance(p, dict)] if isinstance(content, list) else []
    texts = [str(p.get("text", "")) for p in parts if p.get("type") == "text"]
    return " ".join(texts), sum(p.get("type") == "image_url" for p in parts)


def estimate_usage(messages: Iterable[Mapping[str, Any]], reply: str) -> dict[str, int]:
    """Estimate a chat completion's usage from the messages sent and the reply received."""
    prompt = sum(
        estimate_tokens(content_text(m.get("content"))[0]) + TOKENS_PER_MESSAGE for m in messages
    )
    completion = max(1, estimate_tokens(reply))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
