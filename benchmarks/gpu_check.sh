#!/usr/bin/env bash
# The GPU numbers of issues 3, 4 and 5 in ONE device call (about 9 minutes).
#
# Before the call, in the repo root on the CPU machine (.peer/ and .whl/ are git-ignored):
#   mkdir -p .peer && cp ../shared/bench/torch_peer.py .peer/
#   benchmarks/fetch_gpu_wheels.sh      # tensorflow-datasets + ml_collections for main.py
# The call:  run(command="bash benchmarks/gpu_check.sh", carry=[".peer", ".whl"], timeout_s=580)
#
# Writes to $OUT (8 files at most): gpu.txt, bench.log, bench.md (THE speed table),
# bench.jsonl, run.log + run.tar.gz (a paper-size `python main.py` run: report, samples,
# metrics; no checkpoints), control.log and ablation.log when time is left.
# Every step is bounded by `timeout` against one deadline, most important first;
# bench.py rewrites its table after each row, so a cut step still returns what it finished.
set -u
OUT=${OUT:-/tmp/c2g_gpu_check}
SIZE=${GPU_CHECK_SIZE:-paper}   # GPU_CHECK_SIZE=tiny GPU_CHECK_K=2: a smoke test on a CPU
K=${GPU_CHECK_K:-50}
DEADLINE=${GPU_CHECK_DEADLINE:-560}  # seconds; keep under the call's timeout_s
RUN_ARG=${GPU_CHECK_RUN:-numeric_mutually_exclusive}  # configs/emnist.py argument
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
left() { echo $(( DEADLINE - SECONDS )); }

{
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv
  $PY -c 'import jax, flax, optax, orbax.checkpoint as o; print("jax", jax.__version__, "flax", flax.__version__, "optax", optax.__version__, "orbax", o.__version__, jax.devices())'
  $PY -c 'import torch; print("torch", torch.__version__)' 2>&1 | tail -1
  ls -l .peer/torch_peer.py 2>&1
  # main.py needs tensorflow-datasets and ml_collections, which the GPU image lacks.
  if ls .whl/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl && echo "wheels installed: $(ls .whl | wc -l)"
  fi
} 2>&1 | tee "$OUT/gpu.txt"
[ -d /tmp/site ] && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}

# 1. The speed table: the torch peer (both datasets), ours at f32 and bf16 with K
#    iterations per dispatch and donated buffers, 8 vmapped EMNIST attacks.
timeout $(( $(left) - 250 > 60 ? $(left) - 250 : 60 )) $PY benchmarks/bench.py --size=$SIZE \
  --datasets=emnist,facescrub --variants=f32-auto-k$K-donate,bf16-auto-k$K-donate \
  --vmap=8 --vmap_datasets=emnist --budget_s=$(( $(left) - 300 > 30 ? $(left) - 300 : 30 )) \
  --peer_iters=300 --out="$OUT" 2>&1 | tee "$OUT/bench.log"

# 2. The user's command at the paper's EMNIST size (20k generator steps, full width,
#    f and f' trained on the embedded sample), report included.
if $PY -c 'import tensorflow_datasets, ml_collections' 2>/dev/null && (( $(left) > 90 )); then
  run_size=$([ "$SIZE" = paper ] && echo paper || echo tiny)
  timeout $(( $(left) - 15 )) $PY main.py --config=configs/emnist.py:$RUN_ARG,$run_size \
    --workdir=/tmp/c2g_run --config.checkpoint_every_steps=5000 2>&1 \
    | grep -v 'orbax\|absl::' | tee "$OUT/run.log" | grep -v '^I[0-9]' | tail -12
  tar -czf "$OUT/run.tar.gz" -C /tmp/c2g_run --exclude=checkpoints --exclude=classifier \
    --exclude=evaluator . 2>/dev/null
else
  echo "skipped the paper-size run: tensorflow-datasets/ml_collections missing or $(left)s left" \
    | tee -a "$OUT/gpu.txt"
fi

# 2b. The same with gamma held at 0 (no classifier term), f and f' loaded from step 2:
#     the control that tells leaked class evidence from the GAN's own prior.
if [ -f /tmp/c2g_run/results.json ] && (( $(left) > 200 )); then
  timeout $(( $(left) - 10 )) $PY main.py --config=configs/emnist.py:$RUN_ARG,$run_size \
    --workdir=/tmp/c2g_control --config.attack.gamma_increment=0 \
    --config.classifier.checkpoint=/tmp/c2g_run/classifier \
    --config.evaluator.checkpoint=/tmp/c2g_run/evaluator \
    --config.checkpoint_every_steps=5000 2>&1 | grep -v 'orbax\|absl::' \
    | tee "$OUT/control.log" | grep -v '^I[0-9]' | tail -8
fi

# 3. One change at a time, while time is left: K=1, no donation, the other conv lowering.
if (( $(left) > 100 )); then
  timeout $(( $(left) - 10 )) $PY benchmarks/bench.py --size=$SIZE --datasets=emnist \
    --peer=none --budget_s=$(( $(left) - 40 )) --vmap=0 \
    --variants=f32-auto-k1-nodonate,f32-auto-k1-donate,f32-other-k$K-donate \
    2>&1 | tee "$OUT/ablation.log" | grep '^  |'
else
  echo "skipped the ablation: ${SECONDS}s used" | tee -a "$OUT/gpu.txt"
fi

echo "=== gpu_check done in ${SECONDS}s; the table:"
cat "$OUT/bench.md" 2>/dev/null || tail -40 "$OUT/bench.log"
