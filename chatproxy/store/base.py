"""Own the storage contract: the `Store` protocol every backend implements, over the data types
of `store/items.py`.

A chat is addressed by a `ChatRef` (tenant + chat id). Its messages are a tree of items, each
under its parent, and the chat has a current leaf: a read returns the path from a first message
to a leaf (the newest part of it, walked up from the leaf, never the whole tree). A turn is saved
in one atomic, idempotent step keyed by a turn id. Every read and write of a chat refreshes its
TTL. The global system prompt lives beside the chats.

Turns on one chat are serialized by a turn lock held in the store: a random token with a lease.
The save checks the token inside its atomic step (fencing), so a holder whose lease ran out can
never append. Idempotency records (per chat, by key) make a repeated request replay its answer.
A chat's summaries (compaction) are made one at a time across processes under a claim of the
same kind: a token with a lease.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # the protocol names these only in its signatures
    from chatproxy.store.chat_tree import ChatTree
    from chatproxy.store.idempotency import IdempotencyClaim, IdempotentResult
    from chatproxy.store.items import ChatInfo, ChatRef, ChatState, Message, Unsummarized
    from chatproxy.store.summary import Summary


class Store(Protocol):
    """The one interface both backends implement, for coroutines; see
    tests/test_store_contract.py."""

    kind: str

    async def ping(self) -> None:
        """Raise `StoreUnavailable` when the store cannot be reached."""

    async def load_window(self, chat: ChatRef, limit: int, leaf: int | None = None) -> ChatState:
        """Return the system prompts and the newest `limit` messages of the path that ends at
        `leaf` (None: the chat's current leaf), in one round trip. Raise `NotFound` for a leaf
        the chat does not hold."""

    async def load_history(
        self,
        chat: ChatRef,
        leaf: int | None = None,
        *,
        children: bool = False,
        summaries: bool = False,
    ) -> ChatState:
        """Return the system prompts and every message of the path ending at `leaf`, oldest
        first; with `children`, also the children of each message's parent and the chat's first
        messages (`ChatState.children`), and with `summaries` the summaries that end at its
        messages (`ChatState.summaries`), in the same read."""

    async def load_page(
        self,
        chat: ChatRef,
        limit: int,
        before: int | None,
        leaf: int | None = None,
        *,
        children: bool = False,
        summaries: bool = False,
    ) -> ChatState:
        """Return up to `limit` messages of the path ending at `leaf` that come before the item
        `before` on it (None: the newest); for an id the chat does not hold, or with `leaf` one
        not on that path, those numbered below it. Without `leaf`, an item off the current path
        pages its own path (a client paging while the leaf moves goes on up the path it began).
        `children` and `summaries` as for `load_history`."""

    async def children(
        self, chat: ChatRef, parents: Sequence[int | None], *, strict: bool = False
    ) -> list[list[int]]:
        """Return the ids of each item's children in the order of their ids, which is the
        order they were added in but for forks that saved after a later turn (None: the
        messages that start a path); none for an item the chat does not hold, or with `strict`
        raise `NotFound` for one, in the same read."""

    async def first_messages(self, chat: ChatRef) -> tuple[list[int], int]:
        """Return the ids of the messages that start a path (as `children` of None) and how
        many messages the chat holds (as `chat_info` counts them), in one read: what a save
        left of a chat that trimming (MAX_CHAT_MESSAGES) dropped the oldest of. ([], 0) for a
        chat that does not exist."""

    async def load_items(self, chat: ChatRef, ids: Sequence[int]) -> list[Message | None]:
        """Return the chat's items `ids`, in that order, None for each it does not hold, in one
        round trip that refreshes the chat's TTL like every read."""

    async def set_leaf(self, chat: ChatRef, item_id: int, *, descend: bool = False) -> int | None:
        """Make `item_id` the chat's current leaf (with `descend`, its newest descendant, always
        taking the newest child); return the new leaf, or None if the chat does not hold it.
        Raise `ChatBusy` while a turn holds the chat's lock (its save moves the leaf)."""

    async def delete_items(self, chat: ChatRef, ids: Sequence[int]) -> list[int]:
        """Remove the items `ids` the chat holds, in one atomic step; return them, lowest first.

        A removed item's children that stay, and a removed leaf, move to its nearest ancestor
        that stays (None if none does). The message count drops; the title and token totals
        (what the turns used) stay; the last saved turn is forgotten (a save of its id stores
        again, a window Redis knew is read again), and so is every summary of the chat, and
        every finished idempotency record of a turn that stored one of the items removed.
        Raise `ChatBusy` while a turn holds the chat's lock, unless the chat holds none of
        `ids`."""

    async def load_unsummarized(
        self, chat: ChatRef, at: int, limit: int, reach: int = 0
    ) -> Unsummarized:
        """Walk up the path ending at `at` to the newest summary on it: the messages after it
        (at most `limit`, the newest), that summary (None if the walk found none) and a fence
        for `save_summary`. `NotFound` if the chat does not hold `at`.

        When the path goes on above the `limit` messages and none of them has a summary, the
        walk goes on up at most `reach` items more, reading none of them, to the newest summary
        (`unread` if it passed items to get there); if it finds none there, `above` is the
        item it stopped short of, to go on from (only for a chat that holds a summary)."""
        ...

    async def save_summary(self, chat: ChatRef, summary: Summary, fence: str) -> bool:
        """Keep `summary` (by its last item), if the chat still holds that item and nothing was
        removed from the chat (nor the chat deleted) since `fence` was read. A removal of items
        drops every summary of the chat: they may tell of what was removed."""
        ...

    async def load_summaries(self, chat: ChatRef, ids: Sequence[int]) -> dict[int, Summary]:
        """The chat's summaries that end at any of the items `ids`, by that item."""
        ...

    async def claim_summary(self, chat: ChatRef, token: str, lease_seconds: float) -> bool:
        """Take the chat's summary claim (one summary of a chat made at a time, across
        processes) for `lease_seconds`, unless another token holds it unexpired; its holder
        takes it again to renew the lease. Return whether `token` holds it now. Apart from the
        turn lock: a turn and a summary of its chat may be made at once."""
        ...

    async def release_summary(self, chat: ChatRef, token: str) -> None:
        """Release the chat's summary claim if `token` still holds it."""

    async def chat_info(self, chat: ChatRef) -> ChatInfo | None:
        """Return a chat's activity and token totals, or None if it does not exist."""

    async def list_chats(
        self,
        tenant: str,
        limit: int,
        before: float | None,
        after: str | None = None,
        before_id: str = "",
    ) -> list[ChatInfo]:
        """Return up to `limit` of a tenant's live chats, most recent activity first (a turn, a
        removal, a change of its prompt, settings or metadata: `ChatInfo.updated`), of equal
        activity the chat id that sorts last (bytewise) first: with `before`, those that come
        after (`before`, `before_id`) in this order (the last of a page: those last active
        before it, and of that activity those whose ids sort before `before_id`); with `after`,
        those after the chat `after` in this order, from where it is now (raise `NotFound` if
        the tenant lists no such chat). Expired chats are passed over: fewer than `limit` come
        back only at the end of the listing."""

    async def load_tree(self, chat: ChatRef) -> ChatTree | None:
        """Return the whole chat, every item of every branch in the order of their ids, with
        its record, in one atomic read that refreshes its TTL; None if it does not exist."""

    async def save_tree(self, chat: ChatRef, tree: ChatTree, *, replace: bool = False) -> bool:
        """Write a whole chat in one atomic step: its items as they are placed (ids and
        parents kept), its leaf, record, times and token totals, listed by `tree.updated`.

        A chat that exists is left as it is (False), or with `replace` removed first, all in
        the same step; the finished idempotency records of the chat written over go too, as
        `delete_chat` takes them (a pending claim stays with its running turn). Raise
        `ChatBusy` (writing nothing) while a turn holds the chat's lock, and `ValidationFailed`
        for a tree of more items than the store keeps (MAX_CHAT_MESSAGES). The tree's shape is
        the caller's to check: every parent an item of it, numbered below its child."""

    async def save_turn(
        self,
        chat: ChatRef,
        turn_id: str,
        messages: Sequence[Message],
        *,
        lock_token: str | None = None,
        idempotent: IdempotentResult | None = None,
        release: bool = False,
        metadata: dict[str, str] | None = None,
        existed: bool = False,
    ) -> bool:
        """Add `messages` to the tree, record `idempotent` (linked to the items `messages`
        become: deleting or trimming them all, or deleting or replacing the chat, deletes it)
        and set the chat's `metadata` (None: leave it), all in one atomic step; the last message
        becomes the chat's leaf. A save of no messages makes the chat's record (a conversation
        made without items).

        A message with an id is stored as it is placed (`Message.placed`, `chained`); one
        without is given the chat's next id and placed under the message before it, the first
        under the current leaf.

        Return False (and change nothing) if `turn_id` is the chat's last saved turn: a save that
        is retried after it landed (turn ids are fresh per turn, so only the last can repeat).
        Nothing brings a deleted chat back: with `existed` (the chat had a record when the turn
        began) a save that finds none raises `NotFound`, and so do placed messages whose first
        goes under an item the chat no longer holds (deleted while the turn ran; one that
        trimming dropped is below the lowest id kept, and a path may start below it). Without
        `lock_token`, placed messages (a fork's, on ids set aside for it) are not saved again if
        their first id holds their first message (a retry after another turn saved), and raise
        `NotFound` if it holds another message (the chat replaced while the fork ran) or their
        parent is gone, trimmed too.
        With `lock_token`, raise `TurnLeaseLost` unless that token still holds the chat's turn
        lock, and with `release` also release that lock in the same step (a repeated save
        releases it too). With a message limit, the oldest items beyond it (the lowest ids) are
        dropped in the same step, and the finished idempotency records of the turns whose items
        all went (the last below the first kept; a record of no items stays).
        """

    async def begin_turn(
        self,
        chat: ChatRef,
        token: str,
        lease_seconds: float,
        limit: int,
        at: int | None = None,
        reserve: int = 0,
    ) -> ChatState | None:
        """Take the chat's turn lock and read the window of the path ending at `at` (None: the
        leaf; `ROOT`: none) as `load_window` does, in one step; return None, reading nothing,
        while another token holds the lock, and raise `NotFound` (taking nothing) for an item
        the chat does not hold. Taking it again with the same token renews the lease: a call
        re-sent after its reply was lost succeeds.

        With `reserve` (a fork: a turn under a given message, which moves no other turn's
        place), no lock is taken: the turn waits (None) while another holds it, as a turn that
        read the next id may be on its way, and `reserve` ids are set aside for it
        (`ChatState.next_id` is the first), on which it places its messages and which no other
        turn gets; its save is not fenced."""

    async def release_turn(self, chat: ChatRef, token: str) -> None:
        """Release the turn lock if `token` still holds it."""

    async def turn_held(self, chat: ChatRef) -> bool:
        """Whether a turn holds the chat's lock now (an unexpired lease), in one read that
        changes nothing (not the chat's TTL)."""

    async def claim_idempotency(
        self, chat: ChatRef, key: str, fingerprint: str, lease_seconds: float
    ) -> IdempotencyClaim:
        """Claim `key` for a request (pending for `lease_seconds`), or report its state."""

    async def release_idempotency(self, chat: ChatRef, key: str, fingerprint: str) -> None:
        """Forget a pending claim (the request failed), so the client may retry."""

    async def set_chat_system(self, chat: ChatRef, content: str | None) -> None:
        """Set (or with None remove) one chat's own system prompt, as its latest activity;
        setting one makes a chat that does not exist (the chat routes set a prompt first)."""

    async def update_chat_settings(self, chat: ChatRef, changes: Mapping[str, Any]) -> None:
        """Change some of a chat's own settings (model, temperature, max_tokens, compaction)
        and, under `system`, its own system prompt, as its latest activity: a None value removes
        that one, those not named stay. One step: changes that meet keep each other's, and a
        change is written whole or not at all. A value set makes a chat that does not exist, as
        a prompt does."""

    async def set_chat_metadata(self, chat: ChatRef, metadata: dict[str, str] | None) -> bool:
        """Set (or with None remove) a chat's metadata (a conversation's; `ChatInfo.metadata`),
        as its latest activity, in one step with the check that the chat exists: return False,
        changing nothing, if it does not (never made, expired or deleted). A conversation is made
        with its metadata by `save_turn`."""

    async def get_global_system(self) -> str | None:
        """Return the stored global system prompt ("" = explicitly none, None = never set)."""

    async def set_global_system(self, content: str) -> None:
        """Store the global system prompt ("" = explicitly none)."""

    async def delete_chat(self, chat: ChatRef) -> bool:
        """Delete a chat's messages, system prompt and record; return whether it existed.

        Its finished idempotency records go too, in the same step (a retry is a new request,
        never a replay of the deleted text; on Redis, but for records written before they were
        linked to their turns' items); a running turn's lock and pending claim are left to it.
        """

    async def close(self) -> None:
        """Release connections."""
