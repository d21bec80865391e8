#!/usr/bin/env bash
# GPU readiness in one run: prints one summary line per check,
#   CHECK <name>: PASS|FAIL|SKIP <figures or reason>
# and exits non-zero if a check failed.
#
#   cuda-tests   the test suite's CUDA cases (the tests named *cuda*; skipped without a GPU)
#   step-fp32    benchmarks/step_overhead.py: ResNet-18 audio-visual step at batch 64, float32
#   step-amp     the same with AMP (float16 autocast)
#   shared-gpu   a sweep of four trials sharing one GPU at 0.25 each: wall time and how many
#                trials ran at once (from the trials' own reports)
#   ddp-2gpu     a 2-worker DDP trial (NCCL) through Ray Train inside Tune, where two GPUs
#                exist, against one process on the same global batches (per-epoch AL weights
#                and training loss)
#
#   benchmarks/gpu_check.sh             on a machine with CUDA
#   benchmarks/gpu_check.sh --dry-run   on CPU with tiny sizes (gloo for DDP): checks the script
#
# Logs go to $GPU_CHECK_DIR (default: a fresh temporary folder), printed first. Ray runs
# privately (its own temp dir there); nothing outside that folder is written.
set -u
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
OUT=${GPU_CHECK_DIR:-$(mktemp -d /tmp/gpu_check.XXXXXX)}
mkdir -p "$OUT"
export RAY_TMPDIR="$OUT/ray" RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0 PYTHONUNBUFFERED=1
mkdir -p "$RAY_TMPDIR"
echo "gpu_check: logs in $OUT"
FAILED=0

summary() {  # name status text
    echo "CHECK $1: $2 $3"
    [ "$2" = FAIL ] && FAILED=1
    return 0
}

GPUS=$("$PYTHON" -c "import torch; print(torch.cuda.device_count())" 2>/dev/null || echo 0)
if [ "$DRY" = 1 ]; then
    DEVICE=cpu; BATCH=4; ROUNDS=3; WARMUP=1; EPOCHS=1; GPU_SHARE=0; DDP_GPU=0
else
    DEVICE=cuda; BATCH=64; ROUNDS=30; WARMUP=3; EPOCHS=3; GPU_SHARE=0.25; DDP_GPU=1
    if [ "$GPUS" -lt 1 ]; then
        echo "gpu_check: no CUDA device visible (torch.cuda.device_count() = $GPUS); use --dry-run on CPU" >&2
        exit 2
    fi
fi
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'devices', torch.cuda.device_count(), *[torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())])" | tee "$OUT/device.txt"

# ---------------------------------------------------------------- cuda-tests
if [ "$DRY" = 1 ]; then
    summary cuda-tests SKIP "dry run: the CUDA cases need a GPU"
else
    "$PYTHON" -m pytest tests -k cuda -q -rs -p no:cacheprovider >"$OUT/cuda_tests.log" 2>&1
    status=$?
    line=$(grep -E "[0-9]+ (passed|failed|error)" "$OUT/cuda_tests.log" | tail -1)
    if [ $status -eq 0 ] && ! grep -q "skipped" <<<"$line"; then
        summary cuda-tests PASS "$line"
    else
        summary cuda-tests FAIL "${line:-pytest exit $status} (see cuda_tests.log)"
    fi
fi

# ---------------------------------------------------------------- step overhead
step_check() {  # name, extra options
    local name=$1; shift
    "$PYTHON" benchmarks/step_overhead.py --device "$DEVICE" --batch-size "$BATCH" --rounds "$ROUNDS" \
        --warmup "$WARMUP" --strategies none,al,go,goal "$@" >"$OUT/$name.log" 2>&1
    local status=$?
    # rows: variant, median step (ms), median ratio, ratio IQR
    local rows
    rows=$(awk '$1=="none" || $1=="goal" {printf "%s %s ms (x%s) ", $1, $2, $3}' "$OUT/$name.log")
    if [ $status -eq 0 ] && [ -n "$rows" ]; then
        summary "$name" PASS "batch $BATCH on $DEVICE: ${rows}"
    else
        summary "$name" FAIL "exit $status (see $name.log)"
    fi
}
step_check step-fp32
step_check step-amp --amp

# ---------------------------------------------------------------- four trials on one GPU
cat >"$OUT/shared_gpu.yaml" <<EOF
name: gpu_check_shared
base: {dataset: mfeat, backbone: mlp, epochs: $EPOCHS, batch_size: 64, diagnostics: false}
grid:
  strategy: [goal]
  seed: [0, 1, 2, 3]
resources: {cpu: 1, gpu: 0}
EOF
"$PYTHON" runners/sweep.py "$OUT/shared_gpu.yaml" --name shared --storage "$OUT/results" \
    --gpus-per-trial "$GPU_SHARE" --max-concurrent 4 --max-failures 0 >"$OUT/shared_gpu.log" 2>&1
status=$?
# How many trials ran at once: the overlap of the trials' [start, end] in their reports.
overlap=$("$PYTHON" - "$OUT/results/shared" <<'EOF' 2>>"$OUT/shared_gpu.log"
import json, sys
from pathlib import Path
spans = []
for log in Path(sys.argv[1]).glob("*/result.json"):
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    if rows:
        spans.append((rows[0]["timestamp"] - rows[0].get("time_this_iter_s", 0), rows[-1]["timestamp"]))
events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
running = peak = 0
for _, change in events:
    running += change
    peak = max(peak, running)
print(f"{len(spans)} trial logs, up to {peak} at once")
EOF
)
finished=$(grep -E "trials finished; this run took" "$OUT/shared_gpu.log" | tail -1)
if [ $status -eq 0 ] && grep -q "^4/4 trials finished" <<<"$finished"; then
    summary shared-gpu PASS "gpu $GPU_SHARE per trial: $finished; $overlap"
else
    summary shared-gpu FAIL "exit $status: ${finished:-no summary} (see shared_gpu.log)"
fi

# ---------------------------------------------------------------- 2-worker DDP
if [ "$DRY" = 0 ] && [ "$GPUS" -lt 2 ]; then
    summary ddp-2gpu SKIP "needs two GPUs, this machine has $GPUS"
else
    "$PYTHON" - "$DEVICE" "$DDP_GPU" "$EPOCHS" >"$OUT/ddp.log" 2>&1 <<'EOF'
import json, os, sys, time

import ray
from ray import tune

from goal_plugin.engine import fit
from goal_plugin.tune.distributed import TRIAL_DRIVER_RESOURCES, train_ddp_trial

device, gpu, epochs = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
config = {"strategy": "al", "epochs": epochs, "batch_size": 64, "lr": 0.05, "device": device, "diagnostics": False}
ray.init(**({} if gpu else {"num_cpus": 2}), include_dashboard=False, log_to_driver=False)
trainable = tune.with_resources(tune.with_parameters(train_ddp_trial, workers=2, cpu=1, gpu=gpu), TRIAL_DRIVER_RESOURCES)
started = time.perf_counter()
[result] = list(tune.Tuner(trainable, param_space=config,
                           run_config=tune.RunConfig(storage_path=os.path.join(os.environ["RAY_TMPDIR"], "ddp_results"), verbose=0)).fit())
wall = time.perf_counter() - started
if result.error is not None:
    raise SystemExit(f"the trial failed: {result.error}")
history = [json.loads(line) for line in open(f"{result.path}/result.json")]
history = [row for row in history if not row.get("final")]
single = fit(config)["history"]
keys = ["train_loss"] + [k for k in single[0] if k.startswith("weight_")]
worst = max(abs(row[k] - one[k]) for row, one in zip(history, single) for k in keys)
print(f"SUMMARY {len(history)} epochs in {wall:.1f} s wall; max |2 workers - 1 process| over "
      f"{', '.join(keys)}: {worst:.2e}; val_acc {history[-1]['val_acc']:.4f} vs {single[-1]['val_acc']:.4f}")
raise SystemExit(0 if len(history) == epochs and worst < 1e-4 else 1)
EOF
    status=$?
    line=$(grep "^SUMMARY" "$OUT/ddp.log" | sed 's/^SUMMARY //')
    if [ $status -eq 0 ]; then
        summary ddp-2gpu PASS "$line"
    else
        summary ddp-2gpu FAIL "exit $status: ${line:-no summary} (see ddp.log)"
    fi
fi
exit $FAILED
