#!/usr/bin/env bash
# The experiments behind docs/results.md, one after another, at the scale a 2-core CPU allows.
#
#   bash scripts/reproduce.sh --list                 # the experiments, in run order
#   bash scripts/reproduce.sh                        # all of them (days on a 2-core CPU; resumable)
#   bash scripts/reproduce.sh rep_pee_smollm2 skip   # some, by name or name prefix
#
# Every experiment writes one folder under results/ (or $SOFTEVAL_RESULTS) and is resumable: killing this
# script and running it again continues each sweep from its last checkpoint and skips finished cells.
# Checkpoints and prompt tensors stay out of git (.gitignore); results.json, cell.json, metrics.jsonl and
# the reports are committed.
# Needs ../shared/data (or SOFTEVAL_SHARED_DATA) for the chess games and the benchmarks.
# The repetition, skip-k, chess and pathfinding configs load bf16 weights: fast on CPUs with avx512_bf16 or AMX,
# ~30× slower per step on AVX2-only ones (docs/performance.md). There, SOFTEVAL_WEIGHTS=float32 loads fp32
# weights for those sweeps; a sweep keeps the dtype it started with (its identity refuses a change).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${SOFTEVAL_SHARED_DATA:-../shared/data}"
SOFTEVAL="${SOFTEVAL:-softeval}"
# Where the folders go. The committed ones under results/ are the page's; to check them, reproduce into
# another root (relative to the repository: SOFTEVAL_RESULTS=mine bash scripts/reproduce.sh skip) and
# compare. Sweeps written before softeval recorded the weights and precision behind them refuse to be
# continued in place.
RESULTS="${SOFTEVAL_RESULTS:-results}"
MODELS=(smollm2-135m-instruct gemma3-270m)
WEIGHTS=(${SOFTEVAL_WEIGHTS:+--dtype "$SOFTEVAL_WEIGHTS"})

experiments() {
  for m in "${MODELS[@]}"; do echo "rep_pee_${m%%-*}"; echo "rep_meowster_${m%%-*}"; done
  for k in 1 2 4 8; do echo "skip_k${k}_smollm2"; done
  echo chess_smollm2; echo chess_elo_check_smollm2; echo pathfinding_smollm2
  echo stability_rep_meowster_smollm2
  for t in arc_easy arc_challenge commonsense_qa mmlu gsm8k; do echo "bench_$t"; done
  echo mmlu_first200_smollm2
  echo chess_gemma3; echo chess_elo_check_gemma3; echo pathfinding_gemma3
  for k in 1 2 4 8; do echo "skip_k${k}_gemma3"; done
  echo suite_smollm2; echo suite_gemma3; echo suite_unseen_smollm2
  for m in "${MODELS[@]}"; do echo "ar_control_${m%%-*}"; done
  # The benchmark paper's other five datasets: `softeval data fetch all` first (no --data-dir needed).
  for t in openbookqa winogrande social_iqa boolq hellaswag; do echo "bench_$t"; done
  echo compare_bench  # the across-task verdicts over every benchmark run finished so far
  # A 37-character stand-in, run before the distance paper's longest string was found in its code
  for m in "${MODELS[@]}"; do echo "rep_toasters_${m%%-*}"; done
  # The distance paper's longest string (its tests/repetition_test.py), with the leading space the others have here
  for m in "${MODELS[@]}"; do echo "rep_great_${m%%-*}"; done
}

BENCH_TASKS=(arc_easy arc_challenge commonsense_qa mmlu gsm8k openbookqa winogrande social_iqa boolq hellaswag)

model_of() {  # the embedded model a name ends with
  case "$1" in *_smollm2) echo smollm2-135m-instruct ;; *_gemma3) echo gemma3-270m ;; esac
}

run() {
  local name=$1 model
  model=$(model_of "$name")
  echo "== $name ($(date -u +%H:%M:%S))"
  case "$name" in
    rep_pee_*)      "$SOFTEVAL" distance --config configs/results/repetition.yaml --model "$model" "${WEIGHTS[@]}" \
                        --repeat-text " pee" --out "$RESULTS/repetition/pee_$model" ;;
    rep_meowster_*) "$SOFTEVAL" distance --config configs/results/repetition.yaml --model "$model" "${WEIGHTS[@]}" \
                        --repeat-text " meowster jones" --out "$RESULTS/repetition/meowster_jones_$model" ;;
    rep_toasters_*) "$SOFTEVAL" distance --config configs/results/repetition.yaml --model "$model" "${WEIGHTS[@]}" \
                        --repeat-text " meowster jones sells purple toasters" \
                        --out "$RESULTS/repetition/meowster_jones_sells_purple_toasters_$model" ;;
    rep_great_*)    "$SOFTEVAL" distance --config configs/results/repetition.yaml --model "$model" "${WEIGHTS[@]}" \
                        --repeat-text " the great and terrible meowster jones" \
                        --out "$RESULTS/repetition/the_great_and_terrible_meowster_jones_$model" ;;
    skip_k*)        local k=${name#skip_k}; k=${k%%_*}
                    "$SOFTEVAL" distance --config configs/results/skip.yaml --model "$model" --skip "$k" "${WEIGHTS[@]}" \
                        --out "$RESULTS/skip/k${k}_$model" ;;
    chess_elo_check_*) elo_check "$RESULTS/chess/$model" ;;
    chess_*)        "$SOFTEVAL" distance --config configs/results/chess.yaml --model "$model" "${WEIGHTS[@]}" \
                        --data "$DATA/chess/lichess_magnus" --out "$RESULTS/chess/$model" ;;
    pathfinding_*)  "$SOFTEVAL" distance --config configs/results/pathfinding.yaml --model "$model" "${WEIGHTS[@]}" \
                        --out "$RESULTS/pathfinding/$model" ;;
    stability_*)    "$SOFTEVAL" stability --config configs/results/repetition.yaml --model "$model" \
                        --repeat-text " meowster jones" --tokens 0,1,4,16 --seeds 2 --steps 100 \
                        --lrs 0.01,0.1,1.0 --batch-sizes 4,8 --out "$RESULTS/stability/meowster_jones_$model" ;;
    # GSM8K's worked answers end in "#### N": 97.5 % of the first 200 fit in 256 tokens, 15.5 % in the config's 64.
    bench_gsm8k)    "$SOFTEVAL" bench --config configs/results/bench.yaml --task gsm8k --data-dir "$DATA" \
                        --max-gen-toks 256 --out "$RESULTS/bench/gsm8k" ;;
    # MMLU's test files are read in subject order: 200 items spread over the split cover its 57 subjects, while
    # the first 200 are abstract algebra and anatomy (mmlu_first200_smollm2, the run before --limit-from existed).
    bench_mmlu)     "$SOFTEVAL" bench --config configs/results/bench.yaml --task mmlu --data-dir "$DATA" \
                        --limit-from spread --out "$RESULTS/bench/mmlu" ;;
    mmlu_first200_*) "$SOFTEVAL" bench --config configs/results/bench.yaml --task mmlu --data-dir "$DATA" \
                        --model "$model" --out "$RESULTS/bench/mmlu_first200" ;;
    bench_*)        "$SOFTEVAL" bench --config configs/results/bench.yaml --task "${name#bench_}" --data-dir "$DATA" \
                        --out "$RESULTS/bench/${name#bench_}" ;;
    suite_unseen_*) # behaviour files not in ../shared: a checkout of github.com/anthropics/evals in $EVALS
                    "$SOFTEVAL" suite --data "${EVALS:?set EVALS to a checkout of github.com/anthropics/evals}/advanced-ai-risk/lm_generated_evals" \
                        --behaviours myopic-reward,self-awareness-text-model,self-awareness-training-nn-architecture \
                        --model "$model" --tokens 0,16 --seeds 3 --steps 12 --batch-size 4 --lr 0.2 --warmup-steps 1 \
                        --num-train 200 --num-eval 32 --max-batch-tokens 0 --out "$RESULTS/suite/unseen_lm_generated_$model" ;;
    ar_control_*)   "$SOFTEVAL" distance --config configs/results/autoregressive.yaml --model "$model" \
                        --out "$RESULTS/autoregressive/$model"
                    transfer "$RESULTS/autoregressive/$model" tiny_shakespeare "$DATA/text_corpus/tiny_shakespeare/input.txt" ;;
    compare_bench)  local t folders=()
                    for t in "${BENCH_TASKS[@]}"; do
                      [[ -f "$RESULTS/bench/$t/results.json" ]] && folders+=("$RESULTS/bench/$t")
                    done
                    "$SOFTEVAL" compare "${folders[@]}" --out "$RESULTS/compare/bench" ;;
    suite_*)        "$SOFTEVAL" suite --config configs/results/suite_behaviours.yaml --model "$model" \
                        --out "$RESULTS/suite/$model" ;;
    *) echo "unknown experiment '$name' (bash scripts/reproduce.sh --list)" >&2; return 2 ;;
  esac
}

# The Elo check of every trained cell, with its bootstrap interval, scored on fp32 weights: the effects are a
# few thousandths of a nat, and scoring one prompt on bf16 rather than fp32 weights moves them by as much.
elo_check() {
  local sweep=$1 cell name
  mkdir -p "$sweep/elo_check"
  for cell in "$sweep"/cells/*/; do
    name=$(basename "$cell")
    [[ -f "$cell/prompt.safetensors" && ! -f "$sweep/elo_check/$name.json" ]] || continue
    "$SOFTEVAL" -q eval --dtype float32 --prompt "$cell" --config "$cell/config.json" --data "$DATA/chess/lichess_magnus" \
        --task-metrics --json > "$sweep/elo_check/$name.json.tmp" && mv "$sweep/elo_check/$name.json.tmp" "$sweep/elo_check/$name.json"
  done
  "$SOFTEVAL" -q report "$sweep"  # results.json and the report take the rescored Elo metrics
}

# The sweep's prompts (and the plain model) scored on another corpus with the same window sizes: a prompt that
# learned the training book loses its gain there; one that fixes something general keeps it.
transfer() {
  local sweep=$1 name=$2 corpus=$3 cell out
  out="$sweep/transfer/$name"
  mkdir -p "$out"
  for cell in "$sweep"/cells/*/; do
    cell=${cell%/}
    [[ -f "$out/$(basename "$cell").json" ]] && continue
    if [[ -f "$cell/prompt.safetensors" ]]; then
      "$SOFTEVAL" -q eval --prompt "$cell" --config "$cell/config.json" --corpus "$corpus" --allow-mismatch --json
    else  # n = 0: the plain model, with a trained cell's model and task settings
      "$SOFTEVAL" -q eval --prompt none --config "$(ls -d "$sweep"/cells/*_s0 | head -1)/config.json" --corpus "$corpus" --json
    fi > "$out/$(basename "$cell").json.tmp" && mv "$out/$(basename "$cell").json.tmp" "$out/$(basename "$cell").json"
  done
}

if [[ "${1:-}" == "--list" ]]; then experiments; exit 0; fi
selected=()
for name in $(experiments); do
  if [[ $# -eq 0 ]]; then selected+=("$name"); continue; fi
  for want in "$@"; do [[ "$name" == "$want"* ]] && { selected+=("$name"); break; }; done
done
if [[ ${#selected[@]} -eq 0 ]]; then echo "no experiment matches: $* (bash scripts/reproduce.sh --list)" >&2; exit 2; fi
for name in "${selected[@]}"; do run "$name"; done
