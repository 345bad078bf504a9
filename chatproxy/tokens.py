"""Own the token estimate used wherever the upstream did not count tokens for us.

The estimate is OpenAI's rule of thumb for English: a token is about four characters, plus a few
tokens of overhead per message. It needs no tokenizer files, so it works offline and at cold start.
A message's tool calls count as their JSON text, in a chat's window and in an estimated usage
alike (`estimate_message_tokens`); so do a request's tool definitions, sent beside its messages
with each call (`chars_tokens` of the characters `http.tool_limits` measured of them).
A content part that is not text is counted by its kind, erring high (`part_tokens`):
- an image: 85 tokens at `detail: low`, else 1,445: OpenAI's rule for an image at high detail
  (`auto` is high for a large image) is 85 tokens and 170 for each 512-pixel tile of it scaled
  to fit 2048x2048 and then to 768 pixels on its shorter side, which is at most 8 tiles (a
  2048x768 image); the proxy does not decode an image to measure it;
- a file's `file_data` (base64): as text of its length, a token per four characters (a file
  given by `file_id` is not seen, and counts nothing);
- audio's `data` (base64): about 10 tokens a second of audio (OpenAI counts a user's audio at
  a token per 100 ms), its length taken from its size at a low rate for speech: 16,000 bytes a
  second of `wav` (8 kHz, 16-bit, mono) and 4,000 of `mp3` (32 kbit/s), so 1,600 and 400 bytes
  a token.
"""

from __future__ import annotations

import json
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
    return chars_tokens(len(text))


def chars_tokens(chars: int) -> int:
    """Estimate the tokens of a text `chars` characters long: ceil(chars / 4)."""
    return math.ceil(chars / CHARS_PER_TOKEN)


IMAGE_TOKENS = {"low": 85}
LARGEST_IMAGE_TOKENS = 85 + 170 * 8  # high detail: 85, and 170 a tile of 8 at the most
AUDIO_BYTES_PER_TOKEN = {"wav": 1_600}
LEAST_AUDIO_BYTES_PER_TOKEN = 400  # mp3, and a format of another name


def part_tokens(part: Mapping[str, Any]) -> int:
    """Estimate the tokens of a content part that is not text (see the module's docstring)."""
    kind = part.get("type")
    body = part.get(kind) if isinstance(kind, str) else None
    body = body if isinstance(body, dict) else {}
    if kind == "image_url":
        return IMAGE_TOKENS.get(str(body.get("detail")), LARGEST_IMAGE_TOKENS)
    data = body.get("file_data" if kind == "file" else "data")
    if not isinstance(data, str):
        return 0
    if kind == "file":
        return estimate_tokens(data)
    if kind == "input_audio":
        rate = AUDIO_BYTES_PER_TOKEN.get(str(body.get("format")), LEAST_AUDIO_BYTES_PER_TOKEN)
        return math.ceil(len(data) * 3 / 4 / rate)  # base64: 4 characters for 3 bytes
    return 0


def media_tokens(content: Any) -> int:
    """Estimate the tokens of the parts of a content that are not text (none in a string)."""
    parts = content if isinstance(content, list) else ()
    return sum(part_tokens(p) for p in parts if isinstance(p, dict) and p.get("type") != "text")


def content_text(content: Any) -> tuple[str, int]:
    """Return (joined text, number of image parts) of a string or a list of content parts."""
    if isinstance(content, str):
        return content, 0
    parts = [p for p in content if isinstance(p, dict)] if isinstance(content, list) else []
    texts = [str(p.get("text", "")) for p in parts if p.get("type") == "text"]
    return " ".join(texts), sum(p.get("type") == "image_url" for p in parts)


# A message's tool calls as the compact JSON text they are sent as (`jsontext.compact`'s
# form, which this floor module may not import; only its length counts).
_CALLS_TEXT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)


def estimate_message_tokens(content: Any, tool_calls: Any = None) -> int:
    """Estimate the tokens of a message's content and tool calls (its overhead aside): its text
    with its tool calls as their JSON text (the model is sent them), and its other parts."""
    text = content_text(content)[0]
    if tool_calls:
        text = f"{text} {_CALLS_TEXT.encode(tool_calls)}"
    return estimate_tokens(text) + media_tokens(content)


def estimate_usage(
    messages: Iterable[Mapping[str, Any]], reply: str, tools: int = 0
) -> dict[str, int]:
    """Estimate a chat completion's usage from the messages sent (each as a chat's window counts
    it), the estimated tokens of the tool definitions sent beside them (`tools`) and the reply
    received."""
    prompt = tools + sum(
        estimate_message_tokens(m.get("content"), m.get("tool_calls")) + TOKENS_PER_MESSAGE
        for m in messages
    )
    completion = max(1, estimate_tokens(reply))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
