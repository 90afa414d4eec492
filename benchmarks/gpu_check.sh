#!/usr/bin/env bash
# Issue 13 item 2's GPU numbers in ONE device call (about 9 minutes on an H200).
#
# Before the call, in the repo root on the CPU machine (.peer/ and .whl/ are git-ignored):
#   mkdir -p .peer && cp ../shared/bench/torch_peer.py .peer/
#   benchmarks/fetch_gpu_wheels.sh      # only for GPU_CHECK_MAIN=1 (main.py needs tfds)
# The call:  run(command="bash benchmarks/gpu_check.sh", carry=[".peer", ".whl"], timeout_s=580)
#
# Steps, most important first, each cut by `timeout` against one deadline (DEADLINE s after
# the start; bench.py rewrites its tables after every row, so a cut step keeps its rows).
# Time budget per step on the H200 (compile ~20-40 s per program, from the 2026-11-28 call):
#   0. environment: nvidia-smi, versions, wheels                                   ~10 s
#   1. ONE bench.py process, up to DEADLINE-STEP2_S (~370 s), in this order: the torch peer
#      on both datasets (~50 s, first, before JAX takes the GPU); ours EMNIST f32 and bf16
#      (K iterations per dispatch, donated; ~40-60 s each with the FLOP count); a
#      jax.profiler trace of the faster (1 call of K iterations, ~15 s); FaceScrub bf16 and
#      its trace (~80 s); last, so that a cut falls on it, 8 vmapped EMNIST attacks of the
#      fastest EMNIST variant (~60 s): bench.md, profile.md. Rows are not started after
#      --budget_s (timeout - 45 s); profiles are (seconds each), the timeout guards them.
#   2. the XLA flag sweep, STEP2_S (~180 s): EMNIST bf16 with each flag alone, one fresh
#      process per setting (~30-40 s each), the first with no extra flags: flags.md.
#   3. the K=1 / no-donation / other-conv ablation (f32 EMNIST), only if >100 s are left.
#   4. `python main.py` at the paper's EMNIST size, only with GPU_CHECK_MAIN=1 (issues 3/4,
#      measured 2026-11-28; it takes the whole call's time on its own): one run per setting
#      of GPU_CHECK_RUN (comma list), on GPU_CHECK_DATA (a data file carried with the tree;
#      '' = the embedded sample), with GPU_CHECK_ARGS added to main.py's flags, while
#      nvidia-smi samples the GPU's use every 5 s: run_<setting>.tar.gz (report, results,
#      logs; no checkpoints), dmon.txt.
# GPU_CHECK_STEPS picks the steps (default 123; GPU_CHECK_MAIN=1 adds 4). Issue 11's
# paper-size audit on the half sample, step 4 alone (.gpu_data/ is git-ignored):
#   mkdir -p .gpu_data && cp ../shared/data/emnist/emnist_byclass_test_half.npz .gpu_data/
#   run(command="GPU_CHECK_STEPS=4 GPU_CHECK_MAIN=1 GPU_CHECK_DEADLINE=588
#       GPU_CHECK_RUN=numeric_mutually_exclusive
#       GPU_CHECK_DATA=.gpu_data/emnist_byclass_test_half.npz
#       GPU_CHECK_ARGS='--config.attack.compute_dtype=bfloat16 --config.evaluator.max_seeds=2'
#       bash benchmarks/gpu_check.sh", carry=[".whl", ".gpu_data"], timeout_s=600)
# took 479 s on an H200 on 2026-12-04 (f, f' 40 s; attack 138 s; control 125 s; report
# ~110 s): one setting per call, the 15 minutes of a session's device time allow no second.
# Files in $OUT (8 at most come back): gpu.txt (environment, step times), bench.log (all
# output), bench.md + bench.jsonl (the speed table), profile.md (top ops by time), flags.md
# (the flag sweep), traces.tar.gz (perfetto traces while under 15 MB, the programs' HLO
# text, flags.jsonl, the ablation's table), run.tar.gz (step 4).
#
# GPU_CHECK_SIZE=tiny GPU_CHECK_K=2 GPU_CHECK_DEADLINE=400 bash benchmarks/gpu_check.sh
# smoke-tests the script on a CPU (minutes there: tiny compiles are slow on XLA:CPU).
set -u
OUT=${OUT:-/tmp/c2g_gpu_check}
SIZE=${GPU_CHECK_SIZE:-paper}
K=${GPU_CHECK_K:-50}
DEADLINE=${GPU_CHECK_DEADLINE:-560}  # seconds; keep under the call's timeout_s
STEP2_S=${GPU_CHECK_STEP2_S:-180}    # seconds kept for the flag sweep
RUN_ARG=${GPU_CHECK_RUN:-numeric_mutually_exclusive}  # configs/emnist.py argument
DATA=${GPU_CHECK_DATA:-}  # step 4's --config.data.source ('' = the embedded sample)
ARGS=${GPU_CHECK_ARGS:-}  # step 4's further main.py flags
STEPS=${GPU_CHECK_STEPS:-123}
[ "${GPU_CHECK_MAIN:-0}" = 1 ] && STEPS="${STEPS}4"
PY=${PYTHON:-python3}
SCRATCH=${GPU_CHECK_SCRATCH:-/tmp/c2g_gpu_scratch}
# Each alone, most telling first (flag names checked against jax 0.10.2's XLA; the GPU
# image has jax 0.11.2: a flag its XLA lacks gives a 'failed ... Unknown flag' row).
#   command buffers (CUDA graphs) off / over the whole K-iteration while loop: launch overhead
#   cuDNN convolutions forced to NHWC: layouts
#   cuBLAS instead of Triton for the GEMM fusions; no autotuning; the latency hiding scheduler
FLAGS=${GPU_CHECK_FLAGS:-"--xla_gpu_enable_command_buffer=;\
--xla_gpu_enable_command_buffer=FUSION,CUBLAS,CUBLASLT,CUSTOM_CALL,CUDNN,WHILE,CONDITIONAL;\
--xla_gpu_force_conv_nhwc=true;\
--xla_gpu_enable_triton_gemm=false;\
--xla_gpu_autotune_level=0;\
--xla_gpu_enable_latency_hiding_scheduler=true"}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT" "$SCRATCH"
cd "$(dirname "$0")/.."
left() { echo $(( DEADLINE - SECONDS )); }
step_on() { [[ $STEPS == *$1* ]]; }
stamp() { echo "[${SECONDS}s] $*" | tee -a "$OUT/gpu.txt"; }

{
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv
  $PY -c 'import jax, flax, optax; print("jax", jax.__version__, "flax", flax.__version__, "optax", optax.__version__, jax.devices())'
  $PY -c 'import torch; print("torch", torch.__version__)' 2>&1 | tail -1
  ls -l .peer/torch_peer.py 2>&1
  if [ "${GPU_CHECK_MAIN:-0}" = 1 ] && ls .whl/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl && echo "wheels installed: $(ls .whl | wc -l)"
  fi
} 2>&1 | tee "$OUT/gpu.txt"
[ -d /tmp/site ] && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}

# 1. The speed table with the torch peer, 8 vmapped attacks, and the two profiles.
if step_on 1; then
stamp "step 1: speed table + profiles"
t1=$(( $(left) - STEP2_S )); (( t1 < 60 )) && t1=60
timeout $t1 $PY benchmarks/bench.py --size=$SIZE --datasets=emnist,facescrub \
  --variants=f32-auto-k$K-donate,bf16-auto-k$K-donate --facescrub_variants=bf16-auto-k$K-donate \
  --vmap=8 --vmap_datasets=emnist --vmap_last --budget_s=$(( t1 - 45 > 20 ? t1 - 45 : 20 )) \
  --peer_iters=150 --profile="$SCRATCH/profile" --profile_variants=best --profile_calls=1 \
  --out="$OUT" 2>&1 | tee "$OUT/bench.log" | grep -v '^  peer:\|^[IWE][0-9]'
fi

# 2. XLA flags, each alone, on the EMNIST bf16 program (fresh process per setting).
if step_on 2 && (( $(left) > 45 )); then
  stamp "step 2: XLA flag sweep"
  timeout $(( $(left) - 5 )) $PY benchmarks/bench.py --size=$SIZE --datasets=emnist \
    --variants=bf16-auto-k$K-donate --xla_flags_variants="$FLAGS" \
    --budget_s=$(( $(left) - 40 )) --out="$SCRATCH/flags" 2>&1 | tee -a "$OUT/bench.log"
  cp "$SCRATCH/flags/flags.md" "$OUT/" 2>/dev/null
fi

# 3. One change at a time, while time is left: K=1, no donation, the other conv lowering.
if step_on 3 && (( $(left) > 100 )); then
  stamp "step 3: ablation"
  timeout $(( $(left) - 10 )) $PY benchmarks/bench.py --size=$SIZE --datasets=emnist \
    --peer=none --budget_s=$(( $(left) - 40 )) --vmap=0 --out="$SCRATCH/ablation" \
    --variants=f32-auto-k1-nodonate,f32-auto-k1-donate,f32-other-k$K-donate \
    2>&1 | tee -a "$OUT/bench.log" | grep '^  |'
elif step_on 3; then
  stamp "skipped step 3 (ablation): $(left) s left"
fi

# 4. The user's command at the paper's EMNIST size, report included (opt-in), per setting.
if step_on 4 && $PY -c 'import tensorflow_datasets, ml_collections, tensorboardX' \
    2>/dev/null; then
  run_size=$([ "$SIZE" = paper ] && echo paper || echo tiny)
  nvidia-smi dmon -s u -d 5 > "$OUT/dmon.txt" 2>&1 &
  dmon=$!
  for setting in ${RUN_ARG//,/ }; do
    (( $(left) > 90 )) || { stamp "skipped main.py $setting: $(left) s left"; continue; }
    stamp "step 4: main.py $setting,$run_size ${DATA:+on $DATA} $ARGS"
    wd=/tmp/c2g_run/$setting/workdir  # main.py wants a new or empty one: the log goes beside it
    mkdir -p "$wd"
    # SIGTERM at the deadline: main.py saves at its next dispatch and says where it stopped.
    timeout $(( $(left) - 15 )) $PY main.py --config=configs/emnist.py:$setting,$run_size \
      --workdir="$wd" --config.checkpoint_every_steps=5000 --config.sample_every_steps=5000 \
      ${DATA:+--config.data.source="$DATA"} $ARGS 2>&1 | grep -v 'orbax\|absl::' \
      | tee "$wd/../run.log" | grep -v '^I[0-9]' | tail -40
    stamp "main.py $setting ended"
    tar -czf "$OUT/run_$setting.tar.gz" -C "$wd/.." --exclude=checkpoints --exclude=classifier \
      --exclude=evaluators . 2>/dev/null
  done
  kill $dmon 2>/dev/null
elif step_on 4; then
  stamp "skipped step 4: tensorflow_datasets, ml_collections or tensorboardX missing (.whl?)"
fi

# Pack: the HLO texts, flags.jsonl, the ablation's table, and the traces while under 15 MB.
stamp "packing"
( cd "$SCRATCH" && {
    find profile -name program.hlo.txt 2>/dev/null
    ls flags/flags.jsonl ablation/bench.md 2>/dev/null
  } > list.txt
  size=0
  for f in $(find profile -name perfetto_trace.json.gz 2>/dev/null | sort); do
    s=$(stat -c %s "$f"); if (( size + s < 12000000 )); then echo "$f" >> list.txt; size=$((size + s)); fi
  done
  tar -czf "$OUT/traces.tar.gz" -T list.txt 2>/dev/null )
ls -l "$OUT" | tee -a "$OUT/gpu.txt"

echo "=== gpu_check done in ${SECONDS}s"
for f in bench.md profile.md flags.md; do echo; echo "=== $f"; cat "$OUT/$f" 2>/dev/null; done
if [ -f "$SCRATCH/ablation/bench.md" ]; then
  echo; echo "=== ablation"; grep '^|' "$SCRATCH/ablation/bench.md"
fi
