#!/usr/bin/env bash
# Create .venv (Python 3.11), install the workbench with its test and JupyterLab extras, build and link the Lab
# extension; each part is skipped when up to date.
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
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  [ -x .venv/bin/python ] || "$python_bin" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
  # dev: the test tools; lab: JupyterLab (the workbench's notebooks; a scheduler-only host installs
  # the package without extras).
  .venv/bin/python -m pip install --quiet -e ".[dev,lab]"
  echo "$want" > "$stamp"
fi

# The JupyterLab extension (labextension/, TypeScript): built with Node.js and the npm registry into
# labextension/dist (the wheel ships it), skipped when its sources and lockfile are unchanged.
lab_stamp=.venv/.shiol-lab-built
lab_want="$(cd labextension && cat package.json package-lock.json tsconfig.json install.json \
  src/*.ts style/* | sha256sum | cut -d' ' -f1)"
if [ -f labextension/dist/package.json ] && [ -f "$lab_stamp" ] && [ "$(cat "$lab_stamp")" = "$lab_want" ]; then
  :
elif ! command -v npm >/dev/null 2>&1; then
  echo "warning: npm (Node.js 20) not found: the Lab extension (Runs and Jobs panels) is not built;" \
    "install Node.js 20 and run scripts/setup.sh again" >&2
else
  lock="$(sha256sum labextension/package-lock.json | cut -d' ' -f1)"
  if [ "$(cat labextension/node_modules/.shiol-lock 2>/dev/null)" != "$lock" ]; then
    (cd labextension && npm ci --no-audit --no-fund --loglevel=error)
    echo "$lock" > labextension/node_modules/.shiol-lock
  fi
  (cd labextension && PATH="$PWD/../.venv/bin:$PATH" npm run --silent clean && PATH="$PWD/../.venv/bin:$PATH" npm run --silent build)
  echo "$lab_want" > "$lab_stamp"
fi
# A development install links the built extension (as `jupyter labextension develop` would): a
# rebuild is live in Lab at the next page load.
labext=.venv/share/jupyter/labextensions/shiol-workbench-lab
if [ -f labextension/dist/package.json ] && [ "$(readlink "$labext" 2>/dev/null)" != "$PWD/labextension/dist" ]; then
  mkdir -p "$(dirname "$labext")"
  rm -rf "$labext"
  ln -s "$PWD/labextension/dist" "$labext"
fi
# ... and enables the server extension (shiol_lib.lab) as the wheel's data file does where it is installed.
serverext=.venv/etc/jupyter/jupyter_server_config.d/shiol_lib.json
if [ "$(readlink "$serverext" 2>/dev/null)" != "$PWD/etc/jupyter/jupyter_server_config.d/shiol_lib.json" ]; then
  mkdir -p "$(dirname "$serverext")"
  rm -f "$serverext"
  ln -s "$PWD/etc/jupyter/jupyter_server_config.d/shiol_lib.json" "$serverext"
fi
