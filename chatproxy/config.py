"""Own the service's configuration: every environment variable, its default and its validation.

`load_settings(environ)` is the only place that reads configuration. It returns a frozen
`Settings` and raises `ConfigError` naming the variable and what is wrong with it, so that a bad
deploy stops at start-up instead of failing on the first request. Every variable here is
documented in `.env.example`. The parts of the settings read from several variables checked
together are read here (the client keys, compaction, the token and time bounds); how each kind
of value is parsed and checked, and how to reach Redis, are `environment.py`'s.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from chatproxy.environment import (
    MAX_SECONDS,
    ConfigError,
    Env,
    RedisSettings,
    boolean,
    http_url,
    log_level,
    models,
    origins,
    rate_limit,
    readable_file,
    redis_settings,
)

__all__ = ["ApiKey", "Compaction", "ConfigError", "RedisSettings", "Settings", "load_settings"]

DEFAULT_MODEL = "gpt-4.1-mini"
# The values of LOG_EXECUTION_ID that turn functions-framework's execution ids on, as it reads
# them (Cloud Run functions sets it on a function deployed with `gcloud functions`).
EXECUTION_ID_ON = ("y", "yes", "t", "true", "on", "1")
DEFAULT_MODERATION_MODEL = "omni-moderation-latest"

UpstreamMode = Literal["openai", "custom", "dev"]
StoreKind = Literal["redis", "sqlite"]


CompactionMode = Literal["off", "summary"]


@dataclass(frozen=True)
class Compaction:
    """How a chat keeps what no longer fits its window (`service/compaction.py`): `mode`
    (COMPACTION; a chat's own setting wins), the model that writes summaries, the tokens of
    messages left out and not yet summarized that make a summary due, and a summary's most
    tokens."""

    mode: CompactionMode = "off"
    model: str = DEFAULT_MODEL
    threshold: int = 2000
    summary_tokens: int = 600


@dataclass(frozen=True)
class ApiKey:
    """One named client key; only its SHA-256 digest is kept in memory."""

    name: str
    digest: bytes
    admin: bool = False


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
    max_tools_chars: int = 256_000
    max_chat_messages: int = 10_000
    allowed_origins: tuple[str, ...] = ()
    log_content: bool = False
    log_execution_id: bool = False
    trusted_proxy_hops: int = 0
    context_tokens: int = 16_000
    allowed_models: tuple[str, ...] = ()
    openai_organization: str | None = None
    openai_project: str | None = None
    upstream_ca_file: str | None = None
    compaction: Compaction = field(default_factory=Compaction)

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
    env = Env(environ)
    api_key = env.text("GPT_API_KEY")
    base_url = env.parse("OPENAI_BASE_URL", http_url)
    if api_key is None and base_url is None and env.text("K_SERVICE"):
        raise ConfigError(
            "GPT_API_KEY is required when running on Cloud Functions "
            "(the offline dev upstream is for local use only)"
        )
    mode: UpstreamMode = "custom" if base_url else ("openai" if api_key else "dev")
    model = env.text("MODEL") or DEFAULT_MODEL
    max_tokens, context_tokens = _token_bounds(env)
    request_timeout, turn_wait = _time_bounds(env)
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
        redis=redis_settings(env),
        store_path=env.text("STORE_PATH") or "./chats.sqlite3",
        messages_length=env.integer("MESSAGES_LENGTH", 20, minimum=0, maximum=10_000),
        expire_hours=env.number("EXPIRE_HOURS", 6.0, minimum=0.0, maximum=MAX_SECONDS / 3600),
        system_prompt=env.text("SYSTEM_PROMPT"),
        max_body_bytes=env.integer("MAX_BODY_BYTES", 1024 * 1024, minimum=1024),
        log_level=env.parse("LOG_LEVEL", log_level) or "INFO",
        request_timeout=request_timeout,
        turn_wait_seconds=turn_wait,
        turn_lease_seconds=env.number(
            "TURN_LEASE_SECONDS", request_timeout + 5, minimum=0.1, maximum=MAX_SECONDS
        ),
        api_keys=_api_keys(env),
        rate_limit=env.parse("RATE_LIMIT", rate_limit),
        rate_limit_per_address=env.parse("RATE_LIMIT_PER_ADDRESS", rate_limit),
        token_budget_per_day=env.integer("TOKEN_BUDGET_PER_DAY", 0, minimum=0),
        max_content_chars=env.integer("MAX_CONTENT_CHARS", 32_000, minimum=1),
        max_tools_chars=env.integer("MAX_TOOLS_CHARS", 256_000, minimum=1),
        max_chat_messages=env.integer("MAX_CHAT_MESSAGES", 10_000, minimum=0, maximum=2**63 - 1),
        allowed_origins=env.parse("ALLOWED_ORIGINS", origins) or (),
        log_content=env.parse("LOG_CONTENT", boolean) or False,
        log_execution_id=env.text("LOG_EXECUTION_ID") in EXECUTION_ID_ON,
        trusted_proxy_hops=env.integer("TRUSTED_PROXY_HOPS", 0, minimum=0, maximum=10),
        context_tokens=context_tokens,
        allowed_models=models(env, model, env.text("VISION_MODEL") or model),
        openai_organization=env.text("OPENAI_ORG_ID"),
        openai_project=env.text("OPENAI_PROJECT_ID"),
        upstream_ca_file=env.parse("SSL_CERT_FILE", readable_file),
        compaction=_compaction(env, model, context_tokens),
    )


KEY_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
KEY_DIGEST = re.compile(r"sha256:([0-9a-fA-F]{64})")
MIN_KEY_CHARS = 16


def _api_keys(env: Env) -> tuple[ApiKey, ...]:
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


def _compaction(env: Env, model: str, context_tokens: int) -> Compaction:
    """COMPACTION, COMPACTION_MODEL, COMPACTION_THRESHOLD and COMPACTION_SUMMARY_TOKENS."""
    mode = env.parse("COMPACTION", _compaction_mode) or "off"
    default = max(1, min(600, context_tokens // 4))  # a small CONTEXT_TOKENS: a small summary
    summary_tokens = env.integer("COMPACTION_SUMMARY_TOKENS", default, minimum=1)
    if summary_tokens * 3 > context_tokens:
        raise ConfigError(
            f"COMPACTION_SUMMARY_TOKENS ({summary_tokens}) must be at most a third of"
            f" CONTEXT_TOKENS ({context_tokens}): a summary is written from the one before"
            " it and what it folds in, and goes in every window after it"
        )
    return Compaction(
        mode=mode,
        model=env.text("COMPACTION_MODEL") or model,
        threshold=env.integer("COMPACTION_THRESHOLD", 2000, minimum=1),
        summary_tokens=summary_tokens,
    )


def _token_bounds(env: Env) -> tuple[int, int]:
    """MAX_TOKENS and CONTEXT_TOKENS, the reply's room within the window."""
    max_tokens = env.integer("MAX_TOKENS", 500, minimum=1)
    context_tokens = env.integer("CONTEXT_TOKENS", 16_000, minimum=3)  # a summary: a third
    if context_tokens <= max_tokens:
        raise ConfigError(
            f"CONTEXT_TOKENS ({context_tokens}) must be larger than MAX_TOKENS ({max_tokens}):"
            " the reply's tokens count against the context window"
        )
    return max_tokens, context_tokens


def _time_bounds(env: Env) -> tuple[float, float]:
    """REQUEST_TIMEOUT and TURN_WAIT_SECONDS, the wait for a chat's lock within a request."""
    request_timeout = env.number("REQUEST_TIMEOUT", 55.0, minimum=1.0, maximum=MAX_SECONDS)
    turn_wait = env.number("TURN_WAIT_SECONDS", min(30.0, request_timeout / 2), minimum=0.0)
    if turn_wait >= request_timeout:
        raise ConfigError(
            f"TURN_WAIT_SECONDS ({turn_wait:g}) must be less than REQUEST_TIMEOUT"
            f" ({request_timeout:g}): a turn needs time for the model after its wait"
        )
    return request_timeout, turn_wait


def _compaction_mode(name: str, raw: str) -> CompactionMode:
    mode = raw.strip().lower()
    if mode == "off":
        return "off"
    if mode == "summary":
        return "summary"
    raise ConfigError(f"{name} must be off or summary, got {raw!r}")
