"""Own the errors of the model provider: the `UpstreamError` branch of the error tree
(`errors.py` draws it whole), each with its HTTP status and code.

These say whether trying again may help (`retryable`); the model client retries those
within the request's deadline (`upstream/rules.py` decides when). The error that ends a call
also says how many of its attempts were lost (`lost_attempts`): sent, then never answered (timed
out, or cut off), so the provider may have billed them; the service counts them against the
tenant's budget.
"""

from __future__ import annotations

from chatproxy.errors import ProxyError


class UpstreamError(ProxyError):
    status = 502
    code = "upstream_error"
    default_message = "the model provider failed"
    retryable = True
    lost_attempts = 0  # of the call it ends: sent and never answered (see the module's docstring)


class UpstreamRejected(UpstreamError):
    """The upstream refused the request; its message is passed on when it is about the request,
    not the operator's account with the provider (`upstream/provider_errors.py`)."""

    code = "upstream_rejected"
    retryable = False

    def __init__(self, message: str, *, status: int = 502):
        super().__init__(message)
        self.status = status


class UpstreamAuthFailed(UpstreamError):
    code = "upstream_auth"
    retryable = False
    default_message = "the model provider rejected the proxy's credentials (check GPT_API_KEY)"


class UpstreamBadResponse(UpstreamError):
    code = "upstream_bad_response"
    retryable = False
    default_message = "the model provider sent an answer the proxy could not read"


class UpstreamRateLimited(UpstreamError):
    status = 503
    code = "upstream_rate_limited"
    default_message = "the model provider is rate limiting requests; try again later"

    def __init__(self, retry_after: int):
        super().__init__(headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"
    default_message = "the model provider did not answer in time"
