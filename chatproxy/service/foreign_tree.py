"""Own what the readers of other tools' exports share (`chatgpt_format.py`,
`openwebui_format.py`): their trees of messages, keyed by string ids, turned into ours (pure:
no I/O).

Each tool keeps a chat as a map of nodes, each naming its parent and its children in the order
the tool shows them, and a current node. `number_nodes` checks the map (every parent a node of
it, no cycle, the current node one of it), walks it depth first from its roots in that order
and numbers the messages it keeps 0, 1, 2, ... as it meets them, so a parent is numbered before
its children and the same file always gives the same ids. A node it drops (`Node.role` None:
an empty root, a hidden message) takes no id: its children go under its nearest kept ancestor,
and the leaf is the current node, or its nearest kept ancestor when the current node is dropped.
A node listed among a parent's children without naming that parent is placed under the parent
it names (its own `parent` is what counts); one a parent does not list comes after those it does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ValidationError

from chatproxy.store.chat_tree import DocumentError
from chatproxy.store.items import Message, valid_chat_id


def finite_time(value: float) -> float:
    """A time a tool wrote: a finite number, at least 0 (NaN or infinity would make a chat no
    store can write or read back)."""
    if not math.isfinite(value) or value < 0:
        raise ValueError("must be a finite time, at least 0")
    return value


Time = Annotated[float, AfterValidator(finite_time)]


@dataclass(frozen=True)
class Node:
    """One node of another tool's tree: its parent's id and its children's there, and what it
    becomes (`role` None: dropped). A `created_at` of None takes its kept parent's (or the
    chat's)."""

    parent: str | None
    children: list[str] = field(default_factory=list)
    role: str | None = None
    content: str = ""
    created_at: float | None = None
    model: str | None = None
    usage: dict[str, int] | None = None


@dataclass(frozen=True)
class Names:
    """How a tool names its nodes and their place, for the errors (`node 'x': its parent 'y'
    is not in the mapping`): `path` is where the map is in a chat's JSON."""

    node: str
    parent: str
    where: str
    path: tuple[str, ...]


Model = TypeVar("Model", bound=BaseModel)


def validated(model: type[Model], data: Any, names: Names) -> Model:
    """`data` read as `model`; else raise `DocumentError` naming the place of the first fault."""
    if not isinstance(data, dict):
        raise DocumentError("a chat is a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise DocumentError(describe(exc, names)) from None


def chat_id_of(value: str | None) -> str:
    """`value` if it can be a chat id; else raise `DocumentError` saying why not."""
    if value is None or not valid_chat_id(value):
        raise DocumentError(
            f"id: {value!r} cannot be a chat id: it must be 1-128 of A-Z a-z 0-9 . _ @ : -,"
            " not dots only"
        )
    return value


def describe(exc: ValidationError, names: Names) -> str:
    """The first error's place, in a node named as such: `node 'abc': message.author: ...`."""
    first = exc.errors(include_url=False)[0]
    loc = [str(part) for part in first["loc"]]
    depth = len(names.path)
    if tuple(loc[:depth]) == names.path and len(loc) > depth:
        rest = loc[depth + 1 :]
        where = f"{names.node} {loc[depth]!r}" + (": " + ".".join(rest) if rest else "")
    else:
        where = ".".join(loc) or "the chat"
    return f"{where}: {first['msg']}"


def number_nodes(
    nodes: dict[str, Node], current: str, names: Names, created: float
) -> tuple[list[Message], int]:
    """The kept nodes as messages numbered from 0, parents first, and the leaf's id; raise
    `DocumentError` naming the node for a parent that is missing or a cycle."""
    kids = _children(nodes, names)
    if current not in nodes:
        raise DocumentError(f"{names.node} {current!r}: the current one is not in {names.where}")
    items: list[Message] = []
    placed: dict[str, int | None] = {}  # node → the id of it or of its nearest kept ancestor
    stack: list[tuple[str, int | None]] = [(root, None) for root in reversed(kids[None])]
    while stack:
        key, parent = stack.pop()
        node = nodes[key]
        if node.role is None:
            placed[key] = parent
        else:
            created_at = node.created_at
            if created_at is None:
                created_at = created if parent is None else items[parent].created_at
            message = Message(node.role, node.content, created_at, node.usage, node.model)
            items.append(message.placed(len(items), parent))
            placed[key] = len(items) - 1
        stack.extend((kid, placed[key]) for kid in reversed(kids[key]))
    if len(placed) < len(nodes):
        unreached = next(key for key in nodes if key not in placed)
        raise DocumentError(
            f"{names.node} {unreached!r}: its {names.parent}s make a cycle"
            f" ({_cycle(unreached, nodes)})"
        )
    leaf = placed[current]
    if leaf is None:
        raise DocumentError(f"no message to import on the way to {names.node} {current!r}")
    return items, leaf


def _children(nodes: dict[str, Node], names: Names) -> dict[str | None, list[str]]:
    """Each node's children (None: the roots), those its parent lists first in its order."""
    kids: dict[str | None, list[str]] = {key: [] for key in nodes}
    kids[None] = []
    for key, node in nodes.items():
        if node.parent is not None and node.parent not in nodes:
            raise DocumentError(
                f"{names.node} {key!r}: its {names.parent} {node.parent!r} is not in {names.where}"
            )
    for key, node in nodes.items():  # first the children each parent lists, in its order
        kids[key] = [kid for kid in dict.fromkeys(node.children) if _parent(nodes, kid) == key]
    listed = {kid for key in nodes for kid in kids[key]}
    for key, node in nodes.items():  # then the others, in the order of the map
        if key not in listed:
            kids[node.parent].append(key)
    return kids


def _parent(nodes: dict[str, Node], key: str) -> str | None:
    node = nodes.get(key)
    return None if node is None else node.parent


def _cycle(start: str, nodes: dict[str, Node]) -> str:
    """The cycle reached from `start` by following parents, as `a → b → a`."""
    path: list[str] = []
    seen: dict[str, int] = {}
    key: str | None = start
    while key is not None and key not in seen:
        seen[key] = len(path)
        path.append(key)
        key = nodes[key].parent
    loop = path[seen[key] :] if key is not None else path
    return " → ".join(map(repr, [*loop, loop[0]]))
