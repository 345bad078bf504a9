"""Own which of the model provider's error messages a tenant is shown.

A provider's error is answered to the proxy's call, made with the operator's key, organization
and project, so its message may be about the operator's account rather than the tenant's
request: OpenAI's name a fragment of the key ("Incorrect API key provided: sk-ab***cd"), the
organization and its rate limits ("... in organization org-XXXX on tokens per min (TPM):
Limit 30000 ..."), a project (`proj_...`), the plan, the quota and the billing. A tenant can
neither see nor fix those, and they are not the tenant's to read. A message about the request
itself (a bad parameter, an unknown model, a context too long) is what the tenant needs to
change it, and is passed on (cut to MAX_MESSAGE_CHARS).

So a message is withheld when its error's `code` is one of the account's (`ACCOUNT_CODES`), or
when its text names the account (`ACCOUNT_WORDS`: a key's prefix, an id of an organization,
project or user, the words organization, project, account, API key, billing, quota, plan,
credit, payment, subscription, tier). The rules err on the side of withholding: a request's
message that happens to use such a word is said without its text, never the reverse. A
message withheld is logged for the operator by its status, `type` and `code` only (its text may
hold a fragment of the key).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 500

ACCOUNT_CODES = frozenset(
    {
        "invalid_api_key",
        "insufficient_quota",
        "billing_hard_limit_reached",
        "billing_not_active",
        "account_deactivated",
        "invalid_organization",
        "organization_verification_required",
        "rate_limit_exceeded",
        "unsupported_country_region_territory",
    }
)
ACCOUNT_WORDS = re.compile(
    r"\bsk-|\b(?:org|proj|user|acct)[-_][A-Za-z0-9]|\bapi[ _-]?keys?\b|\borgani[sz]ations?\b"
    r"|\bprojects?\b|\baccounts?\b|\bbilling\b|\bquotas?\b|\bplans?\b|\bcredits?\b|\bpayments?\b"
    r"|\bsubscriptions?\b|\btiers?\b",
    re.IGNORECASE,
)


def tenant_message(error: Mapping[str, Any]) -> str | None:
    """The message of the provider's `error` object (`{"message", "type", "param", "code"}`)
    that a tenant may read, cut to MAX_MESSAGE_CHARS; None when it has none, or when it is about
    the operator's account."""
    message, code = error.get("message"), error.get("code")
    if not isinstance(message, str) or not message:
        return None
    if (isinstance(code, str) and code in ACCOUNT_CODES) or ACCOUNT_WORDS.search(message):
        return None
    return message[:MAX_MESSAGE_CHARS]


def withheld(error: Mapping[str, Any], status: int | None = None) -> bool:
    """Whether the provider's `error` object (of a call answered with `status`; None: an error
    event in a stream) has a message about the operator's account, which a tenant is not shown;
    if so, say so in the log."""
    message = error.get("message")
    if not isinstance(message, str) or not message or tenant_message(error) is not None:
        return False
    kind, code = (str(error.get(name))[:64] for name in ("type", "code"))
    answer = "a stream's error event" if status is None else f"HTTP {status}"
    log.warning(
        "the model provider refused a call over this service's account (%s, type %s, code %s);"
        " its message was not passed on to the client",
        answer,
        kind,
        code,
    )
    return True
