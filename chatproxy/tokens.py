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
