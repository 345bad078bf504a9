#!/usr/bin/env bash
# Make sure Node.js 18 or newer and npm are on PATH for the tests that drive the official openai
# Node SDK (tests/js/, tests/test_real_clients.py); Debian's nodejs and npm packages are enough.
set -euo pipefail

have_node() {
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 \
    && [ "$(node -p 'process.versions.node.split(".")[0]')" -ge 18 ]
}
have_node && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing nodejs and npm with apt-get (tests drive the openai Node SDK)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  have_node && exit 0
fi

echo "the Node SDK tests need Node.js 18 or newer and npm on PATH; install them as root with:" \
  "apt-get install --no-install-recommends nodejs npm" >&2
exit 1
