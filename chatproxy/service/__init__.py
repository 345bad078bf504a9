"""What a turn is: the guard, the relay, chats, the window and quotas; the service never sees HTTP.

`open_quotas` lives here, beside `Quotas` and `CountedQuotas`, so that neither module imports
the other's users: the counters stand on `Quotas`, and the choice between them stands on both.
"""

from __future__ import annotations

from chatproxy.config import Settings
from chatproxy.service.quotas import Quotas
from chatproxy.store import AsyncStore


def open_quotas(settings: Settings, store: AsyncStore) -> Quotas:
    """Build the quotas `settings` configure, counted beside the chats in `store`."""
    counted = settings.rate_limit or settings.rate_limit_per_address
    if not counted and not settings.token_budget_per_day:
        return Quotas()
    from chatproxy.service.counters import CountedQuotas  # loads `limits`: see quotas.py

    return CountedQuotas.in_store(settings, store)
