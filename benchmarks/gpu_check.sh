#!/usr/bin/env bash
# Issue 5's GPU numbers in ONE device call (about 8 minutes, no installs).
#
# Before the call, in the repo root on the CPU machine (.peer/ is git-ignored):
#   mkdir -p .peer && cp ../shared/bench/torch_peer.py .peer/
# The call:  run(command="bash benchmarks/gpu_check.sh", carry=[".peer"], timeout_s=570)
#
# Needs only what the GPU image has (python3 with jax, flax, optax; torch for the peer).
# Writes to $OUT (7 files at most): gpu.txt, paper.log, paper/bench.md (THE table),
# paper/bench.jsonl, ablation.log, and one log per XLA-flag experiment that fits.
# Every step is bounded by `timeout`; bench.py rewrites its table after each row,
# so a cut step still returns the rows it finished. Most important rows first.
set -u
OUT=${OUT:-/tmp/c2g_gpu_check}
SIZE=${GPU_CHECK_SIZE:-paper}   # GPU_CHECK_SIZE=tiny GPU_CHECK_K=2: a smoke test on a CPU
K=${GPU_CHECK_K:-50}
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"
cd "$(dirname "$0")/.."

{
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv
  $PY -c 'import jax, flax, optax; print("jax", jax.__version__, "flax", flax.__version__, "optax", optax.__version__, jax.devices())'
  $PY -c 'import torch; print("torch", torch.__version__)' 2>&1 | tail -1
  ls -l .peer/torch_peer.py 2>&1
} 2>&1 | tee "$OUT/gpu.txt"

# 1. The table the targets are judged on: the torch peer (run first, both
#    datasets), ours at f32 and bf16 with 50 iterations per dispatch and donated
#    buffers, and 8 vmapped EMNIST attacks at the faster of the two.
timeout 300 $PY benchmarks/bench.py --size=$SIZE --datasets=emnist,facescrub \
  --variants=f32-auto-k$K-donate,bf16-auto-k$K-donate \
  --vmap=8 --vmap_datasets=emnist --budget_s=240 --peer_iters=300 \
  --out="$OUT/paper" 2>&1 | tee "$OUT/paper.log"

# 2. One change at a time: K=1, no donation, the other conv lowering (also vmapped).
if (( SECONDS < 330 )); then
  timeout $(( 450 - SECONDS )) $PY benchmarks/bench.py --size=$SIZE \
    --datasets=emnist,facescrub --peer=none --budget_s=$(( 400 - SECONDS )) \
    --variants=f32-auto-k1-nodonate,f32-auto-k1-donate,f32-other-k$K-donate,bf16-other-k$K-donate \
    --facescrub_variants=f32-auto-k1-nodonate,bf16-other-k$K-donate \
    --vmap=8 --vmap_datasets=emnist --vmap_variants=bf16-other-k$K-donate \
    2>&1 | tee "$OUT/ablation.log" | grep '^  |'
else
  echo "skipped the ablation: ${SECONDS}s used" | tee -a "$OUT/gpu.txt"
fi

# 3. XLA flags against the same two EMNIST rows, while time is left.
for flags in --xla_gpu_enable_triton_gemm=false --xla_gpu_enable_command_buffer=; do
  if (( SECONDS > 420 )); then
    echo "skipped XLA_FLAGS=$flags: ${SECONDS}s used" | tee -a "$OUT/gpu.txt"
    continue
  fi
  name=$(echo "$flags" | tr -dc 'a-z_' | sed 's/^xla_gpu_//' | cut -c1-30)
  timeout $(( 490 - SECONDS )) $PY benchmarks/bench.py --size=$SIZE --datasets=emnist \
    --variants=f32-auto-k$K-donate,bf16-auto-k$K-donate --vmap=0 --peer=none \
    --xla_flags="$flags" 2>&1 | tee "$OUT/flags_$name.log" | grep '^  |'
done

echo "=== gpu_check done in ${SECONDS}s; the table:"
cat "$OUT/paper/bench.md" 2>/dev/null || tail -40 "$OUT/paper.log"
