"""The store contract as a model: random sequences of store calls, checked step by step.

A hypothesis state machine drives a real backend (Redis, SQLite) and a plain in-memory model side
by side; every answer of the store must equal the model's. No TTL and hour-long leases, so time
never matters; each example draws the store's message limit (none, 3 or 1). The turns are saved
without ids, so each is one chain: the model numbers a chat's messages from its next id and
places each turn under the leaf the last one left. Single cases of the contract follow at the
end of the file.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import tempfile
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    rule,
    run_state_machine_as_test,
)

from chatproxy.config import RedisSettings
from chatproxy.errors import TurnLeaseLost
from chatproxy.store import (
    ChatRef,
    ChatState,
    IdempotencyClaim,
    IdempotentResult,
    Message,
    Store,
)
from chatproxy.store.items import chained
from chatproxy.store.redis import RedisStore
from chatproxy.store.redis_client import connect
from chatproxy.store.sqlite import SqliteStore
from tests.conftest import take_lock

T = TypeVar("T")

LEASE = 3600.0  # never runs out during a run

# Small pools, so that chats, turn ids, lock tokens and idempotency keys collide often.
CHATS = tuple(
    ChatRef(tenant, chat_id) for tenant in ("public", "web") for chat_id in ("a:b", "x@y.z")
)
TURN_IDS = ("t1", "t2", "t3")
TOKENS = ("tok-a", "tok-b")
KEYS = ("k1", "k2")
FINGERPRINTS = ("f1", "f2")

chats = st.sampled_from(CHATS)
turn_ids = st.sampled_from(TURN_IDS)
tokens = st.sampled_from(TOKENS)
keys = st.sampled_from(KEYS)
fingerprints = st.sampled_from(FINGERPRINTS)
texts = st.text(max_size=12)
contents = st.one_of(
    texts,
    st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": texts}), max_size=2),
)
messages = st.builds(
    Message,
    role=st.sampled_from(["user", "assistant"]),
    content=contents,
    created_at=st.floats(min_value=0, max_value=2e9, allow_nan=False),
    usage=st.none() | st.fixed_dictionaries({"total_tokens": st.integers(0, 10**6)}),
    model=st.none() | st.just("m-1"),
)
answers = st.none() | st.builds(
    IdempotentResult, key=keys, fingerprint=fingerprints, response=texts
)

MACHINE_SETTINGS = settings(
    max_examples=100,
    stateful_step_count=50,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# A fresh, empty store with a message limit (0 = none), and what to call when the example is over.
FreshStore = Callable[[int], tuple[Store, Callable[[], None]]]


@dataclass
class Record:
    """The model of one idempotency record."""

    state: str  # "pending" or "done"
    fingerprint: str
    response: str | None = None
    last: int | None = None  # a finished one's: the last item its turn stored


class StoreModel(RuleBasedStateMachine):
    """Compare one backend with a dict-based model of the contract, call by call."""

    def __init__(self, fresh_store: FreshStore, runner: asyncio.Runner) -> None:
        super().__init__()
        self._fresh_store = fresh_store
        self._runner = runner
        self._cleanup: Callable[[], None] | None = None
        self.max_messages = 0
        # A chat has a record once a turn was saved or its own prompt was set, until deleted:
        # `exists` and delete_chat's answer follow the record, not "messages or own prompt".
        self.present: set[ChatRef] = set()
        self.messages: dict[ChatRef, list[Message]] = {c: [] for c in CHATS}  # placed, by id
        self.appended: dict[ChatRef, int] = dict.fromkeys(CHATS, 0)  # the next message's id
        self.leaf: dict[ChatRef, int | None] = dict.fromkeys(CHATS)  # the last saved message
        self.system: dict[ChatRef, str | None] = dict.fromkeys(CHATS)
        self.last_turn: dict[ChatRef, str | None] = dict.fromkeys(CHATS)  # only the LAST one
        self.holder: dict[ChatRef, str | None] = dict.fromkeys(CHATS)
        self.claimer: dict[ChatRef, str | None] = dict.fromkeys(CHATS)  # of its summaries
        self.idem: dict[tuple[ChatRef, str], Record] = {}
        self.global_system: str | None = None

    def run(self, call: Coroutine[Any, Any, T]) -> T:
        """Run a store call to its end on the machine's event loop."""
        return self._runner.run(call)

    @initialize(max_messages=st.sampled_from([0, 3, 1]))
    def open_store(self, max_messages: int) -> None:
        self.store, self._cleanup = self._fresh_store(max_messages)
        self.max_messages = max_messages

    def expected_state(self, chat: ChatRef, limit: int | None) -> ChatState:
        stored = self.messages[chat]
        window = stored if limit is None else stored[max(0, len(stored) - limit) :]
        return ChatState(
            chat in self.present,
            self.system[chat],
            self.global_system,
            window,
            leaf=self.leaf[chat],
            next_id=self.appended[chat],
        )

    @rule(
        chat=chats,
        turn_id=turn_ids,
        turn=st.lists(messages, min_size=1, max_size=2),
        token=st.none() | tokens,
        answer=answers,
        release=st.booleans(),
    )
    def save_turn(
        self,
        chat: ChatRef,
        turn_id: str,
        turn: list[Message],
        token: str | None,
        answer: IdempotentResult | None,
        release: bool,
    ) -> None:
        def save() -> bool:
            return self.run(
                self.store.save_turn(
                    chat, turn_id, turn, lock_token=token, idempotent=answer, release=release
                )
            )

        holds = token is not None and self.holder[chat] == token
        if holds and release:  # released in the same step, whatever else happens
            self.holder[chat] = None
        if self.last_turn[chat] == turn_id:
            assert save() is False
            return
        if token is not None and not holds:
            with pytest.raises(TurnLeaseLost):
                save()
            return
        assert save() is True
        self.present.add(chat)
        placed = chained(turn, self.appended[chat], self.leaf[chat])
        self.messages[chat] += placed
        self.appended[chat] += len(turn)
        self.leaf[chat] = placed[-1].id
        self.last_turn[chat] = turn_id
        if answer is not None:
            record = Record("done", answer.fingerprint, answer.response, placed[-1].id)
            self.idem[chat, answer.key] = record
        if self.max_messages and len(self.messages[chat]) > self.max_messages:
            # the lowest ids beyond the limit go in the same step, and the finished records of
            # the turns whose items all went
            self.messages[chat] = self.messages[chat][-self.max_messages :]
            first = self.messages[chat][0].id
            for key, kept in list(self.idem.items()):
                gone = kept.last is not None and first is not None and kept.last < first
                if key[0] == chat and kept.state == "done" and gone:
                    del self.idem[key]

    @rule(chat=chats, limit=st.integers(0, 5))
    def load_window(self, chat: ChatRef, limit: int) -> None:
        assert self.run(self.store.load_window(chat, limit)) == self.expected_state(chat, limit)

    @rule(chat=chats)
    def load_history(self, chat: ChatRef) -> None:
        assert self.run(self.store.load_history(chat)) == self.expected_state(chat, None)

    @rule(chat=chats, content=st.none() | texts)
    def set_chat_system(self, chat: ChatRef, content: str | None) -> None:
        self.run(self.store.set_chat_system(chat, content))
        if content is not None:
            self.present.add(chat)
        if chat in self.present:
            self.system[chat] = content

    @rule(content=texts)
    def set_global_system(self, content: str) -> None:
        self.run(self.store.set_global_system(content))
        self.global_system = content

    @rule()
    def get_global_system(self) -> None:
        assert self.run(self.store.get_global_system()) == self.global_system

    @rule(chat=chats)
    def delete_chat(self, chat: ChatRef) -> None:
        assert self.run(self.store.delete_chat(chat)) is (chat in self.present)
        self.present.discard(chat)
        self.messages[chat] = []
        self.appended[chat] = 0
        self.leaf[chat] = None
        self.system[chat] = None
        self.last_turn[chat] = None
        # Its finished idempotency records go with it; the turn lock, the summary claim and a
        # pending claim stay with their holders.
        for key, record in list(self.idem.items()):
            if key[0] == chat and record.state == "done":
                del self.idem[key]

    @rule(chat=chats, token=tokens, limit=st.integers(0, 5))
    def begin_turn(self, chat: ChatRef, token: str, limit: int) -> None:
        state = self.run(self.store.begin_turn(chat, token, LEASE, limit))
        if self.holder[chat] not in (None, token):  # the holder may begin again
            assert state is None
            return
        assert state == self.expected_state(chat, limit)
        self.holder[chat] = token

    @rule(chat=chats, token=tokens)
    def release_turn(self, chat: ChatRef, token: str) -> None:
        self.run(self.store.release_turn(chat, token))
        if self.holder[chat] == token:
            self.holder[chat] = None

    @rule(chat=chats)
    def turn_held(self, chat: ChatRef) -> None:
        assert self.run(self.store.turn_held(chat)) is (self.holder[chat] is not None)

    @rule(chat=chats, token=tokens)
    def claim_summary(self, chat: ChatRef, token: str) -> None:
        free = self.claimer[chat] in (None, token)  # its holder takes it again
        assert self.run(self.store.claim_summary(chat, token, LEASE)) is free
        if free:
            self.claimer[chat] = token

    @rule(chat=chats, token=tokens)
    def release_summary(self, chat: ChatRef, token: str) -> None:
        self.run(self.store.release_summary(chat, token))
        if self.claimer[chat] == token:
            self.claimer[chat] = None

    @rule(chat=chats, key=keys, fingerprint=fingerprints)
    def claim_idempotency(self, chat: ChatRef, key: str, fingerprint: str) -> None:
        record = self.idem.get((chat, key))
        if record is None:
            expected = IdempotencyClaim("new")
            self.idem[chat, key] = Record("pending", fingerprint)
        elif record.fingerprint != fingerprint:
            expected = IdempotencyClaim("mismatch")
        elif record.state == "pending":
            expected = IdempotencyClaim("pending")
        else:
            expected = IdempotencyClaim("done", record.response)
        assert self.run(self.store.claim_idempotency(chat, key, fingerprint, LEASE)) == expected

    @rule(chat=chats, key=keys, fingerprint=fingerprints)
    def release_idempotency(self, chat: ChatRef, key: str, fingerprint: str) -> None:
        self.run(self.store.release_idempotency(chat, key, fingerprint))
        record = self.idem.get((chat, key))
        if record is not None and record.state == "pending" and record.fingerprint == fingerprint:
            del self.idem[chat, key]

    @rule()
    def everything_matches(self) -> None:
        """Compare every chat of the pool and the global prompt (too slow as an invariant)."""
        for chat in CHATS:
            assert self.run(self.store.load_history(chat)) == self.expected_state(chat, None), chat
        assert self.run(self.store.get_global_system()) == self.global_system

    def teardown(self) -> None:
        if self._cleanup is None:  # the example ended before the store was opened
            return
        try:
            self.everything_matches()
        finally:
            self._cleanup()


@pytest.fixture
def fresh_store(
    store_kind: str, request: pytest.FixtureRequest, machine_loop: asyncio.Runner
) -> Iterator[FreshStore]:
    """Hand out an empty store per example: Redis flushed, or a new SQLite file."""
    if store_kind == "redis":
        server = request.getfixturevalue("redis_server")
        admin = server.client()

        def fresh_redis(max_messages: int) -> tuple[Store, Callable[[], None]]:
            admin.flushall()
            redis_store = RedisStore(
                connect(RedisSettings(server.url, False, 2.0)), None, max_messages
            )
            return redis_store, lambda: machine_loop.run(redis_store.close())

        yield fresh_redis
        admin.close()
        return

    def fresh_sqlite(max_messages: int) -> tuple[Store, Callable[[], None]]:
        directory = tempfile.mkdtemp(prefix="store-model-")
        sqlite_store = SqliteStore(str(Path(directory) / "chats.sqlite3"), None, max_messages)

        def cleanup() -> None:
            machine_loop.run(sqlite_store.close())
            shutil.rmtree(directory, ignore_errors=True)

        return sqlite_store, cleanup

    yield fresh_sqlite


@pytest.fixture
def machine_loop() -> Iterator[asyncio.Runner]:
    """The event loop the state machine runs the store's calls on (its rules are not
    coroutines)."""
    with asyncio.Runner() as runner:
        yield runner


def test_store_behaves_like_the_model(
    machine_loop: asyncio.Runner, fresh_store: FreshStore
) -> None:
    run_state_machine_as_test(
        lambda: StoreModel(fresh_store, machine_loop), settings=MACHINE_SETTINGS
    )


# --- Single cases ---------------------------------------------------------------------------------


CHAT = ChatRef("public", "chat-1")


def pair(n: int) -> list[Message]:
    return [Message("user", f"q{n}", created_at=float(n)), Message("assistant", f"a{n}")]


@pytest.mark.anyio
async def test_an_empty_lock_token_is_fenced_like_any_other(store: Store) -> None:
    assert await take_lock(store, CHAT, "holder", LEASE)

    with pytest.raises(TurnLeaseLost):
        await store.save_turn(CHAT, "t1", pair(1), lock_token="")


def test_an_idempotent_answer_needs_a_fingerprint() -> None:
    # The Redis save script reads an empty fingerprint as "no answer to record".
    with pytest.raises(ValueError, match="fingerprint"):
        IdempotentResult("k", "", "reply")


@pytest.mark.anyio
async def test_a_turns_window_is_decoded_once_and_then_taken_from_memory(
    store: Store,
) -> None:
    decoded = store.decoded  # type: ignore[attr-defined]  # each backend's own memory
    saved = chained(pair(1) + pair(2), 0, None)  # placed, as the service saves a turn
    await store.save_turn(CHAT, "t1", saved[:2])
    await store.save_turn(CHAT, "t2", saved[2:])
    assert (await store.load_history(CHAT)).messages == saved
    # Redis keeps the messages it saved; a history read keeps nothing.
    assert len(decoded) == (len(saved) if store.kind == "redis" else 0)

    first = await store.begin_turn(CHAT, "tok", LEASE, 10)
    assert first is not None
    assert first.messages == saved
    assert decoded.get_many([m.dumps() for m in saved]) == saved
    await store.release_turn(CHAT, "tok")
    again = await store.begin_turn(CHAT, "tok", LEASE, 10)

    assert again is not None
    assert again.messages == saved
    assert all(a is b for a, b in zip(again.messages, first.messages, strict=True))
    assert len(decoded) == len(saved)


@pytest.mark.parametrize(
    "message",
    [
        Message("user", "q", created_at=1.5, id=0),
        Message("user", [{"type": "text", "text": "q"}], created_at=2.0, id=4, parent=1),
        Message("assistant", "a", created_at=3.0, usage={"total_tokens": 7}, model="m", id=1),
        Message(
            "assistant",
            None,
            created_at=4.0,
            id=2,
            parent=1,
            tool_calls=[{"id": "c1", "type": "function", "function": {"name": "f"}}],
            finish_reason="tool_calls",
        ),
        Message("tool", "42", created_at=5.0, id=3, parent=2, tool_call_id="c1", name="f"),
    ],
)
def test_a_decoded_message_is_the_one_the_constructor_builds(message: Message) -> None:
    decoded = Message.from_json(json.loads(message.dumps()))

    assert decoded == message
    assert repr(decoded) == repr(message)
    assert vars(decoded) == vars(message)
    with pytest.raises(dataclasses.FrozenInstanceError):
        decoded.content = "changed"  # type: ignore[misc]


def test_a_stored_message_is_compact_json_with_its_text_as_written() -> None:
    message = Message(
        "assistant",
        "héllo 👋",
        created_at=1.5,
        usage={"total_tokens": 7},
        model="m",
        id=4,
        parent=3,
    )

    assert message.dumps() == (
        '{"id":4,"parent":3,"role":"assistant","content":"héllo 👋","created_at":1.5,'
        '"tokens":{"total_tokens":7},"model":"m"}'
    )
    assert message.placed(0, None).dumps().startswith('{"id":0,"parent":null,"role":"assistant",')
    with pytest.raises(ValueError, match="id"):
        Message("user", "q").dumps()  # a message is stored only with its place


def test_a_stored_message_without_optional_fields_gets_the_defaults() -> None:
    decoded = Message.from_json({"role": "user", "content": "q"})

    assert decoded == Message("user", "q", created_at=0.0)


@pytest.mark.parametrize("tenant", ["public:a", "", "a b", "{x}", "t" * 65])
def test_tenants_cannot_contain_what_would_make_keys_ambiguous(tenant: str) -> None:
    # Redis keys join tenant and chat id as {tenant:chat_id}; chat ids may contain ':'.
    with pytest.raises(ValueError, match="tenant"):
        ChatRef(tenant, "b")


@pytest.mark.anyio
async def test_chat_ids_with_colons_stay_apart(store: Store) -> None:
    saved = pair(1)
    await store.save_turn(ChatRef("public", "a:b"), "t1", saved)

    assert (await store.load_history(ChatRef("public", "a"))).messages == []
    assert (await store.load_history(ChatRef("public", "a:b"))).messages == chained(saved, 0, None)
