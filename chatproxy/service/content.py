"""Own the shaping of a message's content for the model: images as OpenAI content parts, and
images flattened to text for a model that cannot see them; the system prompt a request's
leading system or developer messages make."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def image_parts(text: str, image_url: str) -> list[dict[str, Any]]:
    """A user message that carries an image, as OpenAI content parts."""
    return [
        {"type": "text", "text": text},
        {"type": "image_url", "image_url": {"url": image_url}},
    ]


def without_images(message: dict[str, Any]) -> dict[str, Any]:
    """Flatten image parts to text for a model that cannot see them: content of text and
    images becomes one text; beside parts of other kinds (a file, audio), which go as they
    are, each image becomes a text part."""
    content = message["content"]
    if not isinstance(content, list):  # text, or none (a reply that only calls tools)
        return message
    if any(part.get("type") not in ("text", "image_url") for part in content):
        parts = [_image_text(p) if p.get("type") == "image_url" else p for p in content]
        return {**message, "content": parts}
    words = []
    for part in content:
        if part.get("type") == "text":
            words.append(str(part.get("text", "")))
        else:
            words.append(_image_text(part)["text"])
    return {**message, "content": " ".join(words)}


def _image_text(part: dict[str, Any]) -> dict[str, Any]:
    """An image part as the text part that names it (a data URL is not spelled out)."""
    url = str(part.get("image_url", {}).get("url", ""))
    return {"type": "text", "text": "[image]" if url.startswith("data:") else f"[image: {url}]"}


SYSTEM_ROLES = ("system", "developer")  # leading messages of these roles: a system prompt


def prompt_end(sent: Sequence[Mapping[str, Any]]) -> int:
    """Where a request's leading system or developer messages (its system prompt) end."""
    return next((n for n, m in enumerate(sent) if m.get("role") not in SYSTEM_ROLES), len(sent))


def leading_system(sent: Sequence[Mapping[str, Any]]) -> tuple[list[str], int]:
    """The texts of a request's leading system or developer messages (this turn's system
    prompt), and where the rest of its messages begin."""
    first = prompt_end(sent)
    return [system_text(m.get("content")) for m in sent[:first]], first


def system_text(content: Any) -> str:
    """The text of a system message: its string, or its text parts one per line."""
    if isinstance(content, str):
        return content
    return "\n".join(p.get("text") or "" for p in content or [] if isinstance(p, dict))
