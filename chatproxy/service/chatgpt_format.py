"""Own how a conversation of ChatGPT's data export (`conversations.json`, a JSON array of them)
becomes a chat (`chatgpt_tree`, pure: no I/O).

A conversation: `id` (or `conversation_id`), `title`, `create_time`, `update_time` (unix
seconds), `current_node`, and `mapping`: node id → `{"id", "message", "parent", "children"}`,
a message being `{"author": {"role", "name"}, "create_time", "content": {"content_type", ...},
"metadata", "recipient", ...}`. What becomes of it:

- The conversation's id is the chat's (1-128 of `A-Z a-z 0-9 . _ @ : -`), its title and times
  the chat's; every branch is kept, numbered depth first (`foreign_tree.py`), and the current
  node is the leaf.
- Dropped, their children going under the nearest kept node: a node without a message (the
  root), a message ChatGPT hides (`metadata.is_visually_hidden_from_conversation`: custom
  instructions, memory notes), a system message without text, and the model's reasoning and
  context notes (`thoughts`, `reasoning_recap`, `user_editable_context`,
  `model_editable_context`).
- Roles: `user`, `assistant` and `system` stay; a `tool` message (code output, browsing, an
  image made) becomes an `assistant` item whose text starts `[tool: <author.name>]`, since a
  `tool` item of ours answers a tool call by its id, which ChatGPT's export does not keep.
- Content to text: `text` and `multimodal_text` parts joined by new lines, an image part
  (`asset_pointer`) as `[image]`, audio as `[audio]` (or its transcription), video as
  `[video]`; `code` as a fenced block in its language; `execution_output` and other types with
  a `text` as that text; `tether_quote` as its title, URL and text; `tether_browsing_display`
  as its result; anything else as `[<content_type>]`.
- An assistant message's `metadata.model_slug` is its `model`; a message without a time takes
  its parent's.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from chatproxy.service.foreign_tree import (
    Names,
    Node,
    Time,
    chat_id_of,
    number_nodes,
    validated,
)
from chatproxy.store.chat_tree import ChatTree, DocumentError
from chatproxy.store.items import usage_of

NAMES = Names(node="node", parent="parent", where="the mapping", path=("mapping",))
ROLES = {"user": "user", "assistant": "assistant", "system": "system", "tool": "assistant"}
DROPPED = {"thoughts", "reasoning_recap", "user_editable_context", "model_editable_context"}


class _Lax(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Author(_Lax):
    role: str
    name: str | None = None


class Content(_Lax):
    model_config = ConfigDict(extra="allow")

    content_type: str
    parts: list[Any] | None = None
    text: str | None = None


class GptMessage(_Lax):
    author: Author
    create_time: Time | None = None
    content: Content
    metadata: dict[str, Any] | None = None


class GptNode(_Lax):
    message: GptMessage | None = None
    parent: str | None = None
    children: list[str] = []


class Conversation(_Lax):
    id: str | None = None
    conversation_id: str | None = None
    title: str | None = None
    create_time: Time | None = None
    update_time: Time | None = None
    mapping: dict[str, GptNode]
    current_node: str


def chatgpt_tree(data: Any) -> ChatTree:
    """The chat of one conversation of a ChatGPT export; raise `DocumentError` naming the
    place (`node 'abc': message.author: Field required`)."""
    conversation = validated(Conversation, data, NAMES)
    chat_id = chat_id_of(conversation.id or conversation.conversation_id)
    nodes = {key: _node(key, node) for key, node in conversation.mapping.items()}
    times = [n.created_at for n in nodes.values() if n.created_at is not None]
    created = conversation.create_time or min(times, default=0.0)
    items, leaf = number_nodes(nodes, conversation.current_node, NAMES, created)
    return ChatTree(
        chat_id=chat_id,
        created=created,
        updated=conversation.update_time or max(times, default=created),
        items=items,
        leaf=leaf,
        title=conversation.title,
        tokens=usage_of(items),
    )


def _node(key: str, node: GptNode) -> Node:
    """What the node `key` of the mapping becomes (its role None: dropped)."""
    message = node.message
    if message is None:
        return Node(node.parent, node.children)
    metadata = message.metadata or {}
    hidden = metadata.get("is_visually_hidden_from_conversation") is True
    text = None if hidden else _text(message.content)
    role = ROLES.get(message.author.role)
    if role is None and text is not None:
        raise DocumentError(
            f"node {key!r}: message.author.role: {message.author.role!r} is"
            " not user, assistant, system or tool"
        )
    if role is None or text is None or (role == "system" and not text.strip()):
        return Node(node.parent, node.children, created_at=message.create_time)
    if message.author.role == "tool":
        text = f"[tool: {message.author.name or 'tool'}]\n{text}"
    model = metadata.get("model_slug") if role == "assistant" else None
    return Node(
        node.parent,
        node.children,
        role,
        text,
        message.create_time,
        model if isinstance(model, str) else None,
    )


def _text(content: Content) -> str | None:
    """The message's content as text (None: a kind of content that is dropped)."""
    kind, extra = content.content_type, content.model_extra or {}
    if kind in DROPPED:
        return None
    if kind == "code":
        language = extra.get("language")
        fence = language if isinstance(language, str) and language != "unknown" else ""
        return f"```{fence}\n{content.text or ''}\n```"
    if kind == "tether_quote":
        fields = (extra.get("title"), extra.get("url"), content.text)
        return "\n".join(value for value in fields if isinstance(value, str) and value)
    if kind == "tether_browsing_display":
        result, summary = extra.get("result"), extra.get("summary")
        return result if isinstance(result, str) and result else str(summary or "")
    if content.parts is not None:
        return "\n".join(text for text in map(_part, content.parts) if text)
    if content.text is not None:
        return content.text
    return f"[{kind}]"


def _part(part: Any) -> str:
    """One part of a message's content as text: itself, or a placeholder for what is not."""
    if isinstance(part, str):
        return part
    if not isinstance(part, dict):
        return ""
    kind = str(part.get("content_type", ""))
    if isinstance(part.get("text"), str):  # an audio transcription, a text part
        return str(part["text"])
    if "audio" in kind:
        return "[audio]"
    if "video" in kind:
        return "[video]"
    if "asset_pointer" in part or "image" in kind:
        return "[image]"
    return f"[{kind or 'attachment'}]"
