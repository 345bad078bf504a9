"""Tests for deploy.sh, run against a stand-in ``gcloud`` that records what it receives.

The stand-in writes its argv (one argument per line) to ``$FAKE_GCLOUD_ARGV`` and
copies the ``--env-vars-file`` it was given to ``$FAKE_GCLOUD_ENV_COPY`` (mode kept),
because deploy.sh deletes the original as soon as it exits.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DEPLOY = REPO_ROOT / "deploy.sh"

FAKE_GCLOUD = """#!/bin/sh
# Stand-in gcloud: record argv, one per line, and keep a copy of --env-vars-file.
: > "$FAKE_GCLOUD_ARGV"
for arg in "$@"; do
    printf '%s\\n' "$arg" >> "$FAKE_GCLOUD_ARGV"
    case $arg in
        --env-vars-file=*) cp -p "${arg#--env-vars-file=}" "$FAKE_GCLOUD_ENV_COPY" ;;
    esac
done
exit "${FAKE_GCLOUD_EXIT:-0}"
"""

# Variables a developer's shell may set that deploy.sh reads as defaults.
HOST_VARS = (
    "GCLOUD_PROJECT",
    "GOOGLE_CLOUD_PROJECT",
    "FUNCTION_REGION",
    "FUNCTION_NAME",
    "PYTHON",
    "TMPDIR",
)

# Every secret value used below contains this marker, so any leak shows up.
SECRET_MARKER = "SECRET"
API_KEY = "sk-test-SECRET123"
REDIS_PASSWORD = "hunter2-SECRET"
PROXY_KEY = "web-key-SECRET-0123456789abcdef"

BASIC_ENV = f"""\
GPT_API_KEY={API_KEY}
REDIS_HOST=redis.internal
REDIS_PASSWORD={REDIS_PASSWORD}
"""

# Values that are easy to get wrong when turned into YAML.
TRICKY_ENV = (
    "# a comment line\n"
    f"GPT_API_KEY={API_KEY}\n"
    f"REDIS_URL=redis://:{REDIS_PASSWORD}@redis.internal:6379/0\n"
    'QUOTES="she said \\"SECRET-quoted\\" and \'left\'"\n'
    "SPACES='  SECRET spaced  value  '\n"
    'HASH="SECRET#not-a-comment # still the value"\n'
    "UNICODE=SECRET-héllo wörld ✓ 😀\n"
    'MULTILINE="SECRET line one\\nline two"\n'
    "BACKSLASH='SECRET\\path\\n'\n"
    "LINE_SEPARATOR=SECRET a\u2028b\n"
    "EMPTY=\n"
    "PORT=9999\n"
    "STORE_PATH=/data/chats.sqlite3\n"
    "K_SERVICE=some-service\n"
    "FUNCTION_TARGET=other\n"
)
TRICKY_EXPECTED = {
    "GPT_API_KEY": API_KEY,
    "REDIS_URL": f"redis://:{REDIS_PASSWORD}@redis.internal:6379/0",
    "QUOTES": "she said \"SECRET-quoted\" and 'left'",
    "SPACES": "  SECRET spaced  value  ",
    "HASH": "SECRET#not-a-comment # still the value",
    "UNICODE": "SECRET-héllo wörld ✓ 😀",
    "MULTILINE": "SECRET line one\nline two",
    "BACKSLASH": "SECRET\\path\\n",
    "LINE_SEPARATOR": "SECRET a\u2028b",
}
SECRET_VALUES = (API_KEY, REDIS_PASSWORD, PROXY_KEY, *TRICKY_EXPECTED.values())

# BASIC_ENV plus the proxy's own client API keys.
KEYS_ENV = BASIC_ENV + f"PROXY_API_KEYS=web={PROXY_KEY}\n"

# Variables deploy.sh adds to the env-vars file unless the env file sets them.
ADDED_DEFAULTS = {
    "WORKERS": "1",
    "REQUEST_TIMEOUT": "55",
    "TRUSTED_PROXY_HOPS": "1",
}

DEFAULT_FLAGS: dict[str, str | None] = {
    "--gen2": None,
    "--runtime": "python312",
    "--region": "europe-west1",
    "--source": str(REPO_ROOT),
    "--entry-point": "main",
    "--trigger-http": None,
    "--memory": "512Mi",
    "--timeout": "60s",
    "--max-instances": "10",
    "--min-instances": "0",
    "--concurrency": "250",
    "--cpu": "1",
    "--no-allow-unauthenticated": None,
}


def flag_list(flags: dict[str, str | None]) -> list[str]:
    return sorted(flag if value is None else f"{flag}={value}" for flag, value in flags.items())


def split_command(args: list[str]) -> tuple[str, list[str], str]:
    """Split ``functions deploy NAME --flags...`` into (name, sorted flags, env-vars file)."""
    assert args[:2] == ["functions", "deploy"]
    name, flags = args[2], args[3:]
    env_files = [flag for flag in flags if flag.startswith("--env-vars-file=")]
    assert len(env_files) == 1, flags
    rest = sorted(flag for flag in flags if flag not in env_files)
    return name, rest, env_files[0].split("=", 1)[1]


class Deployer:
    """Runs deploy.sh in a hermetic environment with the stand-in gcloud first on PATH."""

    def __init__(self, tmp_path: Path) -> None:
        self.cwd = tmp_path
        self.bin_dir = tmp_path / "bin"
        self.bin_dir.mkdir()
        gcloud = self.bin_dir / "gcloud"
        gcloud.write_text(FAKE_GCLOUD)
        gcloud.chmod(0o755)
        self.tmp_dir = tmp_path / "tmp"
        self.tmp_dir.mkdir()
        self.argv_file = tmp_path / "gcloud-argv.txt"
        self.env_copy = tmp_path / "received-env-vars.yaml"
        self.env = {key: value for key, value in os.environ.items() if key not in HOST_VARS}
        self.env.update(
            PATH=f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', os.defpath)}",
            TMPDIR=str(self.tmp_dir),
            PYTHON=sys.executable,
            FAKE_GCLOUD_ARGV=str(self.argv_file),
            FAKE_GCLOUD_ENV_COPY=str(self.env_copy),
        )

    def write_env_file(self, text: str, name: str = ".env") -> Path:
        path = self.cwd / name
        path.write_text(text, encoding="utf-8")
        return path

    def run(self, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(DEPLOY), *args],
            env={**self.env, **extra_env},
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        # Whatever happened, the temporary env-vars file must be gone.
        assert list(self.tmp_dir.iterdir()) == [], result.stderr
        return result

    def received_vars(self) -> dict[str, str]:
        """Parse the env-vars file gcloud received: one `KEY: "json string"` line per variable."""
        text = self.env_copy.read_text(encoding="utf-8")
        received = {}
        for line in text.split("\n")[:-1]:
            match = re.fullmatch(r'([A-Za-z_][A-Za-z0-9_]*): (".*")', line)
            assert match, f'not a KEY: "json" line: {line!r}'
            received[match[1]] = json.loads(match[2])
        return received

    @property
    def gcloud_called(self) -> bool:
        return self.argv_file.exists()

    @property
    def gcloud_args(self) -> list[str]:
        assert self.gcloud_called, "gcloud was not called"
        return self.argv_file.read_text(encoding="utf-8").splitlines()


@pytest.fixture
def deployer(tmp_path: Path) -> Deployer:
    return Deployer(tmp_path)


def assert_no_secrets(result: subprocess.CompletedProcess[str]) -> None:
    for stream in (result.stdout, result.stderr):
        assert SECRET_MARKER not in stream
        for value in SECRET_VALUES:
            assert value not in stream


def test_deploy_passes_expected_flags_to_gcloud(deployer: Deployer) -> None:
    deployer.write_env_file(BASIC_ENV)

    result = deployer.run()

    assert result.returncode == 0, result.stderr
    name, flags, env_vars_file = split_command(deployer.gcloud_args)
    assert name == "chat-proxy"
    assert flags == flag_list(DEFAULT_FLAGS)
    assert not any(flag.startswith("--project") for flag in flags)
    assert Path(env_vars_file).parent == deployer.tmp_dir
    assert_no_secrets(result)


def test_public_flag_allows_unauthenticated_invocations(deployer: Deployer) -> None:
    deployer.write_env_file(BASIC_ENV)

    result = deployer.run("--public")

    assert result.returncode == 0, result.stderr
    _, flags, _ = split_command(deployer.gcloud_args)
    assert "--allow-unauthenticated" in flags
    assert "--no-allow-unauthenticated" not in flags


@pytest.mark.parametrize(
    ("args", "extra_env", "expected_name", "changed_flags"),
    [
        pytest.param(["--region", "us-central1"], {}, "chat-proxy", {"--region": "us-central1"}),
        pytest.param(["--region=us-east4"], {}, "chat-proxy", {"--region": "us-east4"}),
        pytest.param(
            [], {"FUNCTION_REGION": "asia-east1"}, "chat-proxy", {"--region": "asia-east1"}
        ),
        pytest.param(
            ["--region", "us-central1"],
            {"FUNCTION_REGION": "asia-east1"},
            "chat-proxy",
            {"--region": "us-central1"},
            id="region-flag-beats-env",
        ),
        pytest.param(["--name", "my-chat"], {}, "my-chat", {}),
        pytest.param([], {"FUNCTION_NAME": "env-chat"}, "env-chat", {}),
        pytest.param(["--max-instances", "3"], {}, "chat-proxy", {"--max-instances": "3"}),
        pytest.param(["--project", "flag-proj"], {}, "chat-proxy", {"--project": "flag-proj"}),
        pytest.param([], {"GCLOUD_PROJECT": "env-proj"}, "chat-proxy", {"--project": "env-proj"}),
        pytest.param(
            [], {"GOOGLE_CLOUD_PROJECT": "google-proj"}, "chat-proxy", {"--project": "google-proj"}
        ),
        pytest.param(
            ["--project=flag-proj"],
            {"GCLOUD_PROJECT": "env-proj", "GOOGLE_CLOUD_PROJECT": "google-proj"},
            "chat-proxy",
            {"--project": "flag-proj"},
            id="project-flag-beats-env",
        ),
        pytest.param(
            [
                "--runtime=python311",
                "--memory",
                "1Gi",
                "--timeout",
                "120s",
                "--min-instances",
                "1",
                "--concurrency",
                "4",
            ],
            {},
            "chat-proxy",
            {
                "--runtime": "python311",
                "--memory": "1Gi",
                "--timeout": "120s",
                "--min-instances": "1",
                "--concurrency": "4",
            },
            id="sizing-flags",
        ),
    ],
)
def test_flags_and_env_vars_override_defaults(
    deployer: Deployer,
    args: list[str],
    extra_env: dict[str, str],
    expected_name: str,
    changed_flags: dict[str, str],
) -> None:
    deployer.write_env_file(BASIC_ENV)

    result = deployer.run(*args, **extra_env)

    assert result.returncode == 0, result.stderr
    name, flags, _ = split_command(deployer.gcloud_args)
    assert name == expected_name
    assert flags == flag_list({**DEFAULT_FLAGS, **changed_flags})


def test_env_vars_file_holds_exactly_the_env_file_values(deployer: Deployer) -> None:
    env_file = deployer.write_env_file(TRICKY_ENV, name="prod.env")

    result = deployer.run("--env-file", str(env_file))

    assert result.returncode == 0, result.stderr
    _, _, env_vars_file = split_command(deployer.gcloud_args)
    assert not Path(env_vars_file).exists(), "temporary env-vars file left behind"
    assert stat.S_IMODE(deployer.env_copy.stat().st_mode) == 0o600

    text = deployer.env_copy.read_text(encoding="utf-8")
    # One line per variable: no raw control characters or YAML line breaks in values.
    assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]", text)
    # YAML has no surrogate-pair escapes: characters beyond the BMP must be written raw.
    assert not re.search(r"\\u[dD][89a-fA-F]", text)
    assert text.endswith("\n")
    assert deployer.received_vars() == {**TRICKY_EXPECTED, **ADDED_DEFAULTS}
    assert_no_secrets(result)


@pytest.mark.parametrize(
    ("env_extra", "args", "cpu", "workers"),
    [
        ("", [], "1", "1"),
        ("", ["--cpu", "2"], "2", "2"),
        ("", ["--cpu=02"], "2", "2"),
        ("WORKERS=1\n", ["--cpu", "4", "--memory", "2Gi"], "4", "1"),
    ],
)
def test_server_workers_follow_cpu_unless_set(
    deployer: Deployer, env_extra: str, args: list[str], cpu: str, workers: str
) -> None:
    deployer.write_env_file(BASIC_ENV + env_extra)

    result = deployer.run(*args)

    assert result.returncode == 0, result.stderr
    assert f"--cpu={cpu}" in deployer.gcloud_args
    received = deployer.received_vars()
    assert received["WORKERS"] == workers
    assert "THREADS" not in received  # the ASGI server runs no request threads


def test_gcloud_failure_is_reported_and_temp_file_removed(deployer: Deployer) -> None:
    deployer.write_env_file(BASIC_ENV)

    result = deployer.run(FAKE_GCLOUD_EXIT="7")

    assert result.returncode == 7
    _, _, env_vars_file = split_command(deployer.gcloud_args)
    assert not Path(env_vars_file).exists()


@pytest.mark.parametrize(
    ("env_text", "named"),
    [
        pytest.param("REDIS_HOST=redis.internal\n", "GPT_API_KEY", id="no-api-key"),
        pytest.param("GPT_API_KEY=\nREDIS_HOST=redis.internal\n", "GPT_API_KEY", id="empty-key"),
        pytest.param(
            'GPT_API_KEY="   "\nREDIS_HOST=redis.internal\n', "GPT_API_KEY", id="blank-key"
        ),
        pytest.param(f"GPT_API_KEY={API_KEY}\n", "REDIS", id="no-redis"),
        pytest.param(
            f"GPT_API_KEY={API_KEY}\nREDIS_URL=\nREDIS_HOST=\n", "REDIS", id="empty-redis"
        ),
        pytest.param(
            f"GPT_API_KEY={API_KEY}\nSTORE_PATH=/data/chats.sqlite3\n", "REDIS", id="sqlite-only"
        ),
    ],
)
def test_deploy_refuses_incomplete_env_file(deployer: Deployer, env_text: str, named: str) -> None:
    deployer.write_env_file(env_text + f"REDIS_PASSWORD={REDIS_PASSWORD}\n")

    result = deployer.run()

    assert result.returncode == 1
    assert named in result.stderr
    assert not deployer.gcloud_called
    assert_no_secrets(result)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        pytest.param([], ".env", id="default-env-file"),
        pytest.param(["--env-file", "missing.env"], "missing.env", id="env-file-flag"),
    ],
)
def test_deploy_refuses_missing_env_file(deployer: Deployer, args: list[str], named: str) -> None:
    result = deployer.run(*args)

    assert result.returncode == 1
    assert named in result.stderr
    assert "not found" in result.stderr
    assert not deployer.gcloud_called


def test_dry_run_prints_command_without_calling_gcloud(deployer: Deployer) -> None:
    deployer.write_env_file(BASIC_ENV)

    result = deployer.run("--dry-run")

    assert result.returncode == 0, result.stderr
    assert not deployer.gcloud_called
    commands = [line for line in result.stdout.splitlines() if "gcloud functions deploy" in line]
    assert len(commands) == 1, result.stdout
    words = shlex.split(commands[0])
    assert words[0] == "gcloud"
    name, flags, env_vars_file = split_command(words[1:])
    assert name == "chat-proxy"
    assert flags == flag_list(DEFAULT_FLAGS)
    assert not Path(env_vars_file).exists()
    assert_no_secrets(result)


@pytest.mark.parametrize("args", [[], ["--dry-run"], ["--public", "--dry-run"]])
def test_secret_values_are_never_printed(deployer: Deployer, args: list[str]) -> None:
    deployer.write_env_file(TRICKY_ENV)

    result = deployer.run(*args)

    assert result.returncode == 0, result.stderr
    assert_no_secrets(result)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        pytest.param(["--bogus"], "--bogus", id="unknown-flag"),
        pytest.param(["--max-instances", "ten"], "--max-instances", id="max-word"),
        pytest.param(["--max-instances=1.5"], "--max-instances", id="max-decimal"),
        pytest.param(["--max-instances", "-1"], "--max-instances", id="max-negative"),
        pytest.param(["--max-instances", "0"], "--max-instances", id="max-zero"),
        pytest.param(["--max-instances"], "--max-instances", id="max-missing-value"),
        pytest.param(["--min-instances", "one"], "--min-instances", id="min-word"),
        pytest.param(["--concurrency", "0"], "--concurrency", id="concurrency-zero"),
        pytest.param(["--cpu", "0.5"], "--cpu", id="cpu-fraction"),
        pytest.param(["--cpu=0"], "--cpu", id="cpu-zero"),
        pytest.param(["--cpu", "9"], "--cpu", id="cpu-above-eight"),
        pytest.param(
            ["--min-instances", "5", "--max-instances", "2"], "--min-instances", id="min-above-max"
        ),
    ],
)
def test_bad_arguments_exit_with_usage_error(
    deployer: Deployer, args: list[str], named: str
) -> None:
    deployer.write_env_file(BASIC_ENV)

    result = deployer.run(*args)

    assert result.returncode == 2
    assert named in result.stderr
    assert not deployer.gcloud_called


def test_help_prints_usage(deployer: Deployer) -> None:
    result = deployer.run("--help")

    assert result.returncode == 0
    assert "Usage:" in result.stdout
    for option in ("--public", "--allow-unauthenticated", "--secret", "PROXY_API_KEYS"):
        assert option in result.stdout
    assert not deployer.gcloud_called


def test_missing_python_dotenv_is_reported(deployer: Deployer) -> None:
    deployer.write_env_file(BASIC_ENV)
    # The same interpreter without site-packages, hence without python-dotenv.
    no_site_python = deployer.bin_dir / "python-no-site"
    no_site_python.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -S "$@"\n')
    no_site_python.chmod(0o755)

    result = deployer.run(PYTHON=str(no_site_python))

    assert result.returncode == 1
    assert "python-dotenv" in result.stderr
    assert not deployer.gcloud_called


@pytest.mark.parametrize(("args", "returncode"), [([], 1), (["--dry-run"], 0)])
def test_gcloud_missing_from_path(deployer: Deployer, args: list[str], returncode: int) -> None:
    deployer.write_env_file(BASIC_ENV)
    # A PATH holding only the tools deploy.sh needs, and no gcloud.
    tools_dir = deployer.cwd / "tools"
    tools_dir.mkdir()
    for tool in ("bash", "dirname", "mktemp", "chmod", "rm"):
        found = shutil.which(tool)
        if found is None:
            pytest.skip(f"{tool} not available")
        (tools_dir / tool).symlink_to(found)

    result = deployer.run(*args, PATH=str(tools_dir))

    assert result.returncode == returncode, result.stderr
    if returncode:
        assert "gcloud" in result.stderr
    else:
        assert "gcloud functions deploy" in result.stdout
    assert not deployer.gcloud_called


@pytest.mark.parametrize(
    ("env_extra", "args", "timeout_flag", "request_timeout"),
    [
        ("", [], "--timeout=60s", "55"),
        ("", ["--timeout", "120"], "--timeout=120s", "115"),
        ("", ["--timeout", "2m"], "--timeout=120s", "115"),
        ("REQUEST_TIMEOUT=30\n", ["--timeout", "60s"], "--timeout=60s", "30"),
    ],
)
def test_request_timeout_stays_below_the_function_timeout(
    deployer: Deployer, env_extra: str, args: list[str], timeout_flag: str, request_timeout: str
) -> None:
    deployer.write_env_file(BASIC_ENV + env_extra)

    result = deployer.run(*args)

    assert result.returncode == 0, result.stderr
    assert timeout_flag in deployer.gcloud_args
    assert deployer.received_vars()["REQUEST_TIMEOUT"] == request_timeout


@pytest.mark.parametrize("request_timeout", ["60", "90", "abc", "-1"])
def test_deploy_refuses_a_request_timeout_the_function_would_cut_off(
    deployer: Deployer, request_timeout: str
) -> None:
    deployer.write_env_file(BASIC_ENV + f"REQUEST_TIMEOUT={request_timeout}\n")

    result = deployer.run("--timeout", "60s")

    assert result.returncode == 1
    assert "REQUEST_TIMEOUT" in result.stderr
    assert not deployer.gcloud_called


@pytest.mark.parametrize("timeout", ["soon", "5s", "1h", "60.5s"])
def test_deploy_refuses_a_malformed_function_timeout(deployer: Deployer, timeout: str) -> None:
    deployer.write_env_file(BASIC_ENV)

    result = deployer.run("--timeout", timeout)

    assert result.returncode == 2
    assert "--timeout" in result.stderr
    assert not deployer.gcloud_called


# --- Access: IAM by default, --allow-unauthenticated only with PROXY_API_KEYS, --public anyway ---

OPEN_FLAGS = {**DEFAULT_FLAGS, "--allow-unauthenticated": None}
del OPEN_FLAGS["--no-allow-unauthenticated"]


def test_default_stays_iam_protected_even_with_api_keys(deployer: Deployer) -> None:
    deployer.write_env_file(KEYS_ENV)

    result = deployer.run()

    assert result.returncode == 0, result.stderr
    _, flags, _ = split_command(deployer.gcloud_args)
    assert flags == flag_list(DEFAULT_FLAGS)
    assert deployer.received_vars()["PROXY_API_KEYS"] == f"web={PROXY_KEY}"
    assert "--allow-unauthenticated" in result.stderr  # the hint on how to open it
    assert_no_secrets(result)


@pytest.mark.parametrize(
    "env_extra",
    [
        pytest.param("", id="unset"),
        pytest.param("PROXY_API_KEYS=\n", id="empty"),
        pytest.param('PROXY_API_KEYS="   "\n', id="blank"),
    ],
)
@pytest.mark.parametrize("dry_run", [[], ["--dry-run"]], ids=["deploy", "dry-run"])
def test_allow_unauthenticated_is_refused_without_api_keys(
    deployer: Deployer, env_extra: str, dry_run: list[str]
) -> None:
    deployer.write_env_file(BASIC_ENV + env_extra)

    result = deployer.run("--allow-unauthenticated", *dry_run)

    assert result.returncode == 1
    assert "PROXY_API_KEYS" in result.stderr
    assert "--public" in result.stderr
    assert "gcloud functions deploy" not in result.stdout
    assert not deployer.gcloud_called
    assert_no_secrets(result)


def test_allow_unauthenticated_with_api_keys_opens_the_url(deployer: Deployer) -> None:
    deployer.write_env_file(KEYS_ENV)

    result = deployer.run("--allow-unauthenticated")

    assert result.returncode == 0, result.stderr
    _, flags, _ = split_command(deployer.gcloud_args)
    assert flags == flag_list(OPEN_FLAGS)
    assert deployer.received_vars()["PROXY_API_KEYS"] == f"web={PROXY_KEY}"
    assert "WARNING" not in result.stderr
    assert_no_secrets(result)


def test_allow_unauthenticated_accepts_api_keys_from_a_secret(deployer: Deployer) -> None:
    deployer.write_env_file(BASIC_ENV)

    result = deployer.run("--allow-unauthenticated", "--secret", "PROXY_API_KEYS=proxy-keys")

    assert result.returncode == 0, result.stderr
    _, flags, _ = split_command(deployer.gcloud_args)
    assert flags == flag_list({**OPEN_FLAGS, "--set-secrets": "PROXY_API_KEYS=proxy-keys:latest"})
    assert "PROXY_API_KEYS" not in deployer.received_vars()
    assert_no_secrets(result)


@pytest.mark.parametrize(
    "args",
    [
        ["--public"],
        ["--public", "--allow-unauthenticated"],
        ["--allow-unauthenticated", "--public"],
    ],
)
def test_public_without_api_keys_deploys_open_with_a_warning(
    deployer: Deployer, args: list[str]
) -> None:
    deployer.write_env_file(BASIC_ENV)

    result = deployer.run(*args)

    assert result.returncode == 0, result.stderr
    assert deployer.gcloud_args.count("--allow-unauthenticated") == 1
    _, flags, _ = split_command(deployer.gcloud_args)
    assert flags == flag_list(OPEN_FLAGS)
    assert "WARNING" in result.stderr
    assert "PROXY_API_KEYS" in result.stderr
    assert_no_secrets(result)


def test_public_with_api_keys_does_not_warn(deployer: Deployer) -> None:
    deployer.write_env_file(KEYS_ENV)

    result = deployer.run("--public")

    assert result.returncode == 0, result.stderr
    _, flags, _ = split_command(deployer.gcloud_args)
    assert flags == flag_list(OPEN_FLAGS)
    assert "WARNING" not in result.stderr


def test_admin_keys_without_api_keys_are_refused(deployer: Deployer) -> None:
    deployer.write_env_file(BASIC_ENV + "ADMIN_KEYS=ops\n")

    result = deployer.run()

    assert result.returncode == 1
    assert "ADMIN_KEYS" in result.stderr
    assert not deployer.gcloud_called


# --- Secret Manager: --secret NAME=SECRET[:VERSION] -> one --set-secrets flag ---


@pytest.mark.parametrize(
    ("args", "set_secrets"),
    [
        pytest.param(
            [
                "--secret",
                "GPT_API_KEY=openai-key",
                "--secret",
                "REDIS_PASSWORD=redis-pw:3",
                "--secret",
                "PROXY_API_KEYS=proxy-keys",
            ],
            "GPT_API_KEY=openai-key:latest,REDIS_PASSWORD=redis-pw:3,PROXY_API_KEYS=proxy-keys:latest",
            id="table",
        ),
        pytest.param(
            ["--secret=GPT_API_KEY=openai_key:latest"],
            "GPT_API_KEY=openai_key:latest",
            id="equals-form",
        ),
        pytest.param(
            ["--secret", "GPT_API_KEY=projects/my-project/secrets/openai-key:12"],
            "GPT_API_KEY=projects/my-project/secrets/openai-key:12",
            id="project-path",
        ),
        pytest.param(
            ["--secret", "GPT_API_KEY=projects/123456789012/secrets/openai-key"],
            "GPT_API_KEY=projects/123456789012/secrets/openai-key:latest",
            id="project-number-path",
        ),
    ],
)
def test_secrets_become_one_set_secrets_flag(
    deployer: Deployer, args: list[str], set_secrets: str
) -> None:
    deployer.write_env_file(BASIC_ENV)

    result = deployer.run(*args)

    assert result.returncode == 0, result.stderr
    _, flags, _ = split_command(deployer.gcloud_args)
    assert flags == flag_list({**DEFAULT_FLAGS, "--set-secrets": set_secrets})
    assert_no_secrets(result)


def test_no_secrets_no_set_secrets_flag(deployer: Deployer) -> None:
    deployer.write_env_file(BASIC_ENV)

    result = deployer.run()

    assert result.returncode == 0, result.stderr
    assert not any(arg.startswith("--set-secrets") for arg in deployer.gcloud_args)


def test_secret_variables_are_left_out_of_the_env_vars_file(deployer: Deployer) -> None:
    deployer.write_env_file(KEYS_ENV)

    result = deployer.run(
        "--secret",
        "GPT_API_KEY=openai-key",
        "--secret",
        "REDIS_PASSWORD=redis-pw:3",
        "--secret",
        "PROXY_API_KEYS=proxy-keys",
    )

    assert result.returncode == 0, result.stderr
    assert deployer.received_vars() == {"REDIS_HOST": "redis.internal", **ADDED_DEFAULTS}
    # The note names what was left out, never its value.
    notes = [line for line in result.stderr.splitlines() if "Secret Manager" in line]
    assert len(notes) == 1, result.stderr
    for name in ("GPT_API_KEY", "REDIS_PASSWORD", "PROXY_API_KEYS"):
        assert name in notes[0]
    assert_no_secrets(result)


def test_api_key_given_only_as_a_secret_satisfies_the_check(deployer: Deployer) -> None:
    deployer.write_env_file("REDIS_HOST=redis.internal\n")

    result = deployer.run("--secret", "GPT_API_KEY=openai-key")

    assert result.returncode == 0, result.stderr
    assert "--set-secrets=GPT_API_KEY=openai-key:latest" in deployer.gcloud_args
    assert deployer.received_vars() == {"REDIS_HOST": "redis.internal", **ADDED_DEFAULTS}


def test_redis_url_given_only_as_a_secret_satisfies_the_check(deployer: Deployer) -> None:
    deployer.write_env_file(f"GPT_API_KEY={API_KEY}\n")

    result = deployer.run("--secret", "REDIS_URL=redis-url:2")

    assert result.returncode == 0, result.stderr
    assert "--set-secrets=REDIS_URL=redis-url:2" in deployer.gcloud_args
    assert deployer.received_vars() == {"GPT_API_KEY": API_KEY, **ADDED_DEFAULTS}
    assert_no_secrets(result)


def test_secret_variables_get_no_defaults_and_no_file_checks(deployer: Deployer) -> None:
    # REQUEST_TIMEOUT=90 would be refused with a 60s timeout, but the secret replaces it.
    deployer.write_env_file(BASIC_ENV + "REQUEST_TIMEOUT=90\n")

    result = deployer.run(
        "--secret",
        "REQUEST_TIMEOUT=request-timeout",
        "--secret",
        "WORKERS=workers",
        "--secret",
        "TRUSTED_PROXY_HOPS=hops",
    )

    assert result.returncode == 0, result.stderr
    received = deployer.received_vars()
    for name in ("REQUEST_TIMEOUT", "WORKERS", "TRUSTED_PROXY_HOPS"):
        assert name not in received


def test_dry_run_prints_the_set_secrets_flag(deployer: Deployer) -> None:
    deployer.write_env_file(BASIC_ENV)

    result = deployer.run("--dry-run", "--secret", "GPT_API_KEY=openai-key", "--secret", "A=b:7")

    assert result.returncode == 0, result.stderr
    assert not deployer.gcloud_called
    (command,) = [line for line in result.stdout.splitlines() if "gcloud functions deploy" in line]
    assert "--set-secrets=GPT_API_KEY=openai-key:latest,A=b:7" in shlex.split(command)


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["--secret", "GPT_API_KEY"], id="no-equals"),
        pytest.param(["--secret", f"{API_KEY}"], id="pasted-value"),
        pytest.param(["--secret", "=openai-key"], id="empty-name"),
        pytest.param(["--secret", "1KEY=openai-key"], id="name-starts-with-digit"),
        pytest.param(["--secret", "GPT-API-KEY=openai-key"], id="name-with-dash"),
        pytest.param(["--secret", "PORT=port"], id="reserved-name"),
        pytest.param(["--secret", "GPT_API_KEY="], id="empty-secret"),
        pytest.param(["--secret", "GPT_API_KEY=:3"], id="empty-secret-with-version"),
        pytest.param(["--secret", "GPT_API_KEY=openai.key"], id="bad-secret-id"),
        pytest.param(["--secret", "GPT_API_KEY=a/b"], id="bad-secret-path"),
        pytest.param(["--secret", "GPT_API_KEY=projects/p/secrets/x"], id="bad-project"),
        pytest.param(["--secret", f"GPT_API_KEY={'k' * 256}"], id="secret-id-too-long"),
        pytest.param(["--secret", "GPT_API_KEY=openai-key:"], id="empty-version"),
        pytest.param(["--secret", "GPT_API_KEY=openai-key:v2"], id="word-version"),
        pytest.param(["--secret", "GPT_API_KEY=openai-key:0"], id="version-zero"),
        pytest.param(["--secret", "GPT_API_KEY=openai-key:-1"], id="negative-version"),
        pytest.param(["--secret", f"GPT_API_KEY={API_KEY}:x"], id="pasted-value-bad-version"),
        pytest.param(
            ["--secret", "GPT_API_KEY=a", "--secret", "GPT_API_KEY=b:2"], id="duplicate-name"
        ),
        pytest.param(["--secret"], id="missing-value"),
    ],
)
def test_malformed_secrets_exit_with_usage_error(deployer: Deployer, args: list[str]) -> None:
    deployer.write_env_file(BASIC_ENV)

    result = deployer.run(*args)

    assert result.returncode == 2
    assert "--secret" in result.stderr
    assert not deployer.gcloud_called
    # A value pasted where the secret's name belongs is not echoed back.
    assert API_KEY not in result.stdout + result.stderr


# --- Rate limits behind Google's front end ---


@pytest.mark.parametrize(
    ("env_extra", "hops"),
    [("", "1"), ("TRUSTED_PROXY_HOPS=0\n", "0"), ("TRUSTED_PROXY_HOPS=2\n", "2")],
)
def test_trusted_proxy_hops_defaults_to_one(deployer: Deployer, env_extra: str, hops: str) -> None:
    deployer.write_env_file(BASIC_ENV + env_extra)

    result = deployer.run()

    assert result.returncode == 0, result.stderr
    assert deployer.received_vars()["TRUSTED_PROXY_HOPS"] == hops


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--dry-run"],
        ["--allow-unauthenticated"],
        ["--public", "--dry-run"],
        ["--secret", "GPT_API_KEY=openai-key", "--secret", "PROXY_API_KEYS=proxy-keys:4"],
        ["--dry-run", "--allow-unauthenticated", "--secret", "REDIS_URL=redis-url"],
    ],
)
def test_secret_values_are_never_printed_with_keys_and_secrets(
    deployer: Deployer, args: list[str]
) -> None:
    deployer.write_env_file(TRICKY_ENV + f"PROXY_API_KEYS=web={PROXY_KEY}\n")

    result = deployer.run(*args)

    assert result.returncode == 0, result.stderr
    assert_no_secrets(result)


def test_deploy_and_the_benchmark_hold_as_many_calls_at_once() -> None:
    deploy = (REPO_ROOT / "deploy.sh").read_text()
    bench = (REPO_ROOT / "bench" / "run.py").read_text()
    (deploy_concurrency,) = re.findall(r"^concurrency=(\d+)$", deploy, re.M)
    (bench_threads,) = re.findall(r"^RUN_THREADS = (\d+)", bench, re.M)
    assert deploy_concurrency == bench_threads == DEFAULT_FLAGS["--concurrency"]


def test_make_run_starts_one_worker_per_core() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("WORKERS", "THREADS", "MAKEFLAGS")}
    planned = subprocess.run(
        ["make", "--dry-run", "run"], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )

    assert planned.returncode == 0, planned.stderr
    assert f"WORKERS={os.cpu_count()} " in planned.stdout
    assert "THREADS" not in planned.stdout
