#!/usr/bin/env bash
# Create .venv (if missing) and install softeval with its test extras.
# torch: installed only if the venv has none, as $SOFTEVAL_TORCH (default torch==2.13.0: the CPU wheel on
# the softeval dev/CI machines; elsewhere pip picks your platform's build). Set SOFTEVAL_TORCH=skip to never touch it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
python -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
if ! python -c "import torch" >/dev/null 2>&1 && [ "${SOFTEVAL_TORCH:-}" != "skip" ]; then
  python -m pip install --quiet "${SOFTEVAL_TORCH:-torch==2.13.0}"
fi
python -m pip install --quiet -e ".[test]"
