#!/usr/bin/env bash
# Reproduce the issue #4 numbers (chess on SmolLM2 and Gemma, conditional pathfinding) on a CPU.
# Usage: DATA=../shared/data bash examples/chess_and_paths.sh      (≈ 15–40 min on 2 busy cores)
set -euo pipefail
DATA=${DATA:-../shared/data}
OUT=${OUT:-runs/examples}
STEPS=${STEPS:-40}

for model in smollm2-135m-instruct gemma3-270m; do
  python examples/chess_and_paths.py --task chess --model "$model" --data "$DATA/chess/lichess_magnus" \
    --tokens 4,16 --steps "$STEPS" --num-train 128 --num-eval 16 --out "$OUT/chess-$model"
done
python examples/chess_and_paths.py --task pathfinding --model smollm2-135m-instruct --tokens 8 \
  --steps "${PATH_STEPS:-80}" --num-train 256 --num-eval 32 --out "$OUT/pathfinding-smollm2"
