"""Other tools' exports read as chats, with no store: ChatGPT's `conversations.json` and Open
WebUI's chat export, written here from their published shapes. Every branch is kept, the
current node is the leaf, what the tools hide is dropped, content becomes text as documented,
and what is wrong is named by its node. `test_foreign_import.py` imports these same files
through the command line and the route."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from chatproxy.service.chatgpt_format import chatgpt_tree
from chatproxy.service.import_formats import detect, entries_of
from chatproxy.service.openwebui_format import openwebui_tree
from chatproxy.store.chat_tree import DocumentError

GPT_ID = "6650b1a2-1c2d-8000-a1b2-0123456789ab"
WEBUI_ID = "0f9d2c1e-8b7a-4c3d-9e8f-abcdef012345"


def gpt_message(role: str, parts: list[Any], time: float | None, **more: Any) -> dict[str, Any]:
    """A message of a ChatGPT mapping node, as the export writes one."""
    content = more.pop("content", {"content_type": "text", "parts": parts})
    return {
        "id": f"msg-{role}-{time}",
        "author": {"role": role, "name": more.pop("name", None), "metadata": {}},
        "create_time": time,
        "update_time": None,
        "content": content,
        "status": "finished_successfully",
        "end_turn": True if role == "assistant" else None,
        "weight": 1.0,
        "metadata": more.pop("metadata", {}),
        "recipient": "all",
    }


def gpt_node(key: str, message: Any, parent: str | None, children: list[str]) -> dict[str, Any]:
    return {"id": key, "message": message, "parent": parent, "children": children}


def chatgpt_conversation() -> dict[str, Any]:
    """A conversation with a null-message root, a hidden system message, a regenerated reply
    (a1 → a1r), an edited question (u1 → u1e), an image, and the current node on the first
    branch, not the newest."""
    hidden = {"is_visually_hidden_from_conversation": True}
    image = {"content_type": "image_asset_pointer", "asset_pointer": "file-service://file-1"}
    nodes = [
        gpt_node("root", None, None, ["sys"]),
        gpt_node("sys", gpt_message("system", [""], None, metadata=hidden), "root", ["u1", "u1e"]),
        gpt_node("u1", gpt_message("user", ["What is 2+2?"], 100.0), "sys", ["a1", "a1r"]),
        gpt_node(
            "a1",
            gpt_message("assistant", ["4"], 101.0, metadata={"model_slug": "gpt-4o"}),
            "u1",
            ["u2"],
        ),
        gpt_node(
            "u2",
            gpt_message(
                "user",
                [],
                102.0,
                content={"content_type": "multimodal_text", "parts": [image, "And this?"]},
            ),
            "a1",
            ["a2"],
        ),
        gpt_node("a2", gpt_message("assistant", ["A cat."], 103.0), "u2", []),
        gpt_node("a1r", gpt_message("assistant", ["Four."], 104.0), "u1", []),
        gpt_node("u1e", gpt_message("user", ["What is 3+3?"], 105.0), "sys", ["a3"]),
        gpt_node("a3", gpt_message("assistant", ["6"], 106.0), "u1e", []),
    ]
    return {
        "title": "Sums",
        "create_time": 99.5,
        "update_time": 106.5,
        "mapping": {node["id"]: node for node in nodes},
        "moderation_results": [],
        "current_node": "a2",
        "plugin_ids": None,
        "conversation_id": GPT_ID,
        "conversation_template_id": None,
        "id": GPT_ID,
    }


# The chat it becomes: (id, parent, role, content), depth first in `children` order.
GPT_ITEMS = [
    (0, None, "user", "What is 2+2?"),
    (1, 0, "assistant", "4"),
    (2, 1, "user", "[image]\nAnd this?"),
    (3, 2, "assistant", "A cat."),
    (4, 0, "assistant", "Four."),
    (5, None, "user", "What is 3+3?"),
    (6, 5, "assistant", "6"),
]


def webui_message(
    key: str, parent: str | None, children: list[str], role: str, content: str, time: int
) -> dict[str, Any]:
    """A message of Open WebUI's `chat.history.messages`, as its chat page writes one."""
    message: dict[str, Any] = {
        "id": key,
        "parentId": parent,
        "childrenIds": children,
        "role": role,
        "content": content,
        "timestamp": time,
    }
    if role == "user":
        message["models"] = ["llama3:8b"]
    else:
        message |= {"model": "llama3:8b", "modelName": "llama3:8b", "modelIdx": 0, "done": True}
        message["usage"] = {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
    return message


def openwebui_chat() -> dict[str, Any]:
    """A chat of Open WebUI's export with a regenerated reply (r1 → r1b); `currentId` on the
    first reply's branch."""
    messages = [
        webui_message("m1", None, ["r1", "r1b"], "user", "Hello", 1_700_000_000),
        webui_message("r1", "m1", ["m2"], "assistant", "Hi!", 1_700_000_001),
        webui_message("m2", "r1", ["r2"], "user", "Bye", 1_700_000_002),
        webui_message("r2", "m2", [], "assistant", "Bye!", 1_700_000_003),
        webui_message("r1b", "m1", [], "assistant", "Hey there.", 1_700_000_004),
    ]
    messages[0]["files"] = [{"type": "image", "url": "data:image/png;base64,AAAA"}]
    history = {"messages": {m["id"]: m for m in messages}, "currentId": "r2"}
    return {
        "id": WEBUI_ID,
        "user_id": "b5e8-user",
        "title": "Greetings",
        "chat": {
            "id": "",
            "title": "Greetings",
            "models": ["llama3:8b"],
            "params": {"system": "Be kind."},
            "history": history,
            "messages": [copy.deepcopy(history["messages"][k]) for k in ("m1", "r1", "m2", "r2")],
            "tags": [],
            "timestamp": 1_700_000_000_000,
            "files": [],
        },
        "updated_at": 1_700_000_010,
        "created_at": 1_700_000_000,
        "share_id": None,
        "archived": False,
        "pinned": False,
        "meta": {"tags": []},
        "folder_id": None,
    }


WEBUI_ITEMS = [
    (0, None, "user", "Hello\n[image]"),
    (1, 0, "assistant", "Hi!"),
    (2, 1, "user", "Bye"),
    (3, 2, "assistant", "Bye!"),
    (4, 0, "assistant", "Hey there."),
]


def shape(tree: Any) -> list[tuple[int | None, int | None, str, Any]]:
    return [(item.id, item.parent, item.role, item.content) for item in tree.items]


def test_a_chatgpt_conversation_keeps_every_branch_and_its_current_node() -> None:
    tree = chatgpt_tree(chatgpt_conversation())

    assert shape(tree) == GPT_ITEMS
    assert (tree.chat_id, tree.title, tree.leaf) == (GPT_ID, "Sums", 3)
    assert (tree.created, tree.updated) == (99.5, 106.5)
    assert [item.created_at for item in tree.items] == [100, 101, 102, 103, 104, 105, 106]
    assert tree.items[1].model == "gpt-4o"


def test_chatgpt_content_types_and_roles_become_text_as_documented() -> None:
    conversation = chatgpt_conversation()
    mapping = conversation["mapping"]
    code = {"content_type": "code", "language": "python", "text": "print(2+2)"}
    output = {"content_type": "execution_output", "text": "4"}
    thoughts = {"content_type": "thoughts", "thoughts": [{"summary": "s", "content": "c"}]}
    quote = {"content_type": "tether_quote", "url": "https://x.test", "title": "X", "text": "q"}
    extra = [
        ("think", gpt_message("assistant", [], 107.0, content=thoughts), "a3"),
        ("code", gpt_message("assistant", [], 108.0, content=code), "think"),
        ("out", gpt_message("tool", [], 109.0, content=output, name="python"), "code"),
        ("quote", gpt_message("user", [], 110.0, content=quote), "out"),
        ("said", gpt_message("system", ["Visible note"], None), "quote"),
        ("blank", gpt_message("system", ["  "], 111.0), "said"),
        ("what", gpt_message("assistant", [], 112.0, content={"content_type": "x_new"}), "blank"),
    ]
    for key, message, parent in extra:
        mapping[key] = gpt_node(key, message, parent, [])
        mapping[parent]["children"].append(key)
    conversation["current_node"] = "blank"

    tree = chatgpt_tree(conversation)

    assert shape(tree)[7:] == [
        (7, 6, "assistant", "```python\nprint(2+2)\n```"),
        (8, 7, "assistant", "[tool: python]\n4"),
        (9, 8, "user", "X\nhttps://x.test\nq"),
        (10, 9, "system", "Visible note"),
        (11, 10, "assistant", "[x_new]"),
    ]
    assert tree.items[10].created_at == 110.0  # no time of its own: its parent's
    assert tree.leaf == 10  # the current node was dropped: its nearest kept ancestor


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (
            lambda c: c["mapping"]["a2"].update(parent="gone"),
            "node 'a2': its parent 'gone' is not in the mapping",
        ),
        (
            lambda c: c["mapping"]["u1"].update(parent="a2"),
            "node 'u1': its parents make a cycle ('u1' → 'a2' → 'u2' → 'a1' → 'u1')",
        ),
        (lambda c: c.update(current_node="nope"), "node 'nope': the current one is not in"),
        (lambda c: c["mapping"]["a1"]["message"].pop("author"), "node 'a1': message.author:"),
        (lambda c: c.pop("mapping"), "mapping: Field required"),
        (lambda c: c.update(id="a b", conversation_id=None), "id: 'a b' cannot be a chat id"),
        (
            lambda c: c["mapping"]["a1"]["message"]["author"].update(role="robot"),
            "node 'a1': message.author.role: 'robot' is not user, assistant, system or tool",
        ),
        (lambda c: c.update(create_time=float("nan")), "create_time: Value error, must be a"),
        (
            lambda c: c["mapping"]["a1"]["message"].update(create_time=float("inf")),
            "node 'a1': message.create_time: Value error, must be a finite time",
        ),
    ],
)
def test_a_bad_chatgpt_conversation_is_refused_naming_the_node(change: Any, error: str) -> None:
    conversation = chatgpt_conversation()
    change(conversation)

    with pytest.raises(DocumentError) as refused:
        chatgpt_tree(conversation)

    assert str(refused.value).startswith(error)


def test_an_openwebui_chat_keeps_every_branch_its_current_message_and_system_prompt() -> None:
    tree = openwebui_tree(openwebui_chat())

    assert shape(tree) == WEBUI_ITEMS
    assert (tree.chat_id, tree.title, tree.leaf, tree.system) == (
        WEBUI_ID,
        "Greetings",
        3,
        "Be kind.",
    )
    assert (tree.created, tree.updated, tree.items[4].created_at) == (
        1_700_000_000,
        1_700_000_010,
        1_700_000_004,
    )
    assert (tree.items[1].model, tree.items[1].usage) == ("llama3:8b", {
        "prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15
    })  # fmt: skip
    assert tree.tokens["total_tokens"] == 45  # three replies


def test_openwebui_times_in_milliseconds_read_as_seconds_and_files_as_lines() -> None:
    chat = openwebui_chat()
    chat.pop("created_at")
    first = chat["chat"]["history"]["messages"]["m1"]
    first["files"].append({"type": "file", "name": "notes.pdf", "id": "f1"})
    first["timestamp"] = 1_700_000_000_500

    tree = openwebui_tree(chat)

    assert tree.created == 1_700_000_000  # chat.timestamp, in milliseconds
    assert tree.items[0].created_at == 1_700_000_000.5
    assert tree.items[0].content == "Hello\n[image]\n[file: notes.pdf]"


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (
            lambda m: m["r2"].update(parentId="gone"),
            "message 'r2': its parentId 'gone' is not in chat.history.messages",
        ),
        (
            lambda m: m["m1"].update(parentId="m2"),
            "message 'm1': its parentIds make a cycle ('m1' → 'm2' → 'r1' → 'm1')",
        ),
        (lambda m: m["r1"].pop("role"), "message 'r1': role: Field required"),
        (lambda m: m["r1"].update(role="tool"), "message 'r1': role: 'tool' is not user"),
        (  # would loop for ever if read as a time in nanoseconds and divided down
            lambda m: m["r1"].update(timestamp=float("inf")),
            "message 'r1': timestamp: Value error, must be a finite time",
        ),
    ],
)
def test_a_bad_openwebui_chat_is_refused_naming_the_message(change: Any, error: str) -> None:
    chat = openwebui_chat()
    change(chat["chat"]["history"]["messages"])

    with pytest.raises(DocumentError) as refused:
        openwebui_tree(chat)

    assert str(refused.value).startswith(error)


def test_the_same_file_gives_the_same_chat_and_formats_are_recognised() -> None:
    assert chatgpt_tree(chatgpt_conversation()) == chatgpt_tree(chatgpt_conversation())
    assert detect([chatgpt_conversation()]) == "chatgpt"
    assert detect([openwebui_chat()]) == "openwebui"
    assert detect(openwebui_chat()) == "openwebui"
    assert detect({"format": "chatproxy.chat"}) == "native"
    assert detect([{"messages": []}]) is None
    assert detect([]) is None
    assert entries_of(openwebui_chat()) == [openwebui_chat()]
    with pytest.raises(DocumentError, match=r"\[1\]: each chat of the file is a JSON object"):
        entries_of([{}, 3])
