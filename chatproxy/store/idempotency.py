"""Own what a store keeps of an Idempotency-Key: the claim a request makes on it and the answer
recorded with the turn it made (see `Store.claim_idempotency` and `Store.save_turn`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

IDEMPOTENCY_TTL_SECONDS = 24 * 3600


@dataclass(frozen=True)
class IdempotencyClaim:
    """What a store knows of an idempotency key: new (now claimed), pending, done or mismatch."""

    state: Literal["new", "pending", "done", "mismatch"]
    response: str | None = None


@dataclass(frozen=True)
class IdempotentResult:
    """The answer to record with a turn, under its (hashed) key and request fingerprint."""

    key: str
    fingerprint: str
    response: str

    def __post_init__(self) -> None:
        if not self.key or not self.fingerprint:
            raise ValueError("an idempotent answer needs a key and a fingerprint")
