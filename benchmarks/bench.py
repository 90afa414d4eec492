"""Speed of PreImageGAN training: one table of generator iterations per second.

One generator iteration = n_critic WGAN-GP critic steps + one generator step
with the classifier term (batch 64 at --size=paper). Rows:
  * ours, per dataset, at each variant DTYPE-CONV-kK-DONATION, e.g.
    'f32-xla-k50-donate': f32 or bf16 activations (c2g_jax.attack Hyper.compute_dtype),
    XLA's conv or im2col ('auto' = the backend default), K generator iterations
    per dispatch (one jitted lax.scan), state buffers donated or not;
  * the eager PyTorch peer (../shared/bench/torch_peer.py, paper size only), run
    first in a subprocess so that JAX has not yet taken the GPU's memory;
  * the vmapped mode (c2g_jax.multi): N attacks in one program, aggregate rate.
Columns: gen-iter/s, ms per iteration, GFLOP per iteration (XLA's cost
analysis), share of the FLOP floor (FLOPs / the device's measured matmul rate
for that dtype, over the measured time), XLA's memory for the compiled program
(arguments + outputs + temporaries) and the device's peak memory so far.

  python benchmarks/bench.py --size=tiny                  # CPU, a few minutes
  python benchmarks/bench.py --size=paper --out=DIR       # GPU

Imports only jax, flax, optax, numpy and c2g_jax's model modules (no
tensorflow-datasets, no ml_collections), so it runs on a bare GPU image.
"""

import argparse
import datetime
import importlib.util
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, 'benchmarks'))  # profile_step

SIZES = {
    # width: G and D channel multiplier; f_width: the attacked classifier's.
    'tiny': dict(
        width=1 / 16,
        f_width=1 / 8,
        batch_size=16,
        n_critic=5,
        n_aux=512,
        k=10,
        min_time=1.0,
        matmul_n=1024,
    ),
    'cpu': dict(
        width=0.25,
        f_width=0.5,
        batch_size=64,
        n_critic=5,
        n_aux=4096,
        k=10,
        min_time=3.0,
        matmul_n=2048,
    ),
    'paper': dict(
        width=1.0,
        f_width=1.0,
        batch_size=64,
        n_critic=5,
        n_aux=50_000,
        k=50,
        min_time=3.0,
        matmul_n=8192,
    ),
}
# As the peer: EMNIST byclass has 62 classes; the FaceScrub attack uses 100 people.
NUM_CLASSES = {'emnist': 62, 'facescrub': 100}
DTYPES = {'f32': 'float32', 'bf16': 'bfloat16'}


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--size', choices=tuple(SIZES), default='tiny')
  p.add_argument('--datasets', default='emnist,facescrub')
  p.add_argument(
      '--variants',
      default='',
      help="comma list of DTYPE-CONV-kK-(donate|nodonate); '' = the size's default "
      "ablation; CONV 'other' = the impl that is not the backend default",
  )
  p.add_argument(
      '--facescrub_variants',
      default='',
      help="variants for facescrub if different ('' = same as --variants)",
  )
  p.add_argument('--vmap', type=int, default=8, help='attacks in the vmapped rows (0: none)')
  p.add_argument('--vmap_datasets', default='emnist')
  p.add_argument(
      '--vmap_last',
      action='store_true',
      help="the vmapped rows after every dataset's rows (default: after their "
      "dataset's, before the next dataset's)",
  )
  p.add_argument(
      '--vmap_variants',
      default='best',
      help="variants for the vmapped rows, comma-separated; 'best' = the fastest single row's",
  )
  p.add_argument('--k', type=int, default=0, help="K of the default variants (0: the size's)")
  p.add_argument(
      '--min_time',
      type=float,
      default=0.0,
      help='seconds timed per row, in 3 rounds (0: the size default)',
  )
  p.add_argument(
      '--peer',
      default='auto',
      help="torch_peer.py path; 'auto' = .peer/ then ../shared/bench/; 'none' = skip",
  )
  p.add_argument('--peer_iters', type=int, default=300)
  p.add_argument('--xla_flags', default='', help='appended to XLA_FLAGS before JAX starts')
  p.add_argument(
      '--budget_s',
      type=float,
      default=0.0,
      help='skip the rows that would start after this many seconds (0: no limit)',
  )
  p.add_argument('--out', default='', help='folder for bench.md and bench.jsonl')
  p.add_argument(
      '--flops_only',
      action='store_true',
      help='compile and count FLOPs, skip timing (paper-size counts on a CPU)',
  )
  p.add_argument(
      '--no_flops',
      action='store_true',
      help='skip the FLOP count (the floor share is then n/a; for the flag sweep)',
  )
  p.add_argument(
      '--profile',
      default='',
      help='folder: profile variants under jax.profiler.trace and write '
      'profile.md (top ops by time; see profile_step.py)',
  )
  p.add_argument(
      '--profile_variants',
      default='best',
      help="'best' = the fastest single row of each dataset, 'all', or a comma list",
  )
  p.add_argument(
      '--profile_calls',
      type=int,
      default=2,
      help='traced calls of the K-iteration program (after one warm call)',
  )
  p.add_argument('--profile_top', type=int, default=25)
  p.add_argument(
      '--xla_flags_variants',
      default='',
      help="';'-separated XLA_FLAGS settings, each measured alone in a subprocess on "
      'the first --variants entry of the first --datasets entry, after a run '
      'with none; writes flags.md. Only this sweep runs (e.g. '
      "'--xla_gpu_enable_triton_gemm=false;--xla_gpu_autotune_level=0')",
  )
  p.add_argument(
      '--cache_dir',
      default='',
      help='JAX persistent compilation cache (reruns skip compiles; compile '
      'times then show cache hits)',
  )
  return p.parse_args(argv)


# ----------------------------------------------------------------------- peer


def find_peer(arg):
  if arg == 'none':
    return None
  if arg != 'auto':
    return arg
  for path in (
      os.path.join(REPO, '.peer', 'torch_peer.py'),
      os.path.join(REPO, '..', 'shared', 'bench', 'torch_peer.py'),
  ):
    if os.path.exists(path):
      return path
  return None


def run_peer(args, datasets):
  """Rows of the eager PyTorch peer, or a note saying why there are none."""
  if args.size != 'paper':
    return [], f'torch peer skipped: it runs paper-size networks only (--size={args.size})'
  path = find_peer(args.peer)
  if path is None:
    return [], 'torch peer skipped: no torch_peer.py in .peer/ or ../shared/bench/ (--peer=PATH)'
  if importlib.util.find_spec('torch') is None:
    return [], 'torch peer skipped: torch is not installed here'
  env = dict(os.environ, PEER_ITERS=str(args.peer_iters))
  try:
    proc = subprocess.run(
        [sys.executable, path] + datasets, env=env, capture_output=True, text=True, timeout=600
    )
  except subprocess.TimeoutExpired:
    return [], 'torch peer timed out after 600 s'
  rows = []
  for line in proc.stdout.splitlines():
    print('  peer:', line, flush=True)
    m = re.match(r'torch-eager (\w+): ([\d.]+) gen-iter/s', line)
    if m:
      rate = float(m.group(2))
      rows.append(
          dict(
              dataset=m.group(1),
              impl='torch eager (peer)',
              variant='f32 cudnn',
              n=1,
              rate=rate,
              ms=1e3 / rate,
          )
      )
  note = (
      ''
      if proc.returncode == 0
      else f'torch peer failed (rc {proc.returncode}): '
      + (proc.stderr.strip().splitlines() or [''])[-1]
  )
  return rows, note


# ----------------------------------------------------------------------- ours


def parse_variant(spec, default_conv):
  parts = spec.split('-')
  try:
    dtype, conv, k, donation = parts
    assert dtype in DTYPES and k[0] == 'k' and donation in ('donate', 'nodonate')
    k = int(k[1:])
  except (ValueError, AssertionError, IndexError):
    raise SystemExit(
        f'--variants: bad variant {spec!r}; write DTYPE-CONV-kK-DONATION, '
        'e.g. f32-xla-k50-donate (DTYPE f32|bf16, CONV xla|im2col|auto|other, '
        'DONATION donate|nodonate)'
    )
  other = 'xla' if default_conv == 'im2col' else 'im2col'
  conv = {'auto': default_conv, 'other': other}.get(conv, conv)
  if conv not in ('xla', 'im2col'):
    raise SystemExit(f'--variants: bad conv impl in {spec!r}; use xla, im2col, auto or other')
  return dict(
      dtype=dtype,
      conv=conv,
      k=k,
      donate=donation == 'donate',
      name=f'{dtype}-{conv}-k{k}-{donation}',
  )


def default_variants(size, dataset, k):
  """One change at a time from a base variant.

  On a GPU the base is the fast one (K per dispatch, donated buffers); on CPU
  compiles are slow (30-80 s each on 2 shared cores) and the slow variants
  slower, so dtype and conv are compared at K=1 and facescrub gets one row.
  """
  if size == 'paper':
    return [
        'f32-auto-k1-nodonate',
        'f32-auto-k1-donate',
        f'f32-auto-k{k}-donate',
        f'bf16-auto-k{k}-donate',
        f'f32-other-k{k}-donate',
        f'bf16-other-k{k}-donate',
    ]
  if dataset == 'facescrub':
    return [f'f32-auto-k{k}-donate']
  return [
      'f32-auto-k1-nodonate',
      'f32-auto-k1-donate',
      f'f32-auto-k{k}-donate',
      'bf16-auto-k1-donate',
      'f32-other-k1-donate',
  ]


def main(argv=None):
  args = parse_args(argv)
  if args.xla_flags:
    os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') + ' ' + args.xla_flags).strip()
  size = dict(SIZES[args.size])
  if args.k:
    size['k'] = args.k
  if args.min_time:
    size['min_time'] = args.min_time
  datasets = [d for d in args.datasets.split(',') if d]
  for d in datasets:
    if d not in NUM_CLASSES:
      raise SystemExit(f'--datasets: unknown dataset {d!r}; choose from {tuple(NUM_CLASSES)}')
  start = time.perf_counter()
  if args.xla_flags_variants:
    return flag_sweep(args, size, datasets, start)

  # The peer first: JAX would otherwise hold most of the GPU's memory.
  peer_rows, peer_note = run_peer(args, datasets)

  if args.cache_dir:
    import jax  # pylint: disable=g-import-not-at-top

    jax.config.update('jax_compilation_cache_dir', args.cache_dir)
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.5)
  bench = _Bench(args, size, start)
  bench.header()
  for row in peer_rows:
    bench.add(row)
  if peer_note:
    bench.notes.append(peer_note)
  for dataset in datasets:
    specs = args.variants or ','.join(default_variants(args.size, dataset, size['k']))
    if dataset == 'facescrub' and args.facescrub_variants:
      specs = args.facescrub_variants
    for spec in specs.split(','):
      bench.single(dataset, parse_variant(spec, bench.default_conv))
    if args.profile:
      bench.profile_dataset(dataset)
    # Before the next dataset's rows, so that a --budget_s cut falls on those
    # (--vmap_last: after every dataset's rows, so that the cut falls on the vmapped ones).
    if not args.vmap_last:
      _vmapped_rows(bench, args, dataset)
  if args.vmap_last:
    for dataset in datasets:
      _vmapped_rows(bench, args, dataset)
  bench.finish()


def _vmapped_rows(bench, args, dataset):
  if not args.vmap or dataset not in args.vmap_datasets.split(','):
    return
  specs = []
  for spec in args.vmap_variants.split(','):
    if spec == 'best':  # the fastest single row of this dataset so far
      ours = [
          r
          for r in bench.rows
          if r['dataset'] == dataset and r['n'] == 1 and r['impl'] == 'ours' and r.get('rate')
      ]
      if not ours:
        continue
      spec = max(ours, key=lambda r: r['rate'])['variant']
    if spec not in specs:
      specs.append(spec)
  for spec in specs:
    variant = parse_variant(spec, bench.default_conv)
    bench.single(dataset, variant)  # the N=1 reference (skipped if already run)
    bench.vmapped(dataset, variant, args.vmap)


# ----------------------------------------------------------------- flag sweep


def flag_sweep(args, size, datasets, start):
  """Each XLA_FLAGS setting alone, in its own process, on one variant; flags.md.

  A fresh process per setting because XLA reads XLA_FLAGS once, when the backend
  starts. The first row runs with no extra flags, as the reference. A flag the
  installed XLA does not know makes that process fail ('Unknown flag in XLA_FLAGS'):
  its row says so and the sweep goes on.
  """
  spec = (args.variants or f'bf16-auto-k{size["k"]}-donate').split(',')[0]
  dataset = datasets[0]
  settings = [''] + [f.strip() for f in args.xla_flags_variants.split(';') if f.strip()]
  base_flags = os.environ.get('XLA_FLAGS', '')
  # The subprocesses' own tables go to a scratch folder, not --out (whose files a device
  # call returns, 8 at most).
  out_root = tempfile.mkdtemp(prefix='c2g_flag_sweep_')
  if args.out:
    os.makedirs(args.out, exist_ok=True)
  lines = [
      f'# XLA flags, one at a time: {dataset} {spec}, --size={args.size}',
      f'base XLA_FLAGS: {base_flags or "(none)"}; each row adds its flags in a fresh process',
      '',
      '| XLA_FLAGS added | gen-iter/s | ms/iter | vs none | compile s | status |',
      '|---|---|---|---|---|---|',
  ]
  print('\n'.join(lines), flush=True)
  rows, ref = [], None
  for i, flags in enumerate(settings):
    elapsed = time.perf_counter() - start
    if args.budget_s and elapsed > args.budget_s:
      lines.append(f'| {flags or "(none)"} | | | | | skipped: past --budget_s={args.budget_s:g} |')
      print(lines[-1], flush=True)
      continue
    out = os.path.join(out_root, f'flags_{i}')
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        f'--size={args.size}',
        f'--datasets={dataset}',
        f'--variants={spec}',
        '--vmap=0',
        '--peer=none',
        '--no_flops',
        f'--out={out}',
        f'--k={size["k"]}',
        f'--min_time={size["min_time"]}',
    ]
    if args.cache_dir:
      cmd.append(f'--cache_dir={args.cache_dir}')
    env = dict(os.environ, XLA_FLAGS=(base_flags + ' ' + flags).strip())
    timeout = max(args.budget_s - elapsed, 30) + 60 if args.budget_s else 1800
    row = dict(flags=flags, rate=None, ms=None, compile_s=None, status='')
    try:
      proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
      got = []
      if os.path.exists(os.path.join(out, 'bench.jsonl')):
        with open(os.path.join(out, 'bench.jsonl')) as fh:
          got = [json.loads(l) for l in fh if l.strip()]
      if got:
        row.update(
            rate=got[0]['rate'],
            ms=got[0]['ms'],
            compile_s=got[0].get('compile_s'),
            status='ok' if proc.returncode == 0 else f'rc {proc.returncode}',
        )
      else:
        err = [l for l in proc.stderr.strip().splitlines() if l.strip()] or ['(no stderr)']
        unknown = [l for l in err if 'Unknown flag' in l]
        row['status'] = f'failed, rc {proc.returncode}: ' + (unknown or err)[-1][-160:]
    except subprocess.TimeoutExpired:
      row['status'] = f'timed out after {timeout:.0f} s'
    if not flags and row['rate']:
      ref = row['rate']
    rows.append(row)
    vs = f'{row["rate"] / ref:.3f}x' if ref and row['rate'] else ''
    lines.append(
        '| {} | {} | {} | {} | {} | {} |'.format(
            flags or '(none)',
            f'{row["rate"]:.1f}' if row['rate'] else '',
            f'{row["ms"]:.2f}' if row['ms'] else '',
            vs,
            f'{row["compile_s"]:.0f}' if row['compile_s'] is not None else '',
            row['status'].replace('|', '/'),
        )
    )
    print(lines[-1], flush=True)
    if args.out:
      with open(os.path.join(args.out, 'flags.md'), 'w') as fh:
        fh.write('\n'.join(lines) + '\n')
      with open(os.path.join(args.out, 'flags.jsonl'), 'w') as fh:
        fh.writelines(json.dumps(r) + '\n' for r in rows)
  lines.append(f'\n- total {time.perf_counter() - start:.0f} s')
  print(lines[-1], flush=True)
  if args.out:
    with open(os.path.join(args.out, 'flags.md'), 'w') as fh:
      fh.write('\n'.join(lines) + '\n')
  return rows


class _Bench:
  """Builds attacks, times them, and collects the table's rows."""

  def __init__(self, args, size, start):
    import jax
    from c2g_jax import conv

    self.jax = jax
    self.args, self.size, self.start = args, size, start
    self.device = jax.devices()[0]
    self.default_conv = conv.default_conv_impl()
    self.rows, self.notes = [], []
    self._problems, self._flops, self._done = {}, {}, {}
    self._compiled = {}  # (dataset, variant name) -> (compiled, init, K), for --profile
    self.rates = {d: self._matmul_rate(d) for d in DTYPES}
    if args.profile:  # profile.md collects this run's profiles only
      for folder in {args.out or args.profile}:
        if os.path.exists(os.path.join(folder, 'profile.md')):
          os.remove(os.path.join(folder, 'profile.md'))

  # -- setup ------------------------------------------------------------------
  def _matmul_rate(self, dtype):
    """FLOP/s of a large square matmul on the device, the best of 3 rounds."""
    jax = self.jax
    n = self.size['matmul_n'] if self.device.platform != 'cpu' else min(self.size['matmul_n'], 2048)
    ka, kb = jax.random.split(jax.random.PRNGKey(0))
    a = jax.random.normal(ka, (n, n), DTYPES[dtype])
    b = jax.random.normal(kb, (n, n), DTYPES[dtype])
    f = jax.jit(lambda a, b: a @ b)
    f(a, b).block_until_ready()
    best = math.inf
    for _ in range(3):
      reps, t = 1, 0.0
      while t < 0.2:
        t0 = time.perf_counter()
        for _ in range(reps):
          out = f(a, b)
        out.block_until_ready()
        t = time.perf_counter() - t0
        if t < 0.2:
          reps *= 4
      best = min(best, t / reps)
    return 2 * n**3 / best

  def problem(self, dataset):
    """Networks, data and a fresh state for `dataset`, built once."""
    if dataset in self._problems:
      return self._problems[dataset]
    import numpy as np

    jax, jnp = self.jax, self.jax.numpy
    from c2g_jax import attack as attack_lib, classifier, networks

    s = self.size
    num_classes, shape = NUM_CLASSES[dataset], networks.image_shape(dataset)
    f_module = networks.Classifier(num_classes, dataset, width=s['f_width'])
    f_vars = jax.jit(lambda k: f_module.init(k, jnp.zeros((1,) + shape), train=False))(
        jax.random.PRNGKey(1)
    )
    rng = np.random.default_rng(0)
    data = attack_lib.AttackData(
        aux_images=jnp.asarray(rng.integers(0, 256, (s['n_aux'],) + shape, dtype=np.uint8)),
        aux_probs=jax.nn.softmax(
            jnp.asarray(rng.normal(size=(s['n_aux'], num_classes)) * 5, jnp.float32)
        ),
        f_variables=f_vars,
    )

    def make_attack(conv_impl, dtype):
      return attack_lib.Attack(
          generator=networks.Generator(dataset, width=s['width']),
          critic=networks.Critic(dataset, width=s['width'], conv_impl=conv_impl),
          f_apply=classifier.probs_fn(f_module, networks.value_range(dataset)),
          num_classes=num_classes,
          image_shape=shape,
          value_range=networks.value_range(dataset),
          hyper=attack_lib.Hyper(
              batch_size=s['batch_size'], n_critic=s['n_critic'], compute_dtype=DTYPES[dtype]
          ),
      )

    # Both conv impls share one parameter tree, so one init serves every variant.
    init = jax.jit(make_attack('xla', 'f32').init)
    self._problems[dataset] = (make_attack, data, init)
    return self._problems[dataset]

  def flops_per_iteration(self, dataset, attack, state, data, compiled):
    """FLOPs of one generator iteration from XLA's cost analysis.

    XLA counts a loop body once, whatever its trip count, so the compiled
    step's count (outer scan of K, inner scan of n_critic critic updates, each
    body once) is scaled by the per-iteration/loop-body ratio of the lowered
    (unoptimised) HLO of the pieces: n_critic critic updates + one generator update.
    """
    key = (dataset, attack.critic.conv_impl, attack.hyper.compute_dtype)
    if key in self._flops:
      return self._flops[key]
    jax = self.jax
    k = jax.random.PRNGKey(0)

    def count(cost):
      cost = cost[0] if isinstance(cost, (list, tuple)) else cost
      return float(cost['flops']) if cost and cost.get('flops') is not None else None

    fallback = []

    def lowered_flops(fn, *a):
      traced = jax.jit(fn).trace(*a)
      flops = count(traced.lower().cost_analysis())
      if flops is None:
        # jax 0.11 on the H200 gave no count for GPU lowerings. The CPU lowering
        # of the same program counts the same HLO. (Compiled GPU programs were
        # tried too: they count 216 GFLOP where the HLO has 790, missing the
        # library calls, so they are not used.)
        fallback.append(True)
        flops = count(traced.lower(lowering_platforms=('cpu',)).cost_analysis())
      return flops

    try:
      critic = lowered_flops(attack.critic_update, state, k, data)
      gen = lowered_flops(attack.generator_update, state, k, data)
      body = lowered_flops(lambda s, d: attack.step(s, k, d), state, data)
      per_iter = attack.hyper.n_critic * critic + gen
      compiled_body = None if fallback else count(compiled.cost_analysis())
      if compiled_body:
        per_iter *= compiled_body / body
      elif fallback:
        self.notes.append(f'{key}: FLOPs counted on the CPU lowering of the same program')
    except Exception as e:  # cost analysis is best effort on some backends
      self.notes.append(f'no FLOP count for {key}: {type(e).__name__}: {e}')
      per_iter = None
    self._flops[key] = per_iter
    return per_iter

  # -- timing -----------------------------------------------------------------
  def _time(self, fn, state, data):
    """Seconds per call: 3 rounds of about min_time/3 each, the median round.

    Also the process's CPU seconds per call: on a CPU shared with other jobs
    that varies far less than wall time, so it is what compares variants there.
    """
    jax = self.jax
    state, _ = fn(state, data)  # warm-up (after compile)
    jax.block_until_ready(state)
    t0 = time.perf_counter()
    state, _ = fn(state, data)
    jax.block_until_ready(state)
    calls = max(1, int(self.size['min_time'] / 3 / max(time.perf_counter() - t0, 1e-6)))
    rounds, cpu = [], []
    for _ in range(3):
      t0, c0 = time.perf_counter(), time.process_time()
      for _ in range(calls):
        state, metrics = fn(state, data)
      jax.block_until_ready((state, metrics))
      rounds.append((time.perf_counter() - t0) / calls)
      cpu.append((time.process_time() - c0) / calls)
    return sorted(rounds)[1], sorted(cpu)[1]

  def _memory(self, compiled):
    mem = compiled.memory_analysis()
    xla = None
    if mem is not None:
      xla = (
          mem.argument_size_in_bytes
          + mem.output_size_in_bytes
          + mem.temp_size_in_bytes
          - mem.alias_size_in_bytes
      )
    stats = self.device.memory_stats() if hasattr(self.device, 'memory_stats') else None
    peak = stats.get('peak_bytes_in_use') if stats else None
    return xla, peak

  def _over_budget(self, label):
    budget = self.args.budget_s
    if budget and time.perf_counter() - self.start > budget:
      self.notes.append(f'skipped {label}: past --budget_s={budget:g}')
      return True
    return False

  def single(self, dataset, variant):
    label = (dataset, variant['name'], 1)
    if label in self._done or self._over_budget(f'{dataset} {variant["name"]}'):
      return
    self._done[label] = True
    jax = self.jax
    make_attack, data, init = self.problem(dataset)
    attack = make_attack(variant['conv'], variant['dtype'])
    state = init(jax.random.PRNGKey(0))
    run = jax.jit(attack.run, static_argnums=2, donate_argnums=(0,) if variant['donate'] else ())
    t0 = time.perf_counter()
    compiled = run.lower(state, data, variant['k']).compile()
    compile_s = time.perf_counter() - t0
    self._compiled[(dataset, variant['name'])] = (compiled, init, variant['k'])
    flops = (
        None
        if self.args.no_flops
        else self.flops_per_iteration(dataset, attack, state, data, compiled)
    )
    if self.args.flops_only:
      self.notes.append(f'{dataset} {variant["name"]}: {flops / 1e9:.1f} GFLOP per iteration')
      return
    seconds, cpu_seconds = self._time(compiled, state, data)
    xla_mem, peak = self._memory(compiled)
    self.add(
        dict(
            dataset=dataset,
            impl='ours',
            variant=variant['name'],
            n=1,
            rate=variant['k'] / seconds,
            ms=1e3 * seconds / variant['k'],
            flops=flops,
            dtype=variant['dtype'],
            xla_mem=xla_mem,
            peak=peak,
            compile_s=compile_s,
            cpu_ms=(1e3 * cpu_seconds / variant['k'] if self.device.platform == 'cpu' else None),
            note=self._cpu_note(cpu_seconds, variant['k']) + f'compile {compile_s:.0f} s',
        )
    )

  def vmapped(self, dataset, variant, n):
    label = (dataset, variant['name'], n)
    if label in self._done or self._over_budget(f'{dataset} vmap N={n} {variant["name"]}'):
      return
    self._done[label] = True
    jax = self.jax
    from c2g_jax import multi

    make_attack, data, init = self.problem(dataset)
    attack = make_attack(variant['conv'], variant['dtype'])
    m = multi.MultiAttack(attack, shared_data=True)
    # N real, independent states (N runs of one compiled init, not a vmapped compile).
    states = multi.stack([init(k) for k in jax.random.split(jax.random.PRNGKey(0), n)])
    run = jax.jit(m.run, static_argnums=2, donate_argnums=(0,) if variant['donate'] else ())
    t0 = time.perf_counter()
    compiled = run.lower(states, data, variant['k']).compile()
    compile_s = time.perf_counter() - t0
    seconds, cpu_seconds = self._time(compiled, states, data)
    xla_mem, peak = self._memory(compiled)
    one = [
        r
        for r in self.rows
        if r['dataset'] == dataset
        and r['impl'] == 'ours'
        and r['variant'] == variant['name']
        and r['n'] == 1
    ]
    rate = n * variant['k'] / seconds
    speedup = f', {rate / one[0]["rate"]:.2f}x one' if one else ''
    if one and one[0].get('cpu_ms'):
      speedup += f' ({n * one[0]["cpu_ms"] / (1e3 * cpu_seconds / variant["k"]):.2f}x by CPU time)'
    single_flops = self._flops.get((dataset, variant['conv'], DTYPES[variant['dtype']]))
    self.add(
        dict(
            dataset=dataset,
            impl=f'ours vmap N={n}',
            variant=variant['name'],
            n=n,
            rate=rate,
            ms=1e3 * seconds / variant['k'],
            flops=n * single_flops if single_flops else None,
            dtype=variant['dtype'],
            xla_mem=xla_mem,
            peak=peak,
            note=f'aggregate{speedup}; ms per vmapped iteration; '
            + self._cpu_note(cpu_seconds, variant['k'])
            + f'compile {compile_s:.0f} s',
        )
    )

  def _cpu_note(self, cpu_seconds, k):
    if self.device.platform != 'cpu':
      return ''
    return f'CPU time {1e3 * cpu_seconds / k:.0f} ms/iter; '

  # -- profile ----------------------------------------------------------------
  def profile_dataset(self, dataset):
    """--profile: trace the chosen variants of `dataset`; append to profile.md."""
    import profile_step  # pylint: disable=g-import-not-at-top

    choice = self.args.profile_variants
    mine = [
        r
        for r in self.rows
        if r['dataset'] == dataset and r['impl'] == 'ours' and r['n'] == 1 and r.get('rate')
    ]
    if choice == 'best':
      names = [max(mine, key=lambda r: r['rate'])['variant']] if mine else []
    elif choice == 'all':
      names = [r['variant'] for r in mine]
    else:
      names = [parse_variant(v, self.default_conv)['name'] for v in choice.split(',')]
    jax = self.jax
    for name in names:
      if (dataset, name) not in self._compiled:
        self.notes.append(f'no profile of {dataset} {name}: not among the rows run')
        continue
      # Not cut by --budget_s: a profile takes seconds, and the caller's timeout guards it.
      compiled, init, k = self._compiled[(dataset, name)]
      _, data, _ = self.problem(dataset)
      log_dir = os.path.join(self.args.profile, f'{dataset}-{name}')
      t0 = time.perf_counter()
      try:
        hlo = compiled.as_text() or ''
      except Exception:  # pylint: disable=broad-except
        hlo = ''
      if hlo:
        os.makedirs(log_dir, exist_ok=True)
        with open(os.path.join(log_dir, 'program.hlo.txt'), 'w') as fh:
          fh.write(hlo)
      try:
        summary, text, _ = profile_step.profile(
            compiled,
            init(jax.random.PRNGKey(0)),
            data,
            log_dir,
            calls=self.args.profile_calls,
            iterations_per_call=k,
            hlo_text=hlo,
            top=self.args.profile_top,
            title=f'{dataset} {name} ({self.device.device_kind}, --size={self.args.size})',
        )
      except Exception as e:  # pylint: disable=broad-except
        self.notes.append(f'profile of {dataset} {name} failed: {type(e).__name__}: {e}')
        continue
      row = next((r for r in mine if r['variant'] == name), None)
      if row:
        text += (
            f'\n- unprofiled: {row["ms"]:.3f} ms/iteration (the bench row); profiled: '
            f'{summary["wall_us"] / 1e3 / max(summary["iterations"], 1):.3f}\n'
        )
      text += f'- trace and HLO: {log_dir}; profiling took {time.perf_counter() - t0:.0f} s\n'
      print(text, flush=True)
      out = os.path.join(self.args.out or self.args.profile, 'profile.md')
      os.makedirs(os.path.dirname(out), exist_ok=True)
      with open(out, 'a') as fh:
        fh.write(text + '\n')
      self.notes.append(f'profiled {dataset} {name}: {out}')

  # -- output -----------------------------------------------------------------
  def header(self):
    jax = self.jax
    load = os.getloadavg() if hasattr(os, 'getloadavg') else None
    lines = [
        f'# c2g_jax benchmark, --size={self.args.size}, '
        f'{datetime.datetime.now().isoformat(timespec="seconds")}',
        f'device: {self.device.device_kind} ({self.device.platform}), jax {jax.__version__}, '
        f'{os.cpu_count()} CPUs{f", load {load[0]:.1f}" if load else ""}, {platform.node()}',
        f'measured matmul: f32 {self.rates["f32"] / 1e12:.3f} TFLOP/s, '
        f'bf16 {self.rates["bf16"] / 1e12:.3f} TFLOP/s',
        'networks: width {width:g} (f width {f_width:g}), batch {batch_size}, n_critic '
        '{n_critic}, {n_aux} aux images; EMNIST 62 classes, FaceScrub 100'.format(**self.size),
        f'XLA_FLAGS: {os.environ.get("XLA_FLAGS", "") or "(none)"}; default conv impl here: '
        f'{self.default_conv}',
    ]
    self.header_lines = lines
    print('\n'.join(lines), flush=True)

  def add(self, row):
    self.rows.append(row)
    print('  ' + self._format(row), flush=True)
    self._write()  # after every row: a run killed by a timeout still leaves its table

  def _format(self, r):
    def mib(b):
      return 'n/a' if b is None else f'{b / 2 ** 20:.0f} MiB'

    flops = r.get('flops')
    if flops is None and r['impl'].startswith('torch'):
      # The peer computes the same iteration as our f32 paper-size networks.
      flops = next(
          (
              x['flops']
              for x in self.rows
              if x['dataset'] == r['dataset']
              and x['impl'] == 'ours'
              and x.get('dtype') == 'f32'
              and x.get('flops')
          ),
          None,
      )
    rate = self.rates[r.get('dtype', 'f32')]
    floor = f'{100 * (flops / rate) / (r["ms"] / 1e3):.1f}%' if flops else 'n/a'
    gflop = f'{flops / 1e9:.2f}' if flops else 'n/a'
    return (
        f'| {r["dataset"]} | {r["impl"]} | {r["variant"]} | {r["rate"]:.1f} | '
        f'{r["ms"]:.2f} | {gflop} | {floor} | {mib(r.get("xla_mem"))} | '
        f'{mib(r.get("peak")) if not r["impl"].startswith("torch") else "n/a"} | '
        f'{r.get("note", "")} |'
    )

  def _text(self, final):
    table = [
        '| networks | impl | variant | gen-iter/s | ms/iter | GFLOP/iter | '
        'FLOP floor share | XLA mem | peak dev mem | note |',
        '|---|---|---|---|---|---|---|---|---|---|',
    ]
    table += [self._format(r) for r in self.rows]
    notes = self.notes + [
        "FLOP floor share = (GFLOP/iter / measured matmul rate of the row's dtype) / (ms/iter).",
        'peak dev mem: device.memory_stats() peak so far in this process (n/a on CPU).',
        f'total {time.perf_counter() - self.start:.0f} s' + ('' if final else ' (unfinished)'),
    ]
    return '\n'.join(self.header_lines + [''] + table + [''] + [f'- {n}' for n in notes])

  def finish(self):
    print('\n' + self._text(final=True), flush=True)
    self._write(final=True)

  def _write(self, final=False):
    if self.args.out:
      text = self._text(final)
      os.makedirs(self.args.out, exist_ok=True)
      with open(os.path.join(self.args.out, 'bench.md'), 'w') as fh:
        fh.write(text + '\n')
      with open(os.path.join(self.args.out, 'bench.jsonl'), 'w') as fh:
        for r in self.rows:
          fh.write(json.dumps(r) + '\n')


if __name__ == '__main__':
  main()
