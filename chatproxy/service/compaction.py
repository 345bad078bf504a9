"""Own compaction: what a chat keeps of the messages that no longer fit its window.

With compaction off (COMPACTION=off, the default, or a chat's own `compaction` setting) a
window keeps the newest messages that fit and the older ones are simply not sent. With
`summary`, the messages left out are folded into a readable summary, and a window is the system
prompt with the newest summary on its path appended under `SUMMARY_HEADING`, then the newest
messages after the summary that fit beside it (`compaction_rules.py`: which summary a path uses,
what a window sends beside it, the text a summary is written from; `compactor.py`: when a due
summary is made; `folding.py`: how).

- **When.** A turn's window notes that a summary is due (`Compactor.plan`) when the messages
  left out and not yet summarized come to COMPACTION_THRESHOLD tokens or more (or to the
  `compact_threshold` a Responses turn holds its history to, if lower), or when its read
  found no summary while the path goes on above what it read; the summary covers up to the
  newest message left out. A window that left the path's summary out for its size (kept for a
  larger window) makes it due again, folded to fit alone or with what follows it, never an older
  one below it. A turn of such a chat reads `READ_FACTOR` times MESSAGES_LENGTH, so
  it counts the messages above the window without walking the chat, and meets the summary again
  for several turns.
- **Per path.** A summary is kept by the last item it covers, which a tree reaches by one path
  only: a branch below it uses it, a branch above it never does, and makes its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chatproxy.config import Settings
from chatproxy.service.compaction_rules import after_summary
from chatproxy.service.window import message_tokens
from chatproxy.store.items import Message
from chatproxy.store.summary import Summary

Path = Sequence[Message]  # a path's messages, oldest first

READ_FACTOR = 2


def compacting(settings: Settings, chat_settings: dict[str, Any]) -> bool:
    """Whether a chat's windows are compacted: its own setting, else COMPACTION."""
    return (chat_settings.get("compaction") or settings.compaction.mode) == "summary"


def due_through(
    read: Path,
    sent: Path,
    summary: Summary | None,
    threshold: int,
    whole: bool = False,
    dropped: Summary | None = None,
) -> int | None:
    """The item a summary is due through, or None: `read` is the path a turn read (oldest
    first), `sent` the part of it its window sends, `summary` the one the window used; `whole`:
    the read reached the path's first message (whose parent trimming may have dropped);
    `dropped`: the summary on the path that the window left out for its size (kept for a larger
    window), which is due again at least: folded again to fit, alone and in its place, or on
    from, never an older one below it (the window would leave that out for this one)."""
    if not read:
        return None
    if dropped is not None:
        through = due_through(read, sent, dropped, threshold, whole)
        return dropped.last if through is None else through
    kept = {m.id for m in sent}
    left_out = [m for m in after_summary(read, summary) if m.id not in kept]
    above = summary is None and read[0].parent is not None and not whole  # never summarized
    if not left_out:
        return read[0].parent if above else None
    if above or sum(message_tokens(m) for m in left_out) >= threshold:
        return left_out[-1].id
    return None
