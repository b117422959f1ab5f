#!/usr/bin/env bash
# Install, then run every test: fast unit tests on a tiny in-process model, then integration tests on
# the real embedded models (fetched once into $SOFTEVAL_HOME, default ~/.cache/softeval).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
python -m pytest -q -p no:cacheprovider --durations=15 "$@"
