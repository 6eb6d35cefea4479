#!/usr/bin/env bash
# Quick start, tests: set up (Python venv, and Debian's Chromium for the browser test), then run the
# whole suite, slow end-to-end tests included. Extra arguments go to pytest (e.g. -m "not slow").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's chromium for the browser test..."
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "warning: chromium is missing and cannot be installed here; the browser test will fail" >&2
  fi
fi
exec .venv/bin/python -m pytest --durations=25 "$@"  # the slowest tests, to keep the suite within 15 min
