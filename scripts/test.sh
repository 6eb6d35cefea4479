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
# Two pytest workers (pytest-xdist), one per core: much of the suite waits on real subprocesses, sockets
# and kernels, which leaves a single pytest's core idle. worksteal hands each worker a contiguous half of
# the tests (a module's fixtures are mostly built once) and lets an idle worker take tests from the other.
# --durations: the slowest tests, to keep the suite within 15 min.
exec .venv/bin/python -m pytest -n 2 --dist worksteal --durations=25 "$@"
