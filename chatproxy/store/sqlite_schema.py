"""Own the schema of the SQLite store's file: numbered migrations, applied once each.

A schema change is a new entry at the end of `MIGRATIONS`, never an edit of an old one: the file
records in `PRAGMA user_version` how many it has seen.
"""

from __future__ import annotations

import sqlite3

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE chats (
        tenant TEXT NOT NULL,
        chat_id TEXT NOT NULL,
        system TEXT,
        created REAL NOT NULL,
        updated REAL NOT NULL,
        expires_at REAL,
        last_turn TEXT,
        message_count INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (tenant, chat_id)
    );
    CREATE INDEX chats_expiry ON chats (expires_at) WHERE expires_at IS NOT NULL;
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        tenant TEXT NOT NULL,
        chat_id TEXT NOT NULL,
        body TEXT NOT NULL
    );
    CREATE INDEX messages_by_chat ON messages (tenant, chat_id, id);
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    """
    CREATE TABLE turn_locks (
        tenant TEXT NOT NULL,
        chat_id TEXT NOT NULL,
        token TEXT NOT NULL,
        expires_at REAL NOT NULL,
        PRIMARY KEY (tenant, chat_id)
    );
    CREATE TABLE idempotency (
        tenant TEXT NOT NULL,
        chat_id TEXT NOT NULL,
        key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        state TEXT NOT NULL,
        response TEXT,
        expires_at REAL NOT NULL,
        PRIMARY KEY (tenant, chat_id, key)
    );
    CREATE INDEX idempotency_expiry ON idempotency (expires_at);
    """,
    """
    CREATE TABLE limit_counters (key TEXT PRIMARY KEY, value INTEGER NOT NULL, expires_at REAL);
    CREATE TABLE limit_entries (key TEXT NOT NULL, at REAL NOT NULL);
    CREATE INDEX limit_entries_by_key ON limit_entries (key, at);
    """,
    """
    ALTER TABLE chats ADD COLUMN appended INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE chats ADD COLUMN title TEXT;
    ALTER TABLE chats ADD COLUMN prompt_tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE chats ADD COLUMN completion_tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE chats ADD COLUMN total_tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE messages ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
    UPDATE messages SET seq = (
        SELECT COUNT(*) FROM messages AS earlier
        WHERE earlier.tenant = messages.tenant AND earlier.chat_id = messages.chat_id
        AND earlier.id < messages.id);
    UPDATE chats SET appended = (
        SELECT COUNT(*) FROM messages WHERE messages.tenant = chats.tenant
        AND messages.chat_id = chats.chat_id);
    CREATE INDEX messages_by_seq ON messages (tenant, chat_id, seq);
    CREATE INDEX chats_by_activity ON chats (tenant, updated);
    """,
    """
    ALTER TABLE chats ADD COLUMN settings TEXT;
    """,
    # Chats become trees: a message's number (`seq`) is its item id, each is placed under the
    # one before it, the newest is the leaf, and the stored JSON carries its id and parent.
    """
    ALTER TABLE messages ADD COLUMN parent INTEGER;
    UPDATE messages SET parent = seq - 1 WHERE seq > (
        SELECT MIN(seq) FROM messages AS earlier
        WHERE earlier.tenant = messages.tenant AND earlier.chat_id = messages.chat_id);
    UPDATE messages SET body = json_set(body, '$.id', seq, '$.parent', parent);
    ALTER TABLE chats ADD COLUMN leaf INTEGER;
    UPDATE chats SET leaf = (
        SELECT MAX(seq) FROM messages
        WHERE messages.tenant = chats.tenant AND messages.chat_id = chats.chat_id);
    CREATE INDEX messages_by_parent ON messages (tenant, chat_id, parent);
    """,
    # The metadata a client keeps on a chat (a conversation's), as JSON.
    """
    ALTER TABLE chats ADD COLUMN metadata TEXT;
    """,
    # Summaries (compaction), by the last item each covers; `pruned` counts removals of items,
    # which a summary being written is fenced by.
    """
    CREATE TABLE summaries (
        tenant TEXT NOT NULL,
        chat_id TEXT NOT NULL,
        last_id INTEGER NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (tenant, chat_id, last_id)
    );
    ALTER TABLE chats ADD COLUMN pruned INTEGER NOT NULL DEFAULT 0;
    """,
    # The listing's order: the last activity, then (of equal activity) the chat id.
    """
    CREATE INDEX chats_by_activity_and_id ON chats (tenant, updated, chat_id);
    DROP INDEX chats_by_activity;
    """,
    # A message's children in the order they were added, by index: asked by parent and ordered
    # by seq (or for its newest), SQLite chose messages_by_seq and read the whole chat for each
    # parent, so a history's versions took time that grew with the square of its length.
    """
    CREATE INDEX messages_by_parent_and_seq ON messages (tenant, chat_id, parent, seq);
    DROP INDEX messages_by_parent;
    """,
    # The claim under which a chat's summary is made, one at a time across processes
    # (compaction): its holder's token and when its lease ends.
    """
    CREATE TABLE summary_claims (
        tenant TEXT NOT NULL,
        chat_id TEXT NOT NULL,
        token TEXT NOT NULL,
        expires_at REAL NOT NULL,
        PRIMARY KEY (tenant, chat_id)
    );
    """,
    # A finished idempotency record's link to the items its turn stored (consecutive ids: the
    # first and the last), which deleting them takes it with them; NULL: none, or written
    # before (deleting its chat still takes it, by the chat).
    """
    ALTER TABLE idempotency ADD COLUMN first_item INTEGER;
    ALTER TABLE idempotency ADD COLUMN last_item INTEGER;
    """,
)


def migrate(db: sqlite3.Connection) -> None:
    """Apply the numbered migrations this file has not seen yet."""
    (version,) = db.execute("PRAGMA user_version").fetchone()
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        for statement in filter(str.strip, script.split(";")):
            db.execute(statement)
        db.execute(f"PRAGMA user_version = {number}")
