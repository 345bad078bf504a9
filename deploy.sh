#!/usr/bin/env bash
# Deploy the chat proxy as a 2nd gen Google Cloud Function.
#
# Reads the runtime configuration from an env file (default: .env in the
# current directory), turns it into a temporary --env-vars-file for gcloud and
# runs `gcloud functions deploy`. Values from the env file are never printed.
# Run `./deploy.sh --help` for the options.
set -euo pipefail

prog=${0##*/}

usage() {
    cat <<EOF
Usage: $prog [options]

Deploy the chat proxy to Google Cloud Functions (2nd gen, HTTP trigger).

Options (flags win over environment variables):
  --project ID         GCP project (env GCLOUD_PROJECT or GOOGLE_CLOUD_PROJECT;
                       default: gcloud's configured project)
  --region REGION      region (env FUNCTION_REGION; default: europe-west1)
  --name NAME          function name (env FUNCTION_NAME; default: chat-proxy)
  --env-file PATH      env file with the runtime settings (default: .env)
  --runtime RUNTIME    runtime (default: python312)
  --memory SIZE        memory (default: 512Mi)
  --timeout SECONDS    function timeout, e.g. 60 or 60s (default: 60s); the
                       proxy's REQUEST_TIMEOUT defaults to 5 s less
  --max-instances N    maximum instances (default: 10)
  --min-instances N    minimum instances (default: 0)
  --concurrency N      concurrent requests per instance (default: 16)
  --public             allow unauthenticated invocations; without it the
                       function is IAM-protected (--no-allow-unauthenticated)
  --dry-run            print the gcloud command instead of running it
  -h, --help           show this help

The env file must set GPT_API_KEY and a Redis store (REDIS_URL or REDIS_HOST):
instance disks are ephemeral, so the SQLite fallback would lose chats.
Reading it needs python-dotenv (pip install python-dotenv); set PYTHON to
choose the interpreter (default: python3).
EOF
}

die() {
    printf '%s: error: %s\n' "$prog" "$1" >&2
    exit "${2:-1}"
}

usage_error() {
    printf '%s: %s\n\n' "$prog" "$1" >&2
    usage >&2
    exit 2
}

project=${GCLOUD_PROJECT:-${GOOGLE_CLOUD_PROJECT:-}}
region=${FUNCTION_REGION:-europe-west1}
name=${FUNCTION_NAME:-chat-proxy}
env_file=.env
runtime=python312
memory=512Mi
timeout=60s
max_instances=10
min_instances=0
concurrency=16
public=0
dry_run=0

# Value of an option given as "--opt VALUE" (needs $2) or "--opt=VALUE".
opt_value=
take_value() {
    # $1: the option name, $2: the current word, $3...: the words after it.
    local opt=$1 word=$2
    if [[ $word == "$opt="* ]]; then
        opt_value=${word#"$opt="}
        return 1 # no extra word consumed
    fi
    if (($# < 3)) || [[ $3 == --* ]]; then
        usage_error "option $opt needs a value"
    fi
    opt_value=$3
    return 0 # consumed the next word
}

while (($# > 0)); do
    arg=$1
    case $arg in
    -h | --help)
        usage
        exit 0
        ;;
    --public) public=1 ;;
    --dry-run) dry_run=1 ;;
    --project | --project=* | --region | --region=* | --name | --name=* | \
        --env-file | --env-file=* | --runtime | --runtime=* | \
        --memory | --memory=* | --timeout | --timeout=* | \
        --max-instances | --max-instances=* | --min-instances | --min-instances=* | \
        --concurrency | --concurrency=*)
        opt=${arg%%=*}
        if take_value "$opt" "$@"; then shift; fi
        if [[ -z $opt_value ]]; then
            usage_error "option $opt needs a non-empty value"
        fi
        case $opt in
        --project) project=$opt_value ;;
        --region) region=$opt_value ;;
        --name) name=$opt_value ;;
        --env-file) env_file=$opt_value ;;
        --runtime) runtime=$opt_value ;;
        --memory) memory=$opt_value ;;
        --timeout) timeout=$opt_value ;;
        --max-instances) max_instances=$opt_value ;;
        --min-instances) min_instances=$opt_value ;;
        --concurrency) concurrency=$opt_value ;;
        esac
        ;;
    *) usage_error "unknown option: $arg" ;;
    esac
    shift
done

# Numeric options: plain non-negative integers (no sign, no decimals).
check_int() {
    # $1: option name, $2: value, $3: minimum
    if ! [[ $2 =~ ^[0-9]{1,9}$ ]]; then
        die "$1 must be a whole number, got '$2'" 2
    fi
    if ((10#$2 < $3)); then
        die "$1 must be at least $3, got '$2'" 2
    fi
}
check_int --max-instances "$max_instances" 1
check_int --min-instances "$min_instances" 0
check_int --concurrency "$concurrency" 1
max_instances=$((10#$max_instances))
min_instances=$((10#$min_instances))
concurrency=$((10#$concurrency))
if ((min_instances > max_instances)); then
    die "--min-instances ($min_instances) is larger than --max-instances ($max_instances)" 2
fi

# The function timeout in whole seconds ("60", "60s" or "2m").
if [[ $timeout =~ ^([0-9]{1,5})s?$ ]]; then
    timeout_seconds=$((10#${BASH_REMATCH[1]}))
elif [[ $timeout =~ ^([0-9]{1,3})m$ ]]; then
    timeout_seconds=$((10#${BASH_REMATCH[1]} * 60))
else
    die "--timeout must be whole seconds such as 60 or 60s (or minutes such as 2m), got '$timeout'" 2
fi
if ((timeout_seconds < 10)); then
    die "--timeout must be at least 10s, got '$timeout'" 2
fi
timeout="${timeout_seconds}s"

if [[ ! -f $env_file ]]; then
    die "env file not found: $env_file (create it from .env.example or pass --env-file PATH)"
fi

python=${PYTHON:-python3}
if ! command -v "$python" >/dev/null 2>&1; then
    die "$python not found; it is needed to read $env_file (set PYTHON to a Python 3 interpreter)"
fi

# Directory holding this script = the source directory to upload.
source_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)

umask 077
vars_file=$(mktemp "${TMPDIR:-/tmp}/chat-proxy-env-vars.XXXXXX")
cleanup() { rm -f -- "$vars_file"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
chmod 600 "$vars_file"

# Validate the env file and write it as YAML for --env-vars-file. Every value
# becomes a JSON string (valid YAML double-quoted scalar). Only names are
# reported, never values.
if ! "$python" - "$env_file" "$vars_file" "$concurrency" "$timeout_seconds" <<'PY'; then
import json
import re
import sys

prog = "deploy.sh"
try:
    from dotenv import dotenv_values
except ImportError:
    sys.stderr.write(
        f"{prog}: error: python-dotenv is needed to read the env file "
        f"(pip install python-dotenv, or set PYTHON to an interpreter that has it)\n"
    )
    sys.exit(1)

env_path, out_path, concurrency, function_timeout = sys.argv[1:5]
try:
    values = dotenv_values(env_path, encoding="utf-8")
except Exception as exc:  # never echo the message: it could quote a value
    sys.stderr.write(f"{prog}: error: cannot read {env_path} ({type(exc).__name__})\n")
    sys.exit(1)

# Reserved by Cloud Functions or meaningless there (STORE_PATH: the instance
# disk is ephemeral, chats must live in Redis).
SKIP = {"PORT", "K_SERVICE", "K_REVISION", "K_CONFIGURATION", "FUNCTION_TARGET", "STORE_PATH"}
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# Characters YAML parsers treat as line breaks or refuse raw; json.dumps with
# ensure_ascii=False leaves them as they are, so escape them (still valid JSON).
UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]")


def present(key):
    value = values.get(key)
    return value is not None and value.strip() != ""


errors = []
if not present("GPT_API_KEY"):
    errors.append(f"GPT_API_KEY is missing or empty in {env_path}")
if not (present("REDIS_URL") or present("REDIS_HOST")):
    errors.append(
        f"no Redis configured in {env_path}: set REDIS_URL or REDIS_HOST "
        "(instance disks are ephemeral, a SQLite STORE_PATH would lose chats)"
    )
# A request must end before Cloud Functions kills it, or the client gets a bare 504 and the
# proxy never gets to say what happened.
if present("REQUEST_TIMEOUT"):
    try:
        fits = 0 < float(values["REQUEST_TIMEOUT"]) < int(function_timeout)
    except ValueError:
        fits = False
    if not fits:
        errors.append(
            f"REQUEST_TIMEOUT in {env_path} must be a number of seconds below the function"
            f" timeout ({function_timeout}s); leave it out to use {int(function_timeout) - 5}"
        )
# Lines without "=" give a None value: not a variable, and maybe not a name.
bad = [key for key, value in values.items() if value is not None and not NAME.match(key)]
if bad:
    errors.append(f"invalid variable names in {env_path}: {', '.join(map(repr, bad))}")
if errors:
    for error in errors:
        sys.stderr.write(f"{prog}: error: {error}\n")
    sys.exit(1)

lines, skipped = [], []
for key, value in values.items():
    if value is None or value == "":
        continue
    if key in SKIP:
        skipped.append(key)
        continue
    quoted = json.dumps(value, ensure_ascii=False)
    quoted = UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", quoted)
    lines.append(f"{key}: {quoted}\n")

# One server thread per request the instance may be sent at once, unless the file says otherwise
# (functions-framework's gunicorn otherwise runs 4 threads per CPU and queues the rest).
if not present("THREADS"):
    lines.append(f'THREADS: "{concurrency}"\n')
if not present("REQUEST_TIMEOUT"):
    lines.append(f'REQUEST_TIMEOUT: "{int(function_timeout) - 5}"\n')

with open(out_path, "w", encoding="utf-8", newline="\n") as out:
    out.writelines(lines)

if skipped:
    sys.stderr.write(f"{prog}: not deployed (reserved or unused on Cloud Functions): {', '.join(skipped)}\n")
names = [line.split(":", 1)[0] for line in lines]
sys.stderr.write(f"{prog}: environment variables: {', '.join(names)}\n")
PY
    exit 1
fi

cmd=(
    gcloud functions deploy "$name"
    --gen2
    "--runtime=$runtime"
    "--region=$region"
)
if [[ -n $project ]]; then
    cmd+=("--project=$project")
fi
cmd+=(
    "--source=$source_dir"
    --entry-point=main
    --trigger-http
    "--env-vars-file=$vars_file"
    "--memory=$memory"
    "--timeout=$timeout"
    "--max-instances=$max_instances"
    "--min-instances=$min_instances"
    "--concurrency=$concurrency"
    --cpu=1
)
if ((public)); then
    cmd+=(--allow-unauthenticated)
else
    cmd+=(--no-allow-unauthenticated)
fi

if ((dry_run)); then
    printf '%q' "${cmd[0]}"
    printf ' %q' "${cmd[@]:1}"
    printf '\n'
    exit 0
fi

if ! command -v gcloud >/dev/null 2>&1; then
    die "gcloud not found on PATH; install the Google Cloud SDK (or use --dry-run)"
fi

"${cmd[@]}"
