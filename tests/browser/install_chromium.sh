#!/bin/sh
# Installs Debian's chromium for the browser test (tests/test_browser.py drives it through Playwright).
# Playwright's own browser download is never used: it needs the open internet, and the distribution's
# package works with Playwright's sync API given executable_path=/usr/bin/chromium.
# Safe to run again: returns at once when the browser is already there.
set -eu

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
    exit 0
fi

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "browser test: $CHROMIUM not found; on Debian install it with 'sudo apt-get install chromium', or run 'make setup' as root"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium >/dev/null
"$CHROMIUM" --version 2>/dev/null
