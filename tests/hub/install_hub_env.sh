#!/bin/sh
# Installs what tests/test_jupyterhub.py needs: JupyterHub's environment in /opt/linattn-hub and
# configurable-http-proxy (npm). The environment is made from Debian's /usr/bin/python3, not from the Python that
# runs the tests: that one may live under /root (mode 0700), which the hub's unprivileged users cannot execute.
# It holds the course's pinned packages (torch first, pinned, so pip never takes a CUDA build) and jupyterhub;
# the course's own code (linattn_ref, autograder) comes from the checkout under test. Safe to run again: returns
# at once when the environment matches pyproject.toml's pins.
set -eu

HUB_ENV=/opt/linattn-hub
HERE=$(cd "$(dirname "$0")/../.." && pwd)
JUPYTERHUB=jupyterhub==5.5.4
PROXY=configurable-http-proxy@5.3.0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "hub test: needs root, apt-get and npm to install $HUB_ENV and $PROXY; run 'make setup' as root"
    exit 0
fi

if ! command -v configurable-http-proxy >/dev/null 2>&1; then
    npm install --global --silent "$PROXY" >/dev/null
fi

PINS=$(/usr/bin/python3 -c "import tomllib; print('\n'.join(tomllib.load(open('$HERE/pyproject.toml', 'rb'))['project']['dependencies']))")
WANTED=$(printf '%s\n%s\n' "$PINS" "$JUPYTERHUB" | sha256sum | cut -c1-16)
if [ "$(cat $HUB_ENV/.installed 2>/dev/null)" = "$WANTED" ]; then
    exit 0
fi

if ! /usr/bin/python3 -c "import ensurepip" 2>/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
fi
test -x $HUB_ENV/bin/python || /usr/bin/python3 -m venv $HUB_ENV
TORCH=$(echo "$PINS" | grep '^torch==')
$HUB_ENV/bin/python -m pip install --quiet "$TORCH"
echo "$PINS" | $HUB_ENV/bin/python -m pip install --quiet -r /dev/stdin "$JUPYTERHUB"
echo "$WANTED" > $HUB_ENV/.installed
