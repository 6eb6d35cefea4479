#!/usr/bin/env bash
# Create .venv (Python 3.11) and install the workbench with its test and JupyterLab extras; skip when up to date.
set -euo pipefail
cd "$(dirname "$0")/.."

python_bin="${PYTHON:-}"
if [ -z "$python_bin" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then python_bin="$candidate"; break; fi
  done
fi
if [ -z "$python_bin" ] || ! "$python_bin" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "error: Python 3.11 is required (found: ${python_bin:-none}); set PYTHON=/path/to/python3.11" >&2
  exit 2
fi

stamp=.venv/.shiol-installed
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$python_bin" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# dev: the test tools; lab: JupyterLab (the workbench's notebooks; a scheduler-only host installs
# the package without extras).
.venv/bin/python -m pip install --quiet -e ".[dev,lab]"
echo "$want" > "$stamp"
