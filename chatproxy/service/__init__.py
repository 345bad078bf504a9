"""What a turn is: the guard, the relay, chats, the window and quotas; the service never sees HTTP.

`open_quotas` lives here, beside `Quotas` and `CountedQuotas`, so that neither module imports
the other's users: the counters stand on `Quotas`, and the choice between them stands on both.
"""

from __future__ import annotations

from chatproxy.config import Settings
from chatproxy.service.quotas import Quotas
from chatproxy.store.base import AsyncStore


def open_quotas(settings: Settings, store: AsyncStore) -> Quotas:
    """Build the quotas `settings` configure, counted beside the chats in `store`."""
    if not settings.rate_limit and not settings.token_budget_per_day:
        return Quotas()
    from chatproxy.service.counters import CountedQuotas  # loads `limits`: see quotas.py

    return CountedQuotas.in_store(settings, store)
