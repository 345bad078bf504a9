"""Own MAX_CONTENT_CHARS for the items of a request: a Responses request's `input`, and a
Conversations request's `items` (the same items). Each text, tool call's arguments and file's
data is held to it as the items were sent, before their shape is checked (`responses_input.py`
translates them after), and a refusal names the field (`input[2].arguments`). A tool call's id
(`call_id`), which the chat keeps with the call, is held to the 64 characters OpenAI's API
takes; a call's output is not, as it must name a call the chat waits for (`placement.py`,
`service/conversations.py`): one of the request's own, or one the model made, whose id another
server's model may have made longer.

Nothing here does I/O.
"""

from __future__ import annotations

from typing import Any

from chatproxy.errors import ValidationFailed

# The fields of input items that hold what a message says (text, a tool call's arguments, a
# file's data), each held to MAX_CONTENT_CHARS; ids, names and image URLs are not.
LIMITED_FIELDS = frozenset(("content", "text", "refusal", "output", "arguments", "file_data"))
MAX_CALL_ID = 64  # OpenAI's bound on an item's `call_id`


def check_lengths(sent: Any, max_chars: int, where: str = "input") -> None:
    """Refuse a string in `sent` (a request's `input`, walked as it was sent, before its shape
    is checked: without recursion, however deep it nests) of a field of `LIMITED_FIELDS` longer
    than `max_chars`, or a call's `call_id` longer than MAX_CALL_ID, naming it
    (`input[2].arguments`)."""
    stack: list[tuple[Any, str]] = [(sent, where)]
    while stack:
        node, at = stack.pop()
        inside: list[tuple[str, Any, Any]] = []
        if isinstance(node, dict):
            inside = [(f"{at}.{key}", key, value) for key, value in node.items()]
        elif isinstance(node, list):
            inside = [(f"{at}[{n}]", None, value) for n, value in enumerate(node)]
        for path, key, value in inside:
            if isinstance(value, str) and key in LIMITED_FIELDS and len(value) > max_chars:
                raise ValidationFailed(
                    f"{path}: at most {max_chars} characters (MAX_CONTENT_CHARS)", param=path
                )
            long_id = key == "call_id" and isinstance(value, str) and len(value) > MAX_CALL_ID
            if long_id and not str(node.get("type")).endswith("_output"):  # an output: see above
                raise ValidationFailed(
                    f"{path}: at most {MAX_CALL_ID} characters, as OpenAI's API takes it",
                    param=path,
                )
        stack.extend((value, path) for path, _, value in reversed(inside))
