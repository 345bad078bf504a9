"""Import the chats of the original project's Redis: `python -m chatproxy legacy --from URL`.

The original project kept each chat in a Redis list of JSON messages and the global system
prompt in a string key (`legacy_format.py` owns that layout and how its values parse).
`import_legacy` copies them into the store of this project:

- the global prompt is copied when the target has none stored;
- a chat's leading system message becomes its own system prompt, unless it equals the global
  prompt the chat will follow after the import (then the chat keeps following the global one);
- the other messages are appended in their order, as turns: a user message and the assistant
  reply right after it make one turn; any other message (a user message left without a reply,
  an assistant message without a question before it) is a turn of its own, so nothing is lost.

Running it again is safe and resumes. An imported chat holds legacy message `i` as its item `i`,
under item `i - 1` (a tree with one path; ids survive trimming). So the import compares what the
target holds with the legacy list and appends only the legacy messages past its end: nothing
twice, and whatever a legacy chat gained since the last run. A chat whose target history
disagrees with the legacy list (say it was used through the proxy and the legacy chat grew too)
is reported and left alone. Each chat is written under its turn lock, so a proxy serving the
same store cannot interleave a turn.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import redis

from chatproxy.cli.legacy_format import (
    GLOBAL_SYSTEM_KEY,
    KEY_PREFIX,
    LegacyChat,
    LegacyProblem,
    legacy_text,
    parse_legacy,
)
from chatproxy.errors import NotFound, TurnLeaseLost
from chatproxy.store.base import Store
from chatproxy.store.items import (
    OPEN_TENANT,
    TENANT,
    ChatRef,
    ChatState,
    Message,
    chained,
    valid_chat_id,
)

SCAN_BATCH = 500
LOCK_LEASE_SECONDS = 300.0
LOCK_WAIT_SECONDS = 10.0
SOURCE_TIMEOUT_SECONDS = 10.0


@dataclass
class ImportReport:
    """What an import did (or, in a dry run, would do)."""

    dry_run: bool = False
    chats_imported: int = 0
    chats_skipped: int = 0
    messages_imported: int = 0
    chat_systems_set: int = 0
    global_system: str = "none in the source"
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """Return a few lines for a person: counts, the global prompt, then each problem."""
        verb = "would import" if self.dry_run else "imported"
        lines = [
            ("dry run, nothing written: " if self.dry_run else "")
            + f"{verb} {self.chats_imported} chat(s): {self.messages_imported} message(s),"
            f" {self.chat_systems_set} own system prompt(s);"
            f" {self.chats_skipped} chat(s) already up to date",
            f"global system prompt: {self.global_system}",
        ]
        if self.problems:
            lines.append(f"{len(self.problems)} problem(s), left as they are:")
            lines += [f"  {problem}" for problem in self.problems]
        return "\n".join(lines)


async def import_legacy(
    source: redis.Redis,
    store: Store,
    *,
    tenant: str = OPEN_TENANT,
    dry_run: bool = False,
    default_system: str | None = None,
) -> ImportReport:
    """Copy every legacy chat of `source` into `store` under `tenant`; see the module docstring.

    `default_system` is the SYSTEM_PROMPT setting, which applies while the store holds no global
    prompt. Give a `source` without `decode_responses`, so that even a key that is not UTF-8 is
    reported rather than ending the scan. Redis errors of the source and store errors of the
    target propagate: what was imported until then stays, and a new run resumes.
    """
    if not TENANT.fullmatch(tenant):
        raise ValueError(f"invalid tenant name {tenant!r}")
    report = ImportReport(dry_run=dry_run)
    stored = await _import_global_system(source, store, report)
    global_system = stored if stored is not None else default_system
    keys: set[str] = set()
    for raw in source.scan_iter(match=f"{KEY_PREFIX}*", count=SCAN_BATCH):  # SCAN may repeat
        try:
            keys.add(legacy_text(raw))
        except LegacyProblem as problem:
            report.problems.append(f"{raw!r}: {problem}")
    for key in sorted(keys):
        try:
            await _import_chat(source, store, key, tenant, global_system, report)
        except LegacyProblem as problem:
            report.problems.append(f"{key}: {problem}")
    return report


async def _import_global_system(
    source: redis.Redis, store: Store, report: ImportReport
) -> str | None:
    """Copy the legacy global prompt unless the target has one; return the target's after."""
    target = await store.get_global_system()
    try:
        raw = source.get(GLOBAL_SYSTEM_KEY)
        legacy = None if raw is None else legacy_text(raw)
    except (redis.ResponseError, LegacyProblem) as exc:
        report.problems.append(f"{GLOBAL_SYSTEM_KEY}: not a text string, not copied ({exc})")
        legacy = None
    if legacy is None:
        return target
    if target is None:
        report.global_system = "would be copied" if report.dry_run else "copied"
        if not report.dry_run:
            await store.set_global_system(legacy)
        return legacy
    # Same Redis as source and target: both read the same `system` key.
    same = target == legacy
    report.global_system = "already in place" if same else "the target's own kept (it differs)"
    return target


async def _import_chat(
    source: redis.Redis,
    store: Store,
    key: str,
    tenant: str,
    global_system: str | None,
    report: ImportReport,
) -> None:
    """Import one legacy chat, or raise `LegacyProblem` (having written nothing of it, unless
    the turn lease ran out midway: then the next run resumes)."""
    chat_id = key.removeprefix(KEY_PREFIX)
    if not valid_chat_id(chat_id):
        raise LegacyProblem("not a chat id the proxy accepts (1-128 of A-Z a-z 0-9 . _ @ : -)")
    try:
        entries = source.lrange(key, 0, -1)
    except redis.ResponseError:
        raise LegacyProblem("not a list, as the original project's chats are") from None
    except UnicodeDecodeError:  # a client with decode_responses=True met a non-UTF-8 element
        raise LegacyProblem("an element is not UTF-8") from None
    legacy = parse_legacy(entries)
    own_system = legacy.system if legacy.system and legacy.system != global_system else None
    if not legacy.messages and own_system is None:
        report.chats_skipped += 1  # nothing to import (or the list expired meanwhile)
        return
    chat = ChatRef(tenant, chat_id)
    if report.dry_run:
        await _apply(store, chat, legacy, own_system, report, None)
        return
    token = await _take_turn_lock(store, chat)
    try:
        await _apply(store, chat, legacy, own_system, report, token)
    except TurnLeaseLost:
        raise LegacyProblem(
            "its import outlasted the turn lease and stopped; run the import again to finish it"
        ) from None
    except NotFound:  # the item it goes on from was deleted, before or while it ran
        raise LegacyProblem(
            "its history in the target lost messages the import goes on from (deleted through"
            " the proxy, before or while it ran)"
        ) from None
    finally:
        await store.release_turn(chat, token)


async def _apply(
    store: Store,
    chat: ChatRef,
    legacy: LegacyChat,
    own_system: str | None,
    report: ImportReport,
    token: str | None,
) -> None:
    """Append what the target lacks of `legacy` (with `token` None: only count it)."""
    state = await store.load_history(chat)
    done = _imported(state, legacy.messages)
    if done is None:
        raise LegacyProblem(
            "its history in the target differs from the legacy list (changed on both sides"
            " since the last import?)"
        )
    new = legacy.messages[done:]
    system = own_system if not state.exists else None  # a later run keeps what is set
    if not new and system is None:
        report.chats_skipped += 1
        return
    if token is not None and system is not None:
        await store.set_chat_system(chat, system)  # first, so an interrupted import keeps it
    for number, turn in _turns(new, done):
        if token is not None:
            placed = chained(turn, number, number - 1 if number else None)
            await store.save_turn(chat, _turn_id(chat, number), placed, lock_token=token)
    report.chats_imported += 1
    report.messages_imported += len(new)
    report.chat_systems_set += system is not None


def _imported(state: ChatState, legacy: Sequence[Message]) -> int | None:
    """Return how many legacy messages the target chat holds, or None if it holds others.

    The target's message `n` must be legacy message `n` wherever both exist; messages past the
    legacy list's end were added through the proxy after the import. The legacy messages past
    every id the target handed out go on from the last of them on its path: if the path ends
    below those ids (a branch made through the proxy, messages deleted), it differs.
    """
    held = 0  # one past the last legacy message on the target's path
    for message in state.messages:
        number = message.id if message.id is not None else len(legacy)
        if number >= len(legacy):
            break
        if (message.role, message.content) != (legacy[number].role, legacy[number].content):
            return None
        held = number + 1
    if len(legacy) > state.next_id > held:
        return None
    return min(state.next_id, len(legacy))


def _turns(messages: Sequence[Message], first: int) -> Iterator[tuple[int, list[Message]]]:
    """Yield (legacy number, messages) per turn: user + the reply after it, else one message."""
    index = 0
    while index < len(messages):
        pair = (
            messages[index].role == "user"
            and index + 1 < len(messages)
            and messages[index + 1].role == "assistant"
        )
        size = 2 if pair else 1
        yield first + index, list(messages[index : index + size])
        index += size


def _turn_id(chat: ChatRef, number: int) -> str:
    """Name a legacy turn by its chat and position, the same on every run."""
    digest = hashlib.sha256(f"{chat.tenant}\0{chat.chat_id}\0{number}".encode()).hexdigest()
    return f"legacy-{digest[:32]}"


async def _take_turn_lock(store: Store, chat: ChatRef) -> str:
    """Take the chat's turn lock (as a turn begins, reading no messages), waiting a little for
    a running turn to finish."""
    token = secrets.token_hex(16)
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while await store.begin_turn(chat, token, LOCK_LEASE_SECONDS, 0) is None:
        if time.monotonic() > deadline:
            raise LegacyProblem("a turn on this chat kept running; run the import again later")
        await asyncio.sleep(0.1)
    return token
