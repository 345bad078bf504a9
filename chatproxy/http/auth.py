"""Own who the caller is: API keys, their tenants, and who may act as an admin.

A key is sent as `X-API-Key: <key>` or `Authorization: Bearer <key>` (X-API-Key wins, so an
IAM-protected deploy can carry Google's identity token in `Authorization`). Keys are configured
by name (`PROXY_API_KEYS=web=<key>,ops=sha256:<hex>`); only their SHA-256 digests are held, and a
presented key is compared against every digest in constant time. The key's name is the caller's
tenant, so each key sees only its own chats. With no keys configured the service is open: one
tenant, and everyone may do everything (as in the original project), which start-up and `GET /`
say loudly.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from chatproxy.config import ApiKey
from chatproxy.errors import Unauthorized
from chatproxy.store.items import OPEN_TENANT


@dataclass(frozen=True)
class Caller:
    """Who sent a request: the tenant whose chats it may touch, and whether it is an admin."""

    tenant: str
    admin: bool
    key_name: str | None = None


OPEN_CALLER = Caller(OPEN_TENANT, admin=True)


class Authenticator:
    """Turns request headers into a `Caller`, or raises `Unauthorized`."""

    def __init__(self, keys: tuple[ApiKey, ...]):
        self._keys = keys

    @property
    def open(self) -> bool:
        """Say whether the service runs without API keys."""
        return not self._keys

    def authenticate(self, headers: Mapping[str, str]) -> Caller:
        """Identify the caller from its key; every configured digest is compared."""
        if not self._keys:
            return OPEN_CALLER
        presented = _presented_key(headers)
        if presented is None:
            raise Unauthorized("an API key is required (Authorization: Bearer <key>)")
        digest = hashlib.sha256(presented.encode()).digest()
        found = None
        for key in self._keys:  # no early exit: the time taken does not depend on which matched
            if hmac.compare_digest(key.digest, digest):
                found = key
        if found is None:
            raise Unauthorized("the API key is not valid")
        return Caller(found.name, found.admin, found.name)


def _presented_key(headers: Mapping[str, str]) -> str | None:
    """Read X-API-Key first, so `Authorization` may carry a Google identity token instead
    (an IAM-protected deploy), else `Authorization: Bearer <key>`."""
    api_key = headers.get("X-API-Key", "").strip()
    if api_key:
        return api_key
    scheme, _, credentials = headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return None
