"""What a turn is: the guard, the relay, chats, the window and quotas; the service never sees HTTP.

`open_service` and `open_quotas` build the service's parts from settings, for the app. They live
here, beside `Quotas` and `CountedQuotas`, so that neither module imports the other's users: the
counters stand on `Quotas`, and the choice between them stands on both. `Upstream` (the model
client's protocol) is named here for the edge, whose app factory may be handed a model client of
its own to pass on to `open_service`, without reaching past the service. Only `open_service`
imports the client itself: the rest of the service knows the protocol (`upstream/base.py`).
"""

from __future__ import annotations

import logging

from chatproxy.config import Settings
from chatproxy.service.quotas import Quotas
from chatproxy.service.turns import ChatService
from chatproxy.store.base import Store
from chatproxy.upstream.base import Upstream
from chatproxy.upstream.client import AsyncUpstream
from chatproxy.upstream.dev import DevUpstream

__all__ = ["Upstream", "open_quotas", "open_service"]

log = logging.getLogger("chatproxy")
DEV_STREAM_PAUSE = 0.03  # seconds between the dev upstream's streamed words, to see them arrive


def open_quotas(settings: Settings, store: Store) -> Quotas:
    """Build the quotas `settings` configure, counted beside the chats in `store`."""
    counted = settings.rate_limit or settings.rate_limit_per_address
    if not counted and not settings.token_budget_per_day:
        return Quotas()
    from chatproxy.service.counters import CountedQuotas  # loads `limits`: see quotas.py

    return CountedQuotas.in_store(settings, store)


def open_service(
    settings: Settings, store: Store, quotas: Quotas, upstream: Upstream | None = None
) -> ChatService:
    """Build the turn service over `store`; without `upstream`, over the model client `settings`
    configure (the bundled dev upstream when they name no key and no base URL)."""
    if upstream is None:
        base_url = None
        if settings.upstream_mode == "dev":
            base_url = DevUpstream(chunk_delay=DEV_STREAM_PAUSE).start()
            log.warning(
                "no GPT_API_KEY or OPENAI_BASE_URL: using the bundled offline dev upstream at %s;"
                " replies are canned. Set GPT_API_KEY to talk to OpenAI.",
                base_url,
            )
        upstream = AsyncUpstream.from_settings(settings, base_url)
    return ChatService(settings, store, upstream, quotas)
