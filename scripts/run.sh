#!/usr/bin/env bash
# Quick start, main job: set up, then update the store from the bundled data and summarise it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/shiol update-data --offline
.venv/bin/shiol status
