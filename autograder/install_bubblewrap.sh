#!/bin/sh
# Installs Debian's bubblewrap, the sandbox every student kernel runs in when `python -m autograder grade` grades
# (autograder/sandbox.py). Safe to run again: returns at once when bwrap is already there.
set -eu

if command -v bwrap >/dev/null 2>&1; then
    exit 0
fi

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "grading: bwrap not found; on Debian install it with 'sudo apt-get install bubblewrap', or run 'make setup' as root"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends bubblewrap >/dev/null
bwrap --version
