"""Own the service's configuration: every environment variable, its default and its validation.

`load_settings(environ)` is the only place that reads configuration. It returns a frozen
`Settings` and raises `ConfigError` naming the variable and what is wrong with it, so that a bad
deploy stops at start-up instead of failing on the first request. Every variable here is
documented in `.env.example`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar
from urllib.parse import SplitResult, quote, urlsplit

DEFAULT_MODEL = "gpt-4.1-mini"
DEFAULT_MODERATION_MODEL = "omni-moderation-latest"

UpstreamMode = Literal["openai", "custom", "dev"]
StoreKind = Literal["redis", "sqlite"]

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value is missing or invalid; the message names the variable."""


@dataclass(frozen=True)
class ApiKey:
    """One named client key; only its SHA-256 digest is kept in memory."""

    name: str
    digest: bytes
    admin: bool = False


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


@dataclass(frozen=True)
class Settings:
    """The validated configuration of one process."""

    gpt_api_key: str | None
    openai_base_url: str | None
    upstream_mode: UpstreamMode
    model: str
    vision_model: str
    moderation_model: str
    max_tokens: int
    upstream_timeout: float
    upstream_max_retries: int
    redis: RedisSettings | None
    store_path: str
    messages_length: int
    expire_hours: float
    system_prompt: str | None
    max_body_bytes: int
    log_level: str
    request_timeout: float
    turn_wait_seconds: float
    turn_lease_seconds: float
    api_keys: tuple[ApiKey, ...] = ()
    rate_limit: str | None = None
    rate_limit_per_address: str | None = None
    token_budget_per_day: int = 0
    max_content_chars: int = 32_000
    max_chat_messages: int = 10_000
    allowed_origins: tuple[str, ...] = ()
    log_content: bool = False
    trusted_proxy_hops: int = 0
    context_tokens: int = 16_000
    allowed_models: tuple[str, ...] = ()
    openai_organization: str | None = None
    openai_project: str | None = None
    upstream_ca_file: str | None = None

    @property
    def store_kind(self) -> StoreKind:
        """Name the store backend in use."""
        return "redis" if self.redis else "sqlite"

    @property
    def ttl_seconds(self) -> int | None:
        """Return the chat TTL in seconds, or None when chats never expire."""
        if self.expire_hours == 0:
            return None
        return max(1, round(self.expire_hours * 3600))


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Turn the environment into validated settings, or raise `ConfigError`."""
    env = _Env(environ)
    api_key = env.text("GPT_API_KEY")
    base_url = env.parse("OPENAI_BASE_URL", _http_url)
    if api_key is None and base_url is None and env.text("K_SERVICE"):
        raise ConfigError(
            "GPT_API_KEY is required when running on Cloud Functions "
            "(the offline dev upstream is for local use only)"
        )
    mode: UpstreamMode = "custom" if base_url else ("openai" if api_key else "dev")
    model = env.text("MODEL") or DEFAULT_MODEL
    max_tokens = env.integer("MAX_TOKENS", 500, minimum=1)
    context_tokens = env.integer("CONTEXT_TOKENS", 16_000, minimum=2)
    if context_tokens <= max_tokens:
        raise ConfigError(
            f"CONTEXT_TOKENS ({context_tokens}) must be larger than MAX_TOKENS ({max_tokens}):"
            " the reply's tokens count against the context window"
        )
    request_timeout = env.number("REQUEST_TIMEOUT", 55.0, minimum=1.0)
    turn_wait = env.number("TURN_WAIT_SECONDS", min(30.0, request_timeout / 2), minimum=0.0)
    if turn_wait >= request_timeout:
        raise ConfigError(
            f"TURN_WAIT_SECONDS ({turn_wait:g}) must be less than REQUEST_TIMEOUT"
            f" ({request_timeout:g}): a turn needs time for the model after its wait"
        )
    return Settings(
        gpt_api_key=api_key,
        openai_base_url=base_url,
        upstream_mode=mode,
        model=model,
        vision_model=env.text("VISION_MODEL") or model,
        moderation_model=env.text("MODERATION_MODEL") or DEFAULT_MODERATION_MODEL,
        max_tokens=max_tokens,
        upstream_timeout=env.number("UPSTREAM_TIMEOUT", 25.0, minimum=0.1),
        upstream_max_retries=env.integer("UPSTREAM_MAX_RETRIES", 1, minimum=0, maximum=10),
        redis=_redis_settings(env),
        store_path=env.text("STORE_PATH") or "./chats.sqlite3",
        messages_length=env.integer("MESSAGES_LENGTH", 20, minimum=0, maximum=10_000),
        expire_hours=env.number("EXPIRE_HOURS", 6.0, minimum=0.0),
        system_prompt=env.text("SYSTEM_PROMPT"),
        max_body_bytes=env.integer("MAX_BODY_BYTES", 1024 * 1024, minimum=1024),
        log_level=env.parse("LOG_LEVEL", _log_level) or "INFO",
        request_timeout=request_timeout,
        turn_wait_seconds=turn_wait,
        turn_lease_seconds=env.number("TURN_LEASE_SECONDS", request_timeout + 5, minimum=0.1),
        api_keys=_api_keys(env),
        rate_limit=env.parse("RATE_LIMIT", _rate_limit),
        rate_limit_per_address=env.parse("RATE_LIMIT_PER_ADDRESS", _rate_limit),
        token_budget_per_day=env.integer("TOKEN_BUDGET_PER_DAY", 0, minimum=0),
        max_content_chars=env.integer("MAX_CONTENT_CHARS", 32_000, minimum=1),
        max_chat_messages=env.integer("MAX_CHAT_MESSAGES", 10_000, minimum=0),
        allowed_origins=env.parse("ALLOWED_ORIGINS", _origins) or (),
        log_content=env.parse("LOG_CONTENT", _boolean) or False,
        trusted_proxy_hops=env.integer("TRUSTED_PROXY_HOPS", 0, minimum=0, maximum=10),
        context_tokens=context_tokens,
        allowed_models=_models(env, model, env.text("VISION_MODEL") or model),
        openai_organization=env.text("OPENAI_ORG_ID"),
        openai_project=env.text("OPENAI_PROJECT_ID"),
        upstream_ca_file=env.parse("SSL_CERT_FILE", _readable_file),
    )


KEY_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
KEY_DIGEST = re.compile(r"sha256:([0-9a-fA-F]{64})")
MIN_KEY_CHARS = 16


def _api_keys(env: _Env) -> tuple[ApiKey, ...]:
    """Parse `PROXY_API_KEYS` (name=key or name=sha256:<hex>, comma separated) and `ADMIN_KEYS`.

    Messages name the key, never its value.
    """
    raw = env.text("PROXY_API_KEYS")
    admins = set(filter(None, (n.strip() for n in (env.text("ADMIN_KEYS") or "").split(","))))
    if raw is None:
        if admins:
            raise ConfigError("ADMIN_KEYS names keys, but PROXY_API_KEYS is not set")
        return ()
    keys: dict[str, ApiKey] = {}
    digests: set[bytes] = set()
    for number, item in enumerate(raw.split(","), start=1):
        name, equals, secret = (part.strip() for part in item.partition("="))
        if not equals or not KEY_NAME.fullmatch(name) or not secret:
            raise ConfigError(
                f"PROXY_API_KEYS entry {number} must look like name=key, with a name of"
                " letters, digits, _ or - (e.g. web=<key>,ops=sha256:<hex>)"
            )
        if name in keys:
            raise ConfigError(f"PROXY_API_KEYS names the key {name!r} twice")
        stored = KEY_DIGEST.fullmatch(secret)
        if stored:
            digest = bytes.fromhex(stored.group(1))
        elif len(secret) < MIN_KEY_CHARS:
            raise ConfigError(
                f"PROXY_API_KEYS key {name!r} is shorter than {MIN_KEY_CHARS} characters;"
                " use a random one, e.g. `openssl rand -hex 24`"
            )
        else:
            digest = hashlib.sha256(secret.encode()).digest()
        if digest in digests:
            raise ConfigError(f"PROXY_API_KEYS key {name!r} is the same key as another one")
        digests.add(digest)
        keys[name] = ApiKey(name, digest, admin=name in admins)
    unknown = sorted(admins - keys.keys())
    if unknown:
        raise ConfigError(f"ADMIN_KEYS names keys that PROXY_API_KEYS lacks: {', '.join(unknown)}")
    return tuple(keys.values())


def _models(env: _Env, model: str, vision_model: str) -> tuple[str, ...]:
    """ALLOWED_MODELS, comma separated; MODEL and VISION_MODEL are always allowed."""
    listed = [m.strip() for m in (env.text("ALLOWED_MODELS") or "").split(",") if m.strip()]
    return tuple(dict.fromkeys([model, vision_model, *listed]))


def _rate_limit(name: str, raw: str) -> str:
    import limits  # here, not at the top: a service without RATE_LIMIT starts without it

    try:
        limits.parse_many(raw)
    except ValueError:
        raise ConfigError(
            f"{name} must look like 60/minute or 1000/hour;10/second, got {raw!r}"
        ) from None
    return raw


def _origins(name: str, raw: str) -> tuple[str, ...]:
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


def _redis_settings(env: _Env) -> RedisSettings | None:
    """Build Redis settings from `REDIS_URL` or the seed's `REDIS_HOST`/`PORT`/`PASSWORD`."""
    url = env.text("REDIS_URL")
    host = env.text("REDIS_HOST")
    if url and host:
        raise ConfigError("set either REDIS_URL or REDIS_HOST, not both")
    if not url and not host:
        return None
    ssl_flag = env.parse("REDIS_SSL", _boolean)
    timeout = env.number("REDIS_TIMEOUT", 1.0, minimum=0.05)
    ca_cert = env.parse("REDIS_CA_CERT", _readable_file)
    cluster = env.parse("REDIS_CLUSTER", _boolean) or False
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


def _http_url(name: str, raw: str) -> str:
    parts = _split(name, raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{name} must be an http(s) URL, got {_mask(raw)!r}")
    return raw.rstrip("/")


def _log_level(name: str, raw: str) -> str:
    level = raw.strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError(
            f"{name} must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got {raw!r}"
        )
    return level


def _readable_file(name: str, raw: str) -> str:
    try:
        with open(raw, "rb"):
            return raw
    except OSError as exc:
        raise ConfigError(
            f"{name} must name a readable file, got {raw!r} ({exc.strerror})"
        ) from None


def _boolean(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false (1/0), got {raw!r}")


class _Env:
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

    def number(self, name: str, default: float, *, minimum: float | None = None) -> float:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {raw!r}") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(f"{name} must be a finite number, got {raw!r}")
        return _bounded(name, value, minimum, None)


N = TypeVar("N", int, float)


def _bounded(name: str, value: N, minimum: N | None, maximum: N | None) -> N:
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} must be at most {maximum}, got {value}")
    return value
