#!/usr/bin/env bash
# One prepared GPU check (issue #12): train speed, sweep speed, chunked-CE memory and eval speed on one
# CUDA GPU, in under 8 minutes on an H100/H200, offline. Run from the repository root:
#
#   bash benchmarks/gpu_check.sh                  # on the GPU machine
#   bash benchmarks/gpu_check.sh --cpu-smoke      # every step tiny on the CPU (< 3 min): proves the script runs
#
# Environment (nothing is downloaded; the machine may have no internet):
#   PYTHON          interpreter with torch, transformers, peft, lm_eval (default: ./.venv/bin/python if it
#                   exists, else python)
#   SOFTEVAL_CACHE  folder holding the fetched models (models/<name>/model/...), i.e. a copy of
#                   ~/.cache/softeval; exported as SOFTEVAL_HOME, which softeval reads
#   OUT             if set, the log and every JSON result are also written there
#   SOFTEVAL_DATA   benchmark data folder for eval_speed.py (default: ./shared/data, else ../shared/data)
# The repository's src/ goes first on PYTHONPATH, so a carried venv's own softeval install does not matter.
# Each step runs under `timeout`; a failed or missing step is reported and the next one runs.
set -u

MODE=gpu
[ "${1:-}" = "--cpu-smoke" ] && MODE=cpu-smoke

if [ -z "${PYTHON:-}" ]; then
    if [ -x ./.venv/bin/python ]; then PYTHON=./.venv/bin/python; else PYTHON=python; fi
fi
if [ -n "${SOFTEVAL_CACHE:-}" ]; then export SOFTEVAL_HOME="$SOFTEVAL_CACHE"; fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
RESULTS="${OUT:-$(mktemp -d /tmp/gpu_check.XXXXXX)}"
mkdir -p "$RESULTS"
LOG="$RESULTS/gpu_check.log"
: > "$LOG"
START=$(date +%s)
SUMMARY=()

say() { echo "$@" | tee -a "$LOG"; }

# step NAME SECONDS CMD...: run under timeout, log everything, remember the exit status
step() {
    local name=$1 limit=$2; shift 2
    say ""
    say "=== $name (limit ${limit}s, elapsed $(( $(date +%s) - START ))s) ==="
    say "+ $*"
    local t0=$(date +%s)
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$LOG"
    local rc=${PIPESTATUS[0]}
    local took=$(( $(date +%s) - t0 ))
    [ "$rc" = 124 ] && say "!!! $name timed out after ${limit}s"
    SUMMARY+=("$name: exit $rc, ${took}s")
}

say "gpu_check mode=$MODE python=$PYTHON SOFTEVAL_HOME=${SOFTEVAL_HOME:-<default>} results=$RESULTS"
say "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
"$PYTHON" - <<'EOF' 2>&1 | tee -a "$LOG"
import torch, transformers
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(),
      "device", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-", "transformers", transformers.__version__)
from softeval.engine.models import list_models
for m in list_models():
    print("model", m["name"], "fetched" if m["fetched"] else "MISSING", m["path"])
EOF
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,memory.used,utilization.gpu --format=csv 2>&1 | tee -a "$LOG"

if [ "$MODE" = gpu ]; then
    DEV=cuda
    step "train speed (softeval vs PEFT, bf16)" 140 "$PYTHON" -u benchmarks/train_speed.py --device cuda \
        --models smollm2-135m-instruct,gemma3-270m --precisions bf16 --steps 12 --out "$RESULTS/train_speed_cuda.json"
    step "sweep speed (lanes vs cell by cell vs PEFT)" 160 "$PYTHON" -u benchmarks/sweep_speed.py --device cuda \
        --out "$RESULTS/sweep_speed_cuda.json"
    step "chunked cross-entropy memory (Gemma-3, 8 x 256 targets)" 50 "$PYTHON" -u benchmarks/ce_memory.py \
        --device cuda --out "$RESULTS/ce_memory_cuda.json"
    EVAL_ARGS=(--device cuda --models gemma3-270m smollm2-135m-instruct --tasks arc_easy --limit 500 --precision bf16
               --repeats 1 --out "$RESULTS/eval_speed_cuda.json")
    EVAL_LIMIT=110
else
    DEV=cpu
    # tiny sizes: this proves every step runs; its numbers and TARGET verdicts mean nothing
    step "train speed (tiny, CPU)" 75 "$PYTHON" -u benchmarks/train_speed.py --device cpu \
        --models smollm2-135m-instruct --precisions bf16 --steps 3 --batch-size 1 --context-tokens 8 \
        --target-tokens 4 --peak-sizes 256 --peak-repeats 1 --out "$RESULTS/train_speed_cpu_smoke.json"
    step "sweep speed (quick, CPU)" 70 "$PYTHON" -u benchmarks/sweep_speed.py --device cpu --quick \
        --out "$RESULTS/sweep_speed_cpu_smoke.json"
    step "chunked cross-entropy memory (tiny Gemma-3, CPU)" 40 "$PYTHON" -u benchmarks/ce_memory.py --device cpu \
        --batch-size 1 --context-tokens 8 --target-tokens 8 --out "$RESULTS/ce_memory_cpu_smoke.json"
    EVAL_ARGS=(--device cpu --models smollm2-135m-instruct --tasks arc_easy --limit 5 --precision bf16 --repeats 1
               --out "$RESULTS/eval_speed_cpu_smoke.json")
    EVAL_LIMIT=40
fi

# the benchmark data (lm-eval's original file layouts): $SOFTEVAL_DATA, else ./shared/data or ../shared/data
DATA_DIR="${SOFTEVAL_DATA:-}"
if [ -z "$DATA_DIR" ]; then
    for d in ./shared/data ../shared/data; do [ -d "$d" ] && DATA_DIR="$d" && break; done
fi
[ -n "$DATA_DIR" ] && EVAL_ARGS+=(--data-dir "$DATA_DIR")

if [ -f benchmarks/eval_speed.py ]; then
    step "eval speed vs lm-eval" "$EVAL_LIMIT" "$PYTHON" -u benchmarks/eval_speed.py "${EVAL_ARGS[@]}"
else
    say ""
    say "=== eval speed: benchmarks/eval_speed.py not in this checkout; skipped ==="
    SUMMARY+=("eval speed: skipped (no benchmarks/eval_speed.py)")
fi

say ""
say "=== summary ($MODE on $DEV, total $(( $(date +%s) - START ))s; load average $(cut -d' ' -f1-3 /proc/loadavg)) ==="
for line in "${SUMMARY[@]}"; do say "$line"; done
grep -h '^TARGET ' "$LOG" | sort -u | tee -a "$LOG.targets"
say "log: $LOG"
