"""Own how the environment's text becomes values: one reader (`Env`) and a parser per kind of
variable, each raising `ConfigError` with the variable's name and what is wrong with it.

`config.load_settings` is their one user; the type `redis_settings` builds (`RedisSettings`)
is part of the settings.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import SplitResult, quote, urlsplit

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value is missing or invalid; the message names the variable."""


@dataclass(frozen=True)
class RedisSettings:
    """How to reach Redis: a URL (credentials inside) plus transport options."""

    url: str
    ssl: bool
    socket_timeout: float
    ca_cert: str | None = None
    cluster: bool = False
    max_connections: int = 100

    def describe(self) -> str:
        """Return the URL without credentials, safe for logs."""
        parts = urlsplit(self.url)
        address = parts.netloc.rpartition("@")[2]
        return f"{parts.scheme}://{address}{parts.path}"


def models(env: Env, model: str, vision_model: str) -> tuple[str, ...]:
    """ALLOWED_MODELS, comma separated; MODEL and VISION_MODEL are always allowed."""
    listed = [m.strip() for m in (env.text("ALLOWED_MODELS") or "").split(",") if m.strip()]
    return tuple(dict.fromkeys([model, vision_model, *listed]))


# The longest time a setting may name (about 31,700 years): Redis keeps expiries and leases as
# milliseconds in 64 bits, and refuses (every request failing) one past that.
MAX_SECONDS = 10**12
MAX_RATE = 10**9  # requests a rate limit may allow per period


def rate_limit(name: str, raw: str) -> str:
    import limits  # here, not at the top: a service without RATE_LIMIT starts without it

    try:
        items = limits.parse_many(raw)
    except ValueError:
        raise ConfigError(
            f"{name} must look like 60/minute or 1000/hour;10/second, got {raw!r}"
        ) from None
    zero_period = re.search(r"/\s*0+\s*[a-z]", raw, re.IGNORECASE)  # limits reads it as 1
    if zero_period or any(item.amount < 1 for item in items):  # 0/minute: nothing passes
        raise ConfigError(
            f"{name} must allow at least 1 request per period of at least 1 unit, got {raw!r}"
            " (leave it unset for no limit)"
        )
    if any(item.amount > MAX_RATE or item.get_expiry() > MAX_SECONDS for item in items):
        raise ConfigError(  # the stores keep counts and expiries in 64 bits
            f"{name} may allow at most {MAX_RATE:,} requests per period of at most"
            f" {MAX_SECONDS:g} seconds, got {raw!r} (leave it unset for no limit)"
        )
    return raw


def origins(name: str, raw: str) -> tuple[str, ...]:
    origins = tuple(o.strip().rstrip("/") for o in raw.split(",") if o.strip())
    for origin in origins:
        parts = urlsplit(origin) if origin != "*" else None
        if parts is not None and (
            parts.scheme not in ("http", "https") or not parts.netloc or parts.path
        ):
            raise ConfigError(
                f"{name} must list origins such as https://app.example.com (or *), got {origin!r}"
            )
    if "*" in origins and len(origins) > 1:
        raise ConfigError(f"{name}: * allows every origin and cannot be combined with others")
    return origins


def redis_settings(env: Env) -> RedisSettings | None:
    """Build Redis settings from `REDIS_URL` or the seed's `REDIS_HOST`/`PORT`/`PASSWORD`."""
    url = env.text("REDIS_URL")
    host = env.text("REDIS_HOST")
    if url and host:
        raise ConfigError("set either REDIS_URL or REDIS_HOST, not both")
    if not url and not host:
        return None
    ssl_flag = env.parse("REDIS_SSL", boolean)
    timeout = env.number("REDIS_TIMEOUT", 1.0, minimum=0.05)
    ca_cert = env.parse("REDIS_CA_CERT", readable_file)
    cluster = env.parse("REDIS_CLUSTER", boolean) or False
    connections = env.integer("REDIS_MAX_CONNECTIONS", 100, minimum=1, maximum=100_000)

    def settings(url: str, ssl: bool) -> RedisSettings:
        if ca_cert and not ssl:
            raise ConfigError("REDIS_CA_CERT needs TLS to Redis: use rediss:// or REDIS_SSL=1")
        return RedisSettings(
            url, ssl, timeout, ca_cert=ca_cert, cluster=cluster, max_connections=connections
        )

    if url:
        parts = _split("REDIS_URL", url)
        if parts.scheme not in ("redis", "rediss") or not parts.hostname:
            raise ConfigError(
                f"REDIS_URL must look like redis://[:password@]host:port, got {_mask(url)!r}"
            )
        try:
            parts.port  # noqa: B018  (validates the port)
        except ValueError:
            raise ConfigError("REDIS_URL has an invalid port") from None
        if parts.scheme == "rediss" and ssl_flag is False:
            raise ConfigError("REDIS_SSL=0 contradicts the rediss:// scheme of REDIS_URL")
        ssl = parts.scheme == "rediss" or _default_tls(parts.hostname, ssl_flag)
        scheme = "rediss" if ssl else "redis"
        return settings(parts._replace(scheme=scheme).geturl(), ssl)
    assert host is not None
    bracketed = _redis_host(host)
    port = env.integer("REDIS_PORT", 6379, minimum=1, maximum=65535)
    password = env.text("REDIS_PASSWORD")
    userinfo = f":{quote(password, safe='')}@" if password else ""
    ssl = _default_tls(host, ssl_flag)
    scheme = "rediss" if ssl else "redis"
    return settings(f"{scheme}://{userinfo}{bracketed}:{port}/0", ssl)


def _redis_host(host: str) -> str:
    """Validate REDIS_HOST (a name or an IP address, no port) and bracket an IPv6 address."""
    if ":" in host:
        try:
            return f"[{ipaddress.IPv6Address(host)}]"
        except ValueError:
            raise ConfigError(
                f"REDIS_HOST must be a host name or IP address without a port (use REDIS_PORT),"
                f" got {_mask(host)!r}"
            ) from None
    if not re.fullmatch(r"[A-Za-z0-9._-]+", host):
        raise ConfigError(f"REDIS_HOST must be a host name or IP address, got {_mask(host)!r}")
    return host


def _default_tls(host: str, flag: bool | None) -> bool:
    """Use TLS for non-loopback hosts unless REDIS_SSL says otherwise (Upstash requires TLS)."""
    if flag is not None:
        return flag
    return not _is_loopback(host)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _mask(value: str) -> str:
    """Hide credentials (anything before an `@`) before a value goes into a message.

    Works on malformed values too, e.g. a URL pasted without its scheme.
    """
    return re.sub(r"[^/@]*@", "***@", value)


def _split(name: str, url: str) -> SplitResult:
    try:
        return urlsplit(url)
    except ValueError:
        raise ConfigError(f"{name} is not a valid URL: {_mask(url)!r}") from None


def http_url(name: str, raw: str) -> str:
    parts = _split(name, raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{name} must be an http(s) URL, got {_mask(raw)!r}")
    return raw.rstrip("/")


def log_level(name: str, raw: str) -> str:
    level = raw.strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError(
            f"{name} must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got {raw!r}"
        )
    return level


def readable_file(name: str, raw: str) -> str:
    try:
        with open(raw, "rb"):
            return raw
    except OSError as exc:
        raise ConfigError(
            f"{name} must name a readable file, got {raw!r} ({exc.strerror})"
        ) from None


def boolean(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false (1/0), got {raw!r}")


class Env:
    """Typed, named reads of the environment; empty values count as unset."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def text(self, name: str) -> str | None:
        value = self._environ.get(name, "").strip()
        return value or None

    def parse(self, name: str, parser: Callable[[str, str], T]) -> T | None:
        raw = self.text(name)
        return None if raw is None else parser(name, raw)

    def integer(
        self, name: str, default: int, *, minimum: int | None = None, maximum: int | None = None
    ) -> int:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
        return _bounded(name, value, minimum, maximum)

    def number(
        self,
        name: str,
        default: float,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> float:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {raw!r}") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(f"{name} must be a finite number, got {raw!r}")
        return _bounded(name, value, minimum, maximum)


N = TypeVar("N", int, float)


def _bounded(name: str, value: N, minimum: N | None, maximum: N | None) -> N:
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        shown = f"{value:g}" if isinstance(value, float) else str(value)
        raise ConfigError(f"{name} must be at most {maximum:g}, got {shown}")
    return value
