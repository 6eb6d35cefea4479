#!/usr/bin/env bash
# Quick start, main job: set up, then run the six-step pipeline on the bundled data and archive it
# (notebooks, HTML and manifest under runs/, listed in runs/index.html).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/shiol run pipeline --offline
.venv/bin/shiol status
echo "run archive: $(pwd)/runs/index.html"
