#!/usr/bin/env bash
# Quick start, main job: set up, then run the six-step pipeline on the bundled data and archive it
# (notebooks, HTML and manifest under runs/, listed in runs/index.html).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The store (var/) and the archive (runs/) of the quick start live in the checkout: say so explicitly,
# since without SHIOL_HOME the workbench uses the per-user folder (~/.local/share/shiol).
export SHIOL_HOME="$(pwd)"
.venv/bin/shiol run pipeline --offline
.venv/bin/shiol status
echo "run archive: $(pwd)/runs/index.html"
