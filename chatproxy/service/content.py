"""Own the shaping of a message's content for the model: images as OpenAI content parts, and
images flattened to text for a model that cannot see them."""

from __future__ import annotations

from typing import Any


def image_parts(text: str, image_url: str) -> list[dict[str, Any]]:
    """A user message that carries an image, as OpenAI content parts."""
    return [
        {"type": "text", "text": text},
        {"type": "image_url", "image_url": {"url": image_url}},
    ]


def without_images(message: dict[str, Any]) -> dict[str, Any]:
    """Flatten image parts to text for a model that cannot see them."""
    content = message["content"]
    if not isinstance(content, list):  # text, or none (a reply that only calls tools)
        return message
    words = []
    for part in content:
        if part.get("type") == "text":
            words.append(str(part.get("text", "")))
        elif part.get("type") == "image_url":
            url = str(part.get("image_url", {}).get("url", ""))
            words.append("[image]" if url.startswith("data:") else f"[image: {url}]")
    return {**message, "content": " ".join(words)}
