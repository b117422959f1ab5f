#!/usr/bin/env bash
# Reproduce the issue #4 numbers in docs/tasks-chess-pathfinding.md (chess on SmolLM2 and Gemma, conditional
# pathfinding). Tiny runs sized for a busy 2-core CPU (≈ 6–8 min each there); raise STEPS for real numbers.
# Usage: DATA=../shared/data bash examples/chess_and_paths.sh
set -euo pipefail
DATA=${DATA:-../shared/data}
OUT=${OUT:-runs/examples}
STEPS=${STEPS:-15}

for model in smollm2-135m-instruct gemma3-270m; do
  python examples/chess_and_paths.py --task chess --model "$model" --data "$DATA/chess/lichess_magnus" \
    --tokens 4,16 --steps "$STEPS" --batch-size 4 --lr 0.1 --warmup-steps 2 --num-train 64 --num-eval 8 \
    --option max_plies=10 --option positions_per_game=2 --option probe_tokens=5 --out "$OUT/chess-$model"
done
python examples/chess_and_paths.py --task pathfinding --model smollm2-135m-instruct --tokens 8 \
  --steps "${PATH_STEPS:-30}" --batch-size 4 --lr 0.1 --warmup-steps 2 --num-train 128 --num-eval 12 \
  --option "probe_extras=[0,8]" --out "$OUT/pathfinding-smollm2"
