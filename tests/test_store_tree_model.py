"""The tree operations of the store contract as a model: random saves under the leaf or under any
item, leaf moves, deletes of items (their children moved up), path reads from any item, pages,
children (the first messages with the chat's count too) and items by id, with trimming; a real
backend and a plain in-memory tree side by side, every answer compared."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from chatproxy.errors import NotFound
from chatproxy.store import ChatRef, Message, Store
from chatproxy.store.items import ROOT, chained
from tests.test_store_model import MACHINE_SETTINGS, FreshStore, fresh_store, machine_loop

__all__ = ["fresh_store", "machine_loop"]  # the fixtures this module's test uses

T = TypeVar("T")
CHAT = ChatRef("public", "tree")
OTHER = ChatRef("web", "tree")  # the same id in another tenant: never touched

limits = st.integers(min_value=0, max_value=6)
picks = st.integers(min_value=0, max_value=10**6)  # an index into the items, or a missing id


class TreeModel(RuleBasedStateMachine):
    """One chat's tree in a backend and in a dict: id -> (parent, text)."""

    def __init__(self, fresh: FreshStore, runner: asyncio.Runner) -> None:
        super().__init__()
        self._fresh, self._runner = fresh, runner
        self.items: dict[int, tuple[int | None, str]] = {}
        self.leaf: int | None = None
        self.next_id = 0
        self.most = 0
        self.saves = 0

    def run(self, call: Coroutine[Any, Any, T]) -> T:
        return self._runner.run(call)

    @initialize(most=st.sampled_from([0, 0, 4]))
    def open_store(self, most: int) -> None:
        self.store: Store
        self.store, self._cleanup = self._fresh(most)
        self.most = most

    def teardown(self) -> None:
        cleanup = getattr(self, "_cleanup", None)
        if cleanup is not None:
            cleanup()

    # --- the model ---------------------------------------------------------------------------

    def pick(self, n: int) -> int:
        """An id the chat holds (by `n`), or, with none held, one it does not."""
        held = sorted(self.items)
        return held[n % len(held)] if held else n % 50

    def path(self, end: int | None, limit: int | None = None) -> list[int]:
        ids: list[int] = []
        while end is not None and end in self.items and (limit is None or len(ids) < limit):
            ids.append(end)
            end = self.items[end][0]
        return ids[::-1]

    def add(self, texts: list[str], parent: int | None) -> None:
        for text in texts:
            self.items[self.next_id] = (parent, text)
            parent = self.next_id
            self.next_id += 1
        self.leaf = parent
        if self.most:
            for old in sorted(self.items)[: max(0, len(self.items) - self.most)]:
                del self.items[old]

    def save(self, messages: list[Message]) -> None:
        self.saves += 1
        assert self.run(self.store.save_turn(CHAT, f"t{self.saves}", messages))

    # --- rules -------------------------------------------------------------------------------

    @rule(count=st.integers(min_value=1, max_value=3))
    def save_at_the_leaf(self, count: int) -> None:
        texts = [f"m{self.next_id + n}" for n in range(count)]
        self.save([Message("user", text, created_at=1.0) for text in texts])
        self.add(texts, self.leaf)

    @rule(n=picks, root=st.booleans(), count=st.integers(min_value=1, max_value=2))
    def save_under_an_item(self, n: int, root: bool, count: int) -> None:
        parent = None if root or not self.items else self.pick(n)
        texts = [f"m{self.next_id + k}" for k in range(count)]
        messages = [Message("user", text, created_at=1.0) for text in texts]
        self.save(chained(messages, self.next_id, parent))
        self.add(texts, parent)

    @rule(n=picks, descend=st.booleans())
    def move_the_leaf(self, n: int, descend: bool) -> None:
        target = self.pick(n)
        moved = self.run(self.store.set_leaf(CHAT, target, descend=descend))
        if target not in self.items:
            assert moved is None
            return
        while descend and (kids := [i for i, (p, _) in self.items.items() if p == target]):
            target = max(kids)
        assert moved == target
        self.leaf = target

    @rule(limit=limits, n=picks, at_leaf=st.booleans())
    def read_a_window(self, limit: int, n: int, at_leaf: bool) -> None:
        end = None if at_leaf else self.pick(n)
        try:
            state = self.run(self.store.load_window(CHAT, limit, end))
        except NotFound:
            assert end is not None
            assert end not in self.items
            return
        assert end is None or end in self.items
        expected = self.path(self.leaf if end is None else end, limit)
        assert [m.id for m in state.messages] == expected
        assert [m.content for m in state.messages] == [self.items[i][1] for i in expected]

    def children(self, parent: int | None) -> list[int]:
        """The item's children (None: the items that start a path, a trimmed parent's too)."""
        if parent is None:
            return sorted(i for i, (p, _) in self.items.items() if p is None or p not in self.items)
        return sorted(i for i, (p, _) in self.items.items() if p == parent and p in self.items)

    @rule(
        limit=st.integers(min_value=1, max_value=6),
        n=picks,
        held=st.booleans(),
        end=st.none() | picks,
        children=st.booleans(),
    )
    def read_a_page(self, limit: int, n: int, held: bool, end: int | None, children: bool) -> None:
        before = self.pick(n) if held else n % (self.next_id + 3)
        leaf = None if end is None or not self.items else self.pick(end)
        state = self.run(self.store.load_page(CHAT, limit, before, leaf, children=children))
        path = self.path(self.leaf if leaf is None else leaf)
        if before in self.items and (leaf is None or before in path):  # the path above it
            expected = self.path(self.items[before][0], limit)
        else:  # the path's items numbered below it
            expected = [i for i in path if i < before][-limit:]
        assert [m.id for m in state.messages] == expected
        parents = dict.fromkeys([None, *(self.items[i][0] for i in expected)])
        assert state.children == ({p: self.children(p) for p in parents} if children else None)

    @rule(n=picks, root=st.booleans(), strict=st.booleans())
    def list_children(self, n: int, root: bool, strict: bool) -> None:
        parent = None if root else self.pick(n)
        try:
            (kids,) = self.run(self.store.children(CHAT, [parent], strict=strict))
        except NotFound:
            assert strict
            assert parent is not None
            assert parent not in self.items
            return
        assert kids == self.children(parent)  # none for an item the chat does not hold
        assert not strict or parent is None or parent in self.items

    @rule()
    def list_first_messages(self) -> None:
        found = self.run(self.store.first_messages(CHAT))
        assert found == (self.children(None), len(self.items))

    @rule(ns=st.lists(picks, min_size=1, max_size=3), missing=st.booleans())
    def delete_items(self, ns: list[int], missing: bool) -> None:
        ids = [self.pick(n) for n in ns] + ([self.next_id + 2] if missing else [])
        removed = self.run(self.store.delete_items(CHAT, ids))
        gone = sorted({i for i in ids if i in self.items})
        assert removed == gone
        survivors: dict[int, int | None] = {}
        for item in gone:
            parent = self.items[item][0]
            while parent in gone:
                parent = self.items[parent][0]
            survivors[item] = parent if parent in self.items else None
        for item in gone:
            del self.items[item]
        for item, (parent, text) in self.items.items():
            if parent in survivors:
                self.items[item] = (survivors[parent], text)
        if self.leaf in survivors:
            self.leaf = survivors[self.leaf]

    @rule(ns=st.lists(picks, max_size=4), missing=st.booleans())
    def load_items(self, ns: list[int], missing: bool) -> None:
        ids = [self.pick(n) for n in ns] + ([self.next_id + 2] if missing else [])
        found = self.run(self.store.load_items(CHAT, ids))
        assert [(m.id, m.parent, m.content) if m else None for m in found] == [
            (i, *self.items[i]) if i in self.items else None for i in ids
        ]

    @rule()
    def begin_at_the_root(self) -> None:
        state = self.run(self.store.begin_turn(CHAT, "tok", 3600.0, 5, ROOT))
        assert state is not None
        assert state.messages == []
        self.run(self.store.release_turn(CHAT, "tok"))

    @invariant()
    def the_leaf_and_next_id_agree(self) -> None:
        if not hasattr(self, "store"):
            return
        state = self.run(self.store.load_window(CHAT, 0))
        assert (state.leaf, state.next_id) == (self.leaf, self.next_id)
        assert self.run(self.store.load_window(OTHER, 5)).messages == []


def test_tree_operations_behave_like_the_model(
    machine_loop: asyncio.Runner, fresh_store: FreshStore
) -> None:
    run_state_machine_as_test(
        lambda: TreeModel(fresh_store, machine_loop), settings=MACHINE_SETTINGS
    )
