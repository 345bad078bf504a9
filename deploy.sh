#!/usr/bin/env bash
# Deploy the chat proxy as a 2nd gen Google Cloud Function.
#
# Reads the runtime configuration from an env file (default: .env in the
# current directory), turns it into a temporary --env-vars-file for gcloud and
# runs `gcloud functions deploy`; variables named with --secret come from
# Secret Manager instead. Values from the env file are never printed.
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
  --concurrency N      concurrent requests per instance (default: 250)
  --cpu N              CPUs per instance, 1 to 8 (default: 1); the proxy runs
                       one worker process per CPU (WORKERS). Cloud Run wants
                       --memory of at least 2Gi for 4 CPUs and 4Gi for 6 or 8
  --secret NAME=SECRET[:VERSION]
                       set the variable NAME from the Secret Manager secret
                       SECRET (an id, or projects/PROJECT/secrets/ID) at
                       VERSION (a number, or latest: the default); repeatable,
                       e.g. --secret GPT_API_KEY=openai-key:3. A variable
                       given as a secret is left out of the env-vars file.
                       The runtime service account needs the role
                       roles/secretmanager.secretAccessor on each secret.
  --allow-unauthenticated
                       let anyone reach the URL, the proxy checking its own
                       API keys: refused unless PROXY_API_KEYS is set (in the
                       env file or as a --secret)
  --public             let anyone reach the URL even without PROXY_API_KEYS
                       (then anyone can spend the OpenAI credit and read
                       every chat; a warning is printed)
  --dry-run            print the gcloud command instead of running it
  -h, --help           show this help

Without --allow-unauthenticated or --public the function is IAM-protected
(--no-allow-unauthenticated): callers need an identity token.

The env file (or --secret) must provide GPT_API_KEY and a Redis store
(REDIS_URL or REDIS_HOST): instance disks are ephemeral, so the SQLite fallback
would lose chats. Unless the env file sets them, TRUSTED_PROXY_HOPS is 1
(Google's front end appends the client address to X-Forwarded-For), WORKERS
is --cpu and REQUEST_TIMEOUT is the function timeout less 5 s.
Reading the env file needs python-dotenv (pip install python-dotenv); set
PYTHON to choose the interpreter (default: python3).
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
concurrency=250
cpu=1
public=0
allow_unauthenticated=0
dry_run=0
secret_specs=()

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
    --allow-unauthenticated) allow_unauthenticated=1 ;;
    --dry-run) dry_run=1 ;;
    --project | --project=* | --region | --region=* | --name | --name=* | \
        --env-file | --env-file=* | --runtime | --runtime=* | \
        --memory | --memory=* | --timeout | --timeout=* | \
        --max-instances | --max-instances=* | --min-instances | --min-instances=* | \
        --concurrency | --concurrency=* | --cpu | --cpu=* | --secret | --secret=*)
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
        --cpu) cpu=$opt_value ;;
        --secret) secret_specs+=("$opt_value") ;;
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
# Whole CPUs only: Cloud Run allows a fraction of one only with a concurrency of 1.
check_int --cpu "$cpu" 1
cpu=$((10#$cpu))
if ((cpu > 8)); then
    die "--cpu must be at most 8, got '$cpu'" 2
fi
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

# --secret NAME=SECRET[:VERSION] -> NAME=SECRET:VERSION for --set-secrets.
# Messages name the variable at most: a secret value pasted by mistake must
# not be echoed.
secret_names=()
secret_refs=()
secret_id_re='^[A-Za-z0-9_-]{1,255}$'
secret_path_re='^projects/([a-z][a-z0-9-]{4,28}[a-z0-9]|[0-9]{1,19})/secrets/[A-Za-z0-9_-]{1,255}$'
secret_number=0
for spec in ${secret_specs[@]+"${secret_specs[@]}"}; do
    secret_number=$((secret_number + 1))
    if [[ $spec != *=* ]]; then
        usage_error "--secret #$secret_number must look like NAME=SECRET[:VERSION], e.g. GPT_API_KEY=openai-key"
    fi
    secret_var=${spec%%=*}
    secret_ref=${spec#*=}
    if ! [[ $secret_var =~ ^[A-Za-z_][A-Za-z0-9_]{0,254}$ ]]; then
        usage_error "--secret #$secret_number: NAME must be an environment variable name (letters, digits and _, not starting with a digit)"
    fi
    case $secret_var in
    # Kept in step with SKIP below: reserved by Cloud Functions or unused there.
    PORT | K_SERVICE | K_REVISION | K_CONFIGURATION | FUNCTION_TARGET | STORE_PATH | X_GOOGLE_*)
        usage_error "--secret $secret_var: the variable is reserved or unused on Cloud Functions"
        ;;
    esac
    for seen in ${secret_names[@]+"${secret_names[@]}"}; do
        if [[ $seen == "$secret_var" ]]; then
            usage_error "--secret names $secret_var twice"
        fi
    done
    secret_version=latest
    if [[ $secret_ref == *:* ]]; then
        secret_version=${secret_ref##*:}
        secret_ref=${secret_ref%:*}
    fi
    if ! [[ $secret_ref =~ $secret_id_re || $secret_ref =~ $secret_path_re ]]; then
        usage_error "--secret $secret_var: SECRET must be a secret id (1-255 letters, digits, - or _) or projects/PROJECT/secrets/ID"
    fi
    if ! [[ $secret_version == latest || $secret_version =~ ^[1-9][0-9]{0,18}$ ]]; then
        usage_error "--secret $secret_var: VERSION must be a version number or latest"
    fi
    secret_names+=("$secret_var")
    secret_refs+=("$secret_var=$secret_ref:$secret_version")
done

# Who may call the URL: iam (identity tokens), keys (anyone; the proxy checks
# PROXY_API_KEYS) or public (anyone, keys or not).
if ((public)); then
    access=public
elif ((allow_unauthenticated)); then
    access=keys
else
    access=iam
fi

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
# reported, never values. The words after the access mode name the variables
# that come from Secret Manager.
if ! "$python" - "$env_file" "$vars_file" "$concurrency" "$cpu" "$timeout_seconds" "$access" \
    ${secret_names[@]+"${secret_names[@]}"} <<'PY'; then
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

env_path, out_path, concurrency, cpu, function_timeout, access = sys.argv[1:7]
secrets = set(sys.argv[7:])
try:
    values = dotenv_values(env_path, encoding="utf-8")
except Exception as exc:  # never echo the message: it could quote a value
    sys.stderr.write(f"{prog}: error: cannot read {env_path} ({type(exc).__name__})\n")
    sys.exit(1)

# Reserved by Cloud Functions or meaningless there (STORE_PATH: the instance
# disk is ephemeral, chats must live in Redis). deploy.sh refuses them as --secret.
SKIP = {"PORT", "K_SERVICE", "K_REVISION", "K_CONFIGURATION", "FUNCTION_TARGET", "STORE_PATH"}
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# Characters YAML parsers treat as line breaks or refuse raw; json.dumps with
# ensure_ascii=False leaves them as they are, so escape them (still valid JSON).
UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]")


# gcloud refuses a variable that is both a plain variable and a secret: the secret wins.
replaced = [key for key, value in values.items() if key in secrets and value]
for key in secrets:
    values.pop(key, None)


def in_file(key):
    value = values.get(key)
    return value is not None and value.strip() != ""


def present(key):
    return key in secrets or in_file(key)


errors = []
if not present("GPT_API_KEY"):
    errors.append(
        f"GPT_API_KEY is missing or empty in {env_path} (set it there or pass --secret GPT_API_KEY=<secret-id>)"
    )
if not (present("REDIS_URL") or present("REDIS_HOST")):
    errors.append(
        f"no Redis configured in {env_path}: set REDIS_URL or REDIS_HOST, or pass --secret REDIS_URL=<secret-id>"
        " (instance disks are ephemeral, a SQLite STORE_PATH would lose chats)"
    )
has_keys = present("PROXY_API_KEYS")
if access == "keys" and not has_keys:
    errors.append(
        "--allow-unauthenticated needs the proxy's own API keys, but PROXY_API_KEYS is missing or empty"
        f" in {env_path} and not given as --secret PROXY_API_KEYS=<secret-id>. Without keys the proxy is"
        " open: anyone who finds the URL could spend the OpenAI account's money and read every chat."
        " Set PROXY_API_KEYS, leave the function IAM-protected (drop the flag), or pass --public to"
        " open it without keys anyway."
    )
if present("ADMIN_KEYS") and not has_keys:
    errors.append("ADMIN_KEYS is set but PROXY_API_KEYS is not (the proxy would refuse to start)")
# A request must end before Cloud Functions kills it, or the client gets a bare 504 and the
# proxy never gets to say what happened.
if in_file("REQUEST_TIMEOUT"):
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

# One worker process per CPU: a worker's event loop holds all the turns it is sent at once
# (--concurrency), and a turn's own work runs on that one thread.
if not present("WORKERS"):
    lines.append(f'WORKERS: "{cpu}"\n')
if not present("REQUEST_TIMEOUT"):
    lines.append(f'REQUEST_TIMEOUT: "{int(function_timeout) - 5}"\n')
# Google's front end appends the client address to X-Forwarded-For; without one trusted hop every
# caller would share the front end's address for RATE_LIMIT_PER_ADDRESS.
if not present("TRUSTED_PROXY_HOPS"):
    lines.append('TRUSTED_PROXY_HOPS: "1"\n')

with open(out_path, "w", encoding="utf-8", newline="\n") as out:
    out.writelines(lines)

if skipped:
    sys.stderr.write(f"{prog}: not deployed (reserved or unused on Cloud Functions): {', '.join(skipped)}\n")
if replaced:
    sys.stderr.write(
        f"{prog}: left out of the env-vars file, set from Secret Manager instead: {', '.join(replaced)}\n"
    )
names = [line.split(":", 1)[0] for line in lines]
sys.stderr.write(f"{prog}: environment variables: {', '.join(names)}\n")
if secrets:
    sys.stderr.write(f"{prog}: secret environment variables: {', '.join(sorted(secrets))}\n")

if access == "public" and not has_keys:
    sys.stderr.write(
        f"{prog}: WARNING: ****************************************************************\n"
        f"{prog}: WARNING: --public without PROXY_API_KEYS: the URL is OPEN TO ANYONE.\n"
        f"{prog}: WARNING: Whoever finds it can spend the OpenAI account's money and read,\n"
        f"{prog}: WARNING: change or delete every chat (--max-instances only caps the bill).\n"
        f"{prog}: WARNING: Set PROXY_API_KEYS and use --allow-unauthenticated instead.\n"
        f"{prog}: WARNING: ****************************************************************\n"
    )
elif access == "iam" and has_keys:
    sys.stderr.write(
        f"{prog}: the function stays IAM-protected; --allow-unauthenticated lets clients in with"
        " a PROXY_API_KEYS key alone\n"
    )
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
    "--cpu=$cpu"
)
if ((${#secret_refs[@]} > 0)); then
    set_secrets=$(
        IFS=,
        printf '%s' "${secret_refs[*]}"
    )
    cmd+=("--set-secrets=$set_secrets")
fi
if [[ $access != iam ]]; then
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
