#!/usr/bin/env bash
# Make sure `redis-server` is on PATH for the tests (they start their own on a free port).
set -euo pipefail

command -v redis-server >/dev/null 2>&1 && exit 0

if command -v apt-get >/dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" != 0 ]; then
    if sudo -n true 2>/dev/null; then sudo="sudo"; else
      echo "redis-server is missing; install it with: sudo apt-get install redis-server" >&2
      exit 1
    fi
  fi
  echo "installing redis-server with apt-get (the tests start their own, on a free port)" >&2
  # Keep the package from starting a system-wide server: the tests do not need one.
  policy=/usr/sbin/policy-rc.d
  made_policy=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod +x "$policy"
    made_policy=1
  fi
  trap '[ -n "$made_policy" ] && $sudo rm -f "$policy"' EXIT
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends redis-server >/dev/null
  command -v redis-server >/dev/null 2>&1 && exit 0
fi

echo "redis-server is needed by the tests: install Redis (apt-get install redis-server," \
  "brew install redis, ...) so that redis-server is on PATH" >&2
exit 1
