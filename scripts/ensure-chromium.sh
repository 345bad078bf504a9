#!/usr/bin/env bash
# Make sure Debian's Chromium is at /usr/bin/chromium for the browser tests (tests/ui/).
# Playwright drives this browser rather than downloading one of its own.
set -euo pipefail

browser=/usr/bin/chromium
[ -x "$browser" ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing chromium with apt-get (the browser tests drive it headless)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
  [ -x "$browser" ] && exit 0
fi

echo "the browser tests need Chromium at $browser; install it as root with:" \
  "apt-get install --no-install-recommends chromium" >&2
exit 1
