"""`load_settings(environ)`: defaults, upstream modes, validation, Redis URLs, `.env.example`.

Every test passes a plain dict, never `os.environ`.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.connection import parse_url

from chatproxy.config import DEFAULT_MODEL, DEFAULT_MODERATION_MODEL, ConfigError, load_settings

ROOT = Path(__file__).resolve().parents[1]
CONFIG_SOURCES = [ROOT / "chatproxy" / "config.py", ROOT / "chatproxy" / "environment.py"]
ENV_EXAMPLE = ROOT / ".env.example"

# Set by the Cloud Functions runtime itself, so it is not something to document for users.
PLATFORM_VARS = {"K_SERVICE"}


# --- Defaults ---------------------------------------------------------------------------------


def test_empty_environment_gives_documented_defaults() -> None:
    settings = load_settings({})

    assert settings.upstream_mode == "dev"
    assert settings.gpt_api_key is None
    assert settings.openai_base_url is None
    assert settings.model == DEFAULT_MODEL
    assert settings.vision_model == settings.model
    assert settings.moderation_model == DEFAULT_MODERATION_MODEL
    assert settings.max_tokens == 500
    assert settings.upstream_timeout == 25.0
    assert settings.upstream_max_retries == 1
    assert settings.messages_length == 20
    assert settings.expire_hours == 6
    assert settings.ttl_seconds == 6 * 3600
    assert settings.redis is None
    assert settings.store_kind == "sqlite"
    assert settings.store_path == "./chats.sqlite3"
    assert settings.max_body_bytes == 1024 * 1024
    assert settings.system_prompt is None
    assert settings.log_level == "INFO"
    assert (settings.rate_limit, settings.rate_limit_per_address) == (None, None)
    assert settings.token_budget_per_day == 0


def test_vision_model_follows_model_unless_set() -> None:
    assert load_settings({"MODEL": "m1"}).vision_model == "m1"
    assert load_settings({"MODEL": "m1", "VISION_MODEL": "v1"}).vision_model == "v1"


@pytest.mark.parametrize(
    ("expire_hours", "ttl_seconds"),
    [("0", None), ("6", 21600), ("0.5", 1800), ("0.0001", 1)],
)
def test_expire_hours_sets_ttl_and_zero_means_never(
    expire_hours: str, ttl_seconds: int | None
) -> None:
    assert load_settings({"EXPIRE_HOURS": expire_hours}).ttl_seconds == ttl_seconds


@pytest.mark.parametrize("level", ["debug", " Warning ", "ERROR", "CRITICAL"])
def test_log_level_is_case_insensitive_and_normalised(level: str) -> None:
    assert load_settings({"LOG_LEVEL": level}).log_level == level.strip().upper()


# --- Empty values count as unset --------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "attribute", "expected"),
    [
        ("MODEL", "", "model", DEFAULT_MODEL),
        ("MODEL", "   ", "model", DEFAULT_MODEL),
        ("GPT_API_KEY", "  ", "upstream_mode", "dev"),
        ("GPT_API_KEY", "", "gpt_api_key", None),
        ("OPENAI_BASE_URL", " ", "openai_base_url", None),
        ("MAX_TOKENS", "", "max_tokens", 500),
        ("EXPIRE_HOURS", " ", "expire_hours", 6.0),
        ("LOG_LEVEL", "", "log_level", "INFO"),
        ("SYSTEM_PROMPT", "  ", "system_prompt", None),
        ("STORE_PATH", "", "store_path", "./chats.sqlite3"),
        ("REDIS_URL", "", "redis", None),
        ("REDIS_HOST", " ", "redis", None),
    ],
)
def test_empty_or_blank_value_counts_as_unset(
    name: str, value: str, attribute: str, expected: object
) -> None:
    assert getattr(load_settings({name: value}), attribute) == expected


def test_blank_key_on_cloud_functions_is_still_missing() -> None:
    with pytest.raises(ConfigError, match="GPT_API_KEY"):
        load_settings({"GPT_API_KEY": "  ", "K_SERVICE": "chatproxy"})


# --- Upstream mode ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "mode", "base_url"),
    [
        ({"GPT_API_KEY": "sk-x"}, "openai", None),
        ({"OPENAI_BASE_URL": "http://localhost:11434/v1/"}, "custom", "http://localhost:11434/v1"),
        (
            {"GPT_API_KEY": "sk-x", "OPENAI_BASE_URL": "https://api.example.com/v1"},
            "custom",
            "https://api.example.com/v1",
        ),
        (
            {"GPT_API_KEY": "sk-x", "OPENAI_BASE_URL": "https://api.example.com/v1//"},
            "custom",
            "https://api.example.com/v1",
        ),
        ({}, "dev", None),
    ],
)
def test_upstream_mode_follows_key_and_base_url(
    environ: dict[str, str], mode: str, base_url: str | None
) -> None:
    settings = load_settings(environ)
    assert settings.upstream_mode == mode
    assert settings.openai_base_url == base_url


def test_key_is_kept_when_base_url_is_set() -> None:
    settings = load_settings({"GPT_API_KEY": "sk-x", "OPENAI_BASE_URL": "http://h/v1"})
    assert settings.gpt_api_key == "sk-x"


def test_cloud_functions_without_key_or_base_url_is_refused() -> None:
    with pytest.raises(ConfigError, match="GPT_API_KEY"):
        load_settings({"K_SERVICE": "chatproxy"})


@pytest.mark.parametrize(
    ("environ", "mode"),
    [
        ({"K_SERVICE": "chatproxy", "GPT_API_KEY": "sk-x"}, "openai"),
        ({"K_SERVICE": "chatproxy", "OPENAI_BASE_URL": "https://llm.internal/v1"}, "custom"),
    ],
)
def test_cloud_functions_with_key_or_base_url_is_accepted(
    environ: dict[str, str], mode: str
) -> None:
    assert load_settings(environ).upstream_mode == mode


# --- Validation: each bad value names its variable and the value ------------------------------


@pytest.mark.parametrize(
    ("environ", "name", "fragment"),
    [
        ({"MAX_TOKENS": "abc"}, "MAX_TOKENS", "abc"),
        ({"MAX_TOKENS": "0"}, "MAX_TOKENS", "0"),
        ({"MAX_TOKENS": "1.5"}, "MAX_TOKENS", "1.5"),
        ({"UPSTREAM_TIMEOUT": "-1"}, "UPSTREAM_TIMEOUT", "-1"),
        ({"UPSTREAM_TIMEOUT": "0"}, "UPSTREAM_TIMEOUT", "0"),
        ({"UPSTREAM_TIMEOUT": "nan"}, "UPSTREAM_TIMEOUT", "nan"),
        ({"UPSTREAM_TIMEOUT": "soon"}, "UPSTREAM_TIMEOUT", "soon"),
        ({"UPSTREAM_MAX_RETRIES": "11"}, "UPSTREAM_MAX_RETRIES", "11"),
        ({"UPSTREAM_MAX_RETRIES": "-1"}, "UPSTREAM_MAX_RETRIES", "-1"),
        ({"REDIS_HOST": "h", "REDIS_PORT": "abc"}, "REDIS_PORT", "abc"),
        ({"REDIS_HOST": "h", "REDIS_PORT": "70000"}, "REDIS_PORT", "70000"),
        ({"REDIS_HOST": "h", "REDIS_PORT": "0"}, "REDIS_PORT", "0"),
        ({"REDIS_HOST": "h", "REDIS_TIMEOUT": "0"}, "REDIS_TIMEOUT", "0"),
        ({"REDIS_HOST": "h", "REDIS_TIMEOUT": "inf"}, "REDIS_TIMEOUT", "inf"),
        ({"REDIS_HOST": "h", "REDIS_MAX_CONNECTIONS": "0"}, "REDIS_MAX_CONNECTIONS", "0"),
        ({"SSL_CERT_FILE": "/nonexistent/ca.pem"}, "SSL_CERT_FILE", "/nonexistent/ca.pem"),
        ({"REDIS_HOST": "h", "REDIS_MAX_CONNECTIONS": "many"}, "REDIS_MAX_CONNECTIONS", "many"),
        ({"MESSAGES_LENGTH": "-1"}, "MESSAGES_LENGTH", "-1"),
        ({"MESSAGES_LENGTH": "10001"}, "MESSAGES_LENGTH", "10001"),
        ({"EXPIRE_HOURS": "-2"}, "EXPIRE_HOURS", "-2"),
        ({"EXPIRE_HOURS": "inf"}, "EXPIRE_HOURS", "inf"),
        ({"EXPIRE_HOURS": "1e309"}, "EXPIRE_HOURS", "1e309"),
        # Longer than Redis can hold (its expiries are milliseconds in 64 bits): every request
        # would fail with a 500 instead.
        ({"EXPIRE_HOURS": "3e12"}, "EXPIRE_HOURS", "3e+12"),
        ({"TURN_LEASE_SECONDS": "1e300"}, "TURN_LEASE_SECONDS", "1e+300"),
        ({"REQUEST_TIMEOUT": "1e300"}, "REQUEST_TIMEOUT", "1e+300"),
        # More than SQLite's 64-bit integers hold.
        ({"MAX_CHAT_MESSAGES": "1" + "0" * 19}, "MAX_CHAT_MESSAGES", "1" + "0" * 19),
        ({"MAX_BODY_BYTES": "10"}, "MAX_BODY_BYTES", "10"),
        ({"MAX_BODY_BYTES": "1MB"}, "MAX_BODY_BYTES", "1MB"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL", "LOUD"),
        ({"REDIS_HOST": "h", "REDIS_SSL": "maybe"}, "REDIS_SSL", "maybe"),
        ({"OPENAI_BASE_URL": "ftp://x"}, "OPENAI_BASE_URL", "ftp://x"),
        ({"OPENAI_BASE_URL": "notaurl"}, "OPENAI_BASE_URL", "notaurl"),
        ({"OPENAI_BASE_URL": "https://"}, "OPENAI_BASE_URL", "https://"),
        ({"REDIS_URL": "http://x"}, "REDIS_URL", "http://x"),
        ({"REDIS_URL": "redis://"}, "REDIS_URL", "redis://"),
        # config.py reports a bad port without echoing the URL (which may hold the password).
        ({"REDIS_URL": "redis://host:notaport"}, "REDIS_URL", "invalid port"),
        ({"REDIS_URL": "redis://host:70000"}, "REDIS_URL", "invalid port"),
        ({"RATE_LIMIT": "lots"}, "RATE_LIMIT", "lots"),
        ({"RATE_LIMIT": "60/fortnight"}, "RATE_LIMIT", "60/fortnight"),
        ({"RATE_LIMIT_PER_ADDRESS": "many"}, "RATE_LIMIT_PER_ADDRESS", "many"),
        ({"RATE_LIMIT_PER_ADDRESS": "600/minute;x"}, "RATE_LIMIT_PER_ADDRESS", "600/minute;x"),
        # limits reads these, but nothing would pass 0/minute, and it reads "/0 minutes" as 1
        ({"RATE_LIMIT": "0/minute"}, "RATE_LIMIT", "0/minute"),
        ({"RATE_LIMIT_PER_ADDRESS": "5/second;0/hour"}, "RATE_LIMIT_PER_ADDRESS", "0/hour"),
        ({"RATE_LIMIT": "60/0 minutes"}, "RATE_LIMIT", "60/0 minutes"),
        ({"RATE_LIMIT": "99999999999999999999999/second"}, "RATE_LIMIT", "999999/second"),
        ({"RATE_LIMIT_PER_ADDRESS": "1 per 99999 years"}, "RATE_LIMIT_PER_ADDRESS", "99999"),
    ],
)
def test_bad_value_is_refused_naming_variable_and_value(
    environ: dict[str, str], name: str, fragment: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ)
    message = str(caught.value)
    assert name in message
    assert fragment in message


@pytest.mark.parametrize(
    ("environ", "name"),
    [
        ({"REDIS_URL": "redis://[::1"}, "REDIS_URL"),
        ({"REDIS_URL": "redis://:pw@[nothost]:6379"}, "REDIS_URL"),
        ({"OPENAI_BASE_URL": "http://[oops"}, "OPENAI_BASE_URL"),
    ],
)
def test_malformed_bracketed_host_is_a_config_error(environ: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings(environ)


# --- Redis --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "url", "ssl"),
    [
        ({"REDIS_HOST": "localhost"}, "redis://localhost:6379/0", False),
        ({"REDIS_HOST": "127.0.0.1", "REDIS_PORT": "6380"}, "redis://127.0.0.1:6380/0", False),
        ({"REDIS_HOST": "::1"}, "redis://[::1]:6379/0", False),
        ({"REDIS_HOST": "cache.example.com"}, "rediss://cache.example.com:6379/0", True),
        ({"REDIS_HOST": "2001:db8::1"}, "rediss://[2001:db8::1]:6379/0", True),
        (
            {"REDIS_HOST": "remote.example", "REDIS_SSL": "0"},
            "redis://remote.example:6379/0",
            False,
        ),
        (
            {"REDIS_HOST": "remote.example", "REDIS_SSL": "off"},
            "redis://remote.example:6379/0",
            False,
        ),
        ({"REDIS_HOST": "localhost", "REDIS_SSL": "1"}, "rediss://localhost:6379/0", True),
        ({"REDIS_HOST": "localhost", "REDIS_SSL": "yes"}, "rediss://localhost:6379/0", True),
        (
            {"REDIS_HOST": "h.example", "REDIS_PORT": "7000", "REDIS_PASSWORD": "pw"},
            "rediss://:pw@h.example:7000/0",
            True,
        ),
    ],
)
def test_redis_host_port_password_build_url_with_tls_for_remote_hosts(
    environ: dict[str, str], url: str, ssl: bool
) -> None:
    settings = load_settings(environ)
    assert settings.store_kind == "redis"
    assert settings.redis is not None
    assert settings.redis.url == url
    assert settings.redis.ssl is ssl


def test_redis_timeout_defaults_and_can_be_set() -> None:
    default = load_settings({"REDIS_HOST": "localhost"}).redis
    custom = load_settings({"REDIS_HOST": "localhost", "REDIS_TIMEOUT": "0.5"}).redis
    assert default is not None
    assert custom is not None
    assert default.socket_timeout == 1.0
    assert custom.socket_timeout == 0.5


def test_redis_max_connections_defaults_and_can_be_set() -> None:
    default = load_settings({"REDIS_HOST": "localhost"}).redis
    custom = load_settings({"REDIS_HOST": "localhost", "REDIS_MAX_CONNECTIONS": "8"}).redis
    assert default is not None
    assert custom is not None
    assert (default.max_connections, custom.max_connections) == (100, 8)


@pytest.mark.parametrize("password", ["p@ss:w/rd#", "a b%c?d&e=f", "plain"])
def test_redis_password_with_special_characters_round_trips(password: str) -> None:
    settings = load_settings({"REDIS_HOST": "cache.example.com", "REDIS_PASSWORD": password})
    assert settings.redis is not None
    url = settings.redis.url

    parsed = urlsplit(url)
    assert parsed.hostname == "cache.example.com"
    assert parsed.port == 6379
    assert parsed.password is not None
    assert unquote(parsed.password) == password

    kwargs = parse_url(url)
    assert kwargs["password"] == password
    assert kwargs["host"] == "cache.example.com"
    assert kwargs["port"] == 6379


def test_redis_ipv6_host_is_bracketed_and_parsed_back() -> None:
    settings = load_settings({"REDIS_HOST": "2001:db8::1", "REDIS_PASSWORD": "pw"})
    assert settings.redis is not None
    kwargs = parse_url(settings.redis.url)
    assert kwargs["host"] == "2001:db8::1"
    assert kwargs["port"] == 6379
    assert kwargs["password"] == "pw"


@pytest.mark.parametrize(
    ("environ", "url", "ssl"),
    [
        (
            {"REDIS_URL": "rediss://default:pw@example.upstash.io:6379"},
            "rediss://default:pw@example.upstash.io:6379",
            True,
        ),
        (
            {"REDIS_URL": "redis://default:pw@example.upstash.io:6379"},
            "rediss://default:pw@example.upstash.io:6379",
            True,
        ),
        (
            {"REDIS_URL": "redis://default:pw@example.upstash.io:6379", "REDIS_SSL": "0"},
            "redis://default:pw@example.upstash.io:6379",
            False,
        ),
        ({"REDIS_URL": "redis://localhost:6379/2"}, "redis://localhost:6379/2", False),
        ({"REDIS_URL": "redis://127.0.0.1:6379"}, "redis://127.0.0.1:6379", False),
        ({"REDIS_URL": "redis://[::1]:6379"}, "redis://[::1]:6379", False),
        (
            {"REDIS_URL": "redis://localhost:6379", "REDIS_SSL": "1"},
            "rediss://localhost:6379",
            True,
        ),
        (
            {"REDIS_URL": "rediss://localhost:6379", "REDIS_SSL": "1"},
            "rediss://localhost:6379",
            True,
        ),
    ],
)
def test_redis_url_keeps_tls_and_upgrades_remote_plain_urls(
    environ: dict[str, str], url: str, ssl: bool
) -> None:
    settings = load_settings(environ)
    assert settings.redis is not None
    assert settings.redis.url == url
    assert settings.redis.ssl is ssl


def test_rediss_url_with_ssl_off_is_a_contradiction() -> None:
    with pytest.raises(ConfigError, match="REDIS_SSL"):
        load_settings({"REDIS_URL": "rediss://h.example:6379", "REDIS_SSL": "0"})


def test_redis_url_and_redis_host_together_are_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"REDIS_URL": "redis://localhost:6379", "REDIS_HOST": "localhost"})
    assert "REDIS_URL" in str(caught.value)
    assert "REDIS_HOST" in str(caught.value)


@pytest.mark.parametrize(
    ("environ", "described"),
    [
        (
            {"REDIS_URL": "rediss://default:s3cret@example.upstash.io:6379"},
            "rediss://example.upstash.io:6379",
        ),
        ({"REDIS_URL": "redis://:s3cret@localhost:6379/3"}, "redis://localhost:6379/3"),
        (
            {"REDIS_HOST": "cache.example.com", "REDIS_PASSWORD": "s3cret"},
            "rediss://cache.example.com:6379/0",
        ),
        (
            {"REDIS_HOST": "localhost", "REDIS_PORT": "6380", "REDIS_PASSWORD": "s3cret"},
            "redis://localhost:6380/0",
        ),
    ],
)
def test_redis_describe_never_contains_the_password(
    environ: dict[str, str], described: str
) -> None:
    settings = load_settings(environ)
    assert settings.redis is not None
    assert "s3cret" in settings.redis.url
    assert settings.redis.describe() == described
    assert "s3cret" not in settings.redis.describe()


@pytest.mark.parametrize(
    "redis_url",
    [
        "http://user:s3cret@host",
        "https://:s3cret@host:6379",
        "redis://:s3cret@",
        "redis://default:s3cret@host:notaport",
    ],
)
def test_bad_redis_url_message_never_contains_the_password(redis_url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"REDIS_URL": redis_url})
    assert "REDIS_URL" in str(caught.value)
    assert "s3cret" not in str(caught.value)


@pytest.mark.parametrize(
    "redis_url",
    [
        "default:s3cret@example.upstash.io:6379",
        ":s3cret@example.upstash.io:6379",
        "rediss//default:s3cret@example.upstash.io:6379",
    ],
)
def test_schemeless_redis_url_message_never_contains_the_password(redis_url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"REDIS_URL": redis_url})
    assert "s3cret" not in str(caught.value)


@pytest.mark.parametrize("host", ["example.upstash.io:6379", "[::1]"])
def test_redis_host_with_colon_is_usable_or_refused(host: str) -> None:
    try:
        settings = load_settings({"REDIS_HOST": host})
    except ConfigError as error:
        refusal = str(error)
    else:
        refusal = None
        assert settings.redis is not None
        settings.redis.describe()
        assert parse_url(settings.redis.url)["host"]
    if refusal is not None:
        assert "REDIS_HOST" in refusal


def test_redis_describe_keeps_ipv6_brackets() -> None:
    settings = load_settings({"REDIS_HOST": "::1", "REDIS_PASSWORD": "pw"})
    assert settings.redis is not None
    assert settings.redis.describe() == "redis://[::1]:6379/0"


# --- .env.example documents every variable ----------------------------------------------------

# The first string literal passed to env.text( / env.integer( / env.number( / env.parse(.
_READ_PATTERN = re.compile(
    r"""env\.(?:text|integer|number|parse)\(\s*["']([A-Za-z_][A-Za-z0-9_]*)["']"""
)


def _names_read_by_config() -> set[str]:
    return {
        name
        for source in CONFIG_SOURCES
        for name in _READ_PATTERN.findall(source.read_text(encoding="utf-8"))
    }


def _names_documented() -> set[str]:
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    return set(re.findall(r"^#?([A-Z_][A-Z0-9_]*)=", text, flags=re.MULTILINE))


def test_config_source_scan_finds_the_variables() -> None:
    names = _names_read_by_config()
    assert len(names) >= 15, names
    assert {"GPT_API_KEY", "REDIS_URL", "MESSAGES_LENGTH", "LOG_LEVEL"} <= names


def test_env_example_documents_every_variable_config_reads() -> None:
    documented = _names_documented()
    missing = sorted(_names_read_by_config() - PLATFORM_VARS - documented)
    assert missing == [], f"not documented in .env.example as NAME= or #NAME=: {missing}"


# Documented in .env.example but read by functions-framework's gunicorn, not by config.py.
SERVER_VARS = {"WORKERS"}


def test_env_example_documents_no_variable_config_ignores() -> None:
    unknown = sorted(_names_documented() - _names_read_by_config() - SERVER_VARS)
    assert unknown == [], f".env.example documents variables config.py never reads: {unknown}"


# --- Property: MESSAGES_LENGTH ----------------------------------------------------------------


def _is_int_literal(text: str) -> bool:
    """Whether a setting of this text is a whole number: surrounding whitespace is dropped first
    (`int` itself keeps some that `str.strip` drops: `int("\x1c5")` fails)."""
    try:
        int(text.strip())
    except ValueError:
        return False
    return True


@given(st.integers(min_value=0, max_value=10_000))
def test_messages_length_in_range_round_trips(value: int) -> None:
    assert load_settings({"MESSAGES_LENGTH": str(value)}).messages_length == value
    assert load_settings({"MESSAGES_LENGTH": f"  {value} "}).messages_length == value


@given(st.integers().filter(lambda n: not 0 <= n <= 10_000))
def test_messages_length_out_of_range_is_refused(value: int) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"MESSAGES_LENGTH": str(value)})
    assert "MESSAGES_LENGTH" in str(caught.value)
    assert str(value) in str(caught.value)


@given(st.text().filter(lambda s: s.strip() != "" and not _is_int_literal(s)))
def test_messages_length_non_integer_text_is_refused(raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"MESSAGES_LENGTH": raw})
    assert "MESSAGES_LENGTH" in str(caught.value)


@given(
    st.text(alphabet=st.characters(codec="ascii", exclude_categories=("Nd",))).filter(
        lambda s: not s.isspace() and s != ""
    )
)
def test_messages_length_digit_followed_by_any_non_digit_text_is_refused(suffix: str) -> None:
    # An oracle independent of int(): "1" plus visible ASCII with no digit is never a number.
    with pytest.raises(ConfigError, match="MESSAGES_LENGTH"):
        load_settings({"MESSAGES_LENGTH": f"1{suffix}"})


# --- Compaction --------------------------------------------------------------------------------


def test_a_summary_s_size_defaults_to_a_quarter_of_a_small_context() -> None:
    assert load_settings({}).compaction.summary_tokens == 600
    assert (
        load_settings({"CONTEXT_TOKENS": "200", "MAX_TOKENS": "50"}).compaction.summary_tokens == 50
    )


def test_the_smallest_context_is_refused_by_its_own_name_not_by_the_summary_s() -> None:
    # COMPACTION_SUMMARY_TOKENS unset: its default (1, at least) cannot be a third of 2
    with pytest.raises(ConfigError, match=r"^CONTEXT_TOKENS must be at least 3, got 2"):
        load_settings({"CONTEXT_TOKENS": "2", "MAX_TOKENS": "1"})
    assert load_settings({"CONTEXT_TOKENS": "3", "MAX_TOKENS": "1"}).compaction.summary_tokens == 1


def test_compaction_is_off_by_default_and_summarizes_with_the_chat_model() -> None:
    settings = load_settings({"MODEL": "m-chat", "COMPACTION": " Summary "})
    assert load_settings({}).compaction.mode == "off"
    assert (settings.compaction.mode, settings.compaction.model) == ("summary", "m-chat")
    assert load_settings({"COMPACTION_MODEL": "m-small"}).compaction.model == "m-small"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"COMPACTION": "sometimes"}, "COMPACTION must be off or summary"),
        ({"COMPACTION_THRESHOLD": "0"}, "COMPACTION_THRESHOLD must be at least 1"),
        ({"COMPACTION_SUMMARY_TOKENS": "0"}, "COMPACTION_SUMMARY_TOKENS must be at least 1"),
        (
            {"CONTEXT_TOKENS": "1000", "COMPACTION_SUMMARY_TOKENS": "334"},
            "at most a third of CONTEXT_TOKENS",
        ),
    ],
)
def test_bad_compaction_settings_are_refused(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(environ)
