"""Where a jitted step's time goes: a jax.profiler trace, summarised by op.

  python benchmarks/profile_step.py TRACE [--wall_ms MS] [--iterations N] [--top 25]
      summarises an existing trace (a perfetto_trace.json.gz / *.trace.json.gz, or the
      folder jax.profiler.trace wrote), prints the table and writes TRACE_DIR/profile.md;
  bench.py --profile=DIR   profiles the fastest variant of each dataset with `profile()`.

Which events are counted (`select_events`; the trace is the Chrome-trace JSON that
`jax.profiler.trace(dir, create_perfetto_trace=True)` writes):
  * GPU/TPU: the complete ('X') events of the processes named '/device:...' (not
    '/device:CPU'). Of their threads, the 'Stream #...' ones (one event per kernel,
    memcpy or memset) when there are any; otherwise all threads but the derived lines
    (XLA Modules, XLA Ops, Steps, TensorFlow Ops/Name Scope, Source code, ...), which
    repeat the streams' time. Events are keyed by args['hlo_op'] (the HLO instruction, a
    fusion or a custom call) when present, else by the event name (the kernel).
  * CPU (no device process): the XLA:CPU thunk executor's events, i.e. the host events
    that carry args['hlo_op'] ('end: ...' markers have none).
Time per event is its self time: on each thread, nested events (a while loop's thunk
around its body's thunks) are subtracted from their parent, so nothing counts twice.
Shares are of the wall time of the profiled calls (given by the caller; else the span
from the first to the last selected event). Kernels on several streams (or thunks on
several CPU threads) overlap, so shares can add up to more than 100%; 'device busy' is
the union of the selected events' intervals, and 1 - busy is the time the device waits
(kernel launches, host work, synchronisation).

With the compiled program's HLO text (`hlo_op_names`), each op gets the op_name of its
metadata (the jax name stack), from which `pass_of` guesses the pass: 'fwd', 'bwd' (one
transpose(...)), 'bwd of bwd' (two or more: the gradient penalty's double backward).
The 'kind' column is a guess from the kernel and op names (`kind_of`): conv/matmul
(cuDNN, cuBLAS, Triton GEMMs, XLA:CPU dots), data movement (transposes, copies, pads,
slices, concatenations: layouts and im2col), reduce, elementwise fusion, memcpy/memset.
Pure Python (json, gzip): the summariser imports no jax.
"""

import argparse
import collections
import glob
import gzip
import json
import os
import re
import sys
import time

DERIVED_LINES = (
    'xla modules',
    'xla ops',
    'steps',
    'tensorflow ops',
    'tensorflow name scope',
    'source code',
    'framework ops',
    'framework name scope',
    'launch stats',
    'xla traceme',
    'host threads',
    'sparsecore',
)


def load_trace(path):
  """The trace dict from a .json(.gz) file or the newest one under a folder."""
  if os.path.isdir(path):
    found = []
    for pattern in ('perfetto_trace.json.gz', '*.trace.json.gz', '*.trace.json'):
      found += glob.glob(os.path.join(path, '**', pattern), recursive=True)
    if not found:
      raise FileNotFoundError(f'no perfetto_trace.json.gz or *.trace.json.gz under {path}')
    path = max(found, key=os.path.getmtime)
  opener = gzip.open if path.endswith('.gz') else open
  with opener(path, 'rt') as fh:
    trace = json.load(fh)
  if isinstance(trace, list):
    trace = {'traceEvents': trace}
  trace['_path'] = path
  return trace


def select_events(trace):
  """(events, source): the counted events, each dict(tid, ts, dur, op, kernel)."""
  events = trace.get('traceEvents', [])
  procs, threads = {}, {}
  for e in events:
    if e.get('ph') == 'M' and e.get('name') == 'process_name':
      procs[e.get('pid')] = str(e.get('args', {}).get('name', ''))
    elif e.get('ph') == 'M' and e.get('name') == 'thread_name':
      threads[(e.get('pid'), e.get('tid'))] = str(e.get('args', {}).get('name', ''))
  complete = [e for e in events if e.get('ph') == 'X' and e.get('dur') is not None]
  device_pids = {
      p for p, n in procs.items() if n.startswith('/device:') and not n.startswith('/device:CPU')
  }
  dev = [e for e in complete if e.get('pid') in device_pids]
  if dev:
    thread_of = lambda e: threads.get((e.get('pid'), e.get('tid')), '')
    streams = [e for e in dev if thread_of(e).lower().startswith('stream')]
    if streams:
      chosen, source = streams, "device 'Stream #' threads (kernels, memcpy, memset)"
    else:
      chosen = [e for e in dev if not thread_of(e).lower().startswith(DERIVED_LINES)]
      source = 'device threads other than the derived lines'
    source += ' of ' + ', '.join(sorted({procs[e['pid']] for e in chosen}))
  else:
    chosen = [e for e in complete if 'hlo_op' in (e.get('args') or {})]
    source = "host events with args['hlo_op'] (XLA:CPU thunk executor)"
  out = []
  for e in chosen:
    args = e.get('args') or {}
    name = str(e.get('name', ''))
    out.append(
        dict(
            tid=(e.get('pid'), e.get('tid')),
            ts=float(e['ts']),
            dur=float(e['dur']),
            op=str(args.get('hlo_op') or name),
            kernel=name,
        )
    )
  return out, source


def self_times(events):
  """Sets e['self'] = dur minus the time of the events nested in it on its thread."""
  by_thread = collections.defaultdict(list)
  for e in events:
    by_thread[e['tid']].append(e)
  for evs in by_thread.values():
    evs.sort(key=lambda e: (e['ts'], -e['dur']))
    stack = []
    for e in evs:
      e['self'] = e['dur']
      end = e['ts'] + e['dur']
      while stack and stack[-1]['ts'] + stack[-1]['dur'] <= e['ts']:
        stack.pop()
      if stack and end <= stack[-1]['ts'] + stack[-1]['dur'] + 1e-6:
        stack[-1]['self'] -= e['dur']
      stack.append(e)
  return events


def busy_time(events):
  """Length of the union of the events' intervals (microseconds)."""
  total, cur_start, cur_end = 0.0, None, None
  for s, d in sorted((e['ts'], e['dur']) for e in events):
    if cur_end is None or s > cur_end:
      if cur_end is not None:
        total += cur_end - cur_start
      cur_start, cur_end = s, s + d
    else:
      cur_end = max(cur_end, s + d)
  if cur_end is not None:
    total += cur_end - cur_start
  return total


def hlo_op_names(hlo_text):
  """{instruction name: metadata op_name} from a compiled module's as_text()."""
  names = {}
  for m in re.finditer(
      r'^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=.*?op_name="([^"]*)"', hlo_text or '', re.M
  ):
    names.setdefault(m.group(1), m.group(2))
  return names


def pass_of(op_name):
  """'fwd', 'bwd', 'grad in fwd' or 'bwd of bwd', from the jax name stack.

  jax names a backward pass transpose(jvp(f)). In a WGAN-GP critic update the penalty's
  input gradient is computed inside the forward pass (jvp(transpose(jvp(Critic)))) and
  differentiated again in the backward pass (transpose(jvp(transpose(jvp(Critic))))).
  """
  if not op_name:
    return '?'
  n = op_name.count('transpose(')
  if n >= 2:
    return 'bwd of bwd'
  if n == 1:
    return 'grad in fwd' if 'jvp(transpose(' in op_name else 'bwd'
  return 'fwd'


_KINDS = (
    ('memcpy/memset', r'memcpy|memset|MemcpyD|MemsetD'),
    (
        'conv/matmul',
        r'conv|gemm|xmma|cutlass|cudnn|cublas|\bdot|dot_general|dot\.|matmul|'
        r'ynn_fusion|wgrad|dgrad|fprop|implicit|sm\d+_',
    ),
    ('data movement', r'transpose|copy|concatenate|pad|slice|bitcast_convert|gather|' r'scatter'),
    ('reduce', r'reduc'),
    ('elementwise fusion', r'fusion|wrapped_|loop_|input_'),
)


def kind_of(kernel, op):
  for kind, pattern in _KINDS:
    if re.search(pattern, kernel, re.I) or re.search(pattern, op, re.I):
      return kind
  return 'other'


def summarise(trace, wall_us=None, iterations=1, top=25, op_names=None):
  """Aggregates the selected events' self times by op; the top `top` ops."""
  events, source = select_events(trace)
  self_times(events)
  if not events:
    return dict(
        source=source,
        rows=[],
        wall_us=wall_us or 0.0,
        iterations=iterations,
        busy_us=0.0,
        total_us=0.0,
        n_events=0,
        by_kind={},
        by_pass={},
    )
  span = max(e['ts'] + e['dur'] for e in events) - min(e['ts'] for e in events)
  wall = float(wall_us) if wall_us else span
  agg = {}
  for e in events:
    a = agg.setdefault(e['op'], dict(op=e['op'], us=0.0, count=0, kernels=collections.Counter()))
    a['us'] += e['self']
    a['count'] += 1
    a['kernels'][e['kernel']] += e['self']
  op_names = op_names or {}
  rows = sorted(agg.values(), key=lambda a: -a['us'])
  by_kind, by_pass = collections.Counter(), collections.Counter()
  for a in rows:
    a['kernel'] = a['kernels'].most_common(1)[0][0]
    a['share'] = a['us'] / wall
    a['op_name'] = op_names.get(a['op'], '')
    a['pass'] = pass_of(a['op_name']) if op_names else '?'
    a['kind'] = kind_of(a['kernel'], a['op'])
    by_kind[a['kind']] += a['us']
    by_pass[a['pass']] += a['us']
    del a['kernels']
  total = sum(a['us'] for a in rows)
  return dict(
      source=source,
      rows=rows[:top],
      n_ops=len(rows),
      wall_us=wall,
      span_us=span,
      iterations=iterations,
      busy_us=busy_time(events),
      total_us=total,
      n_events=len(events),
      by_kind=dict(by_kind),
      by_pass=dict(by_pass),
  )


def _short(s, n):
  s = s.replace('|', '/')
  return s if len(s) <= n else '...' + s[-(n - 3) :]


def to_markdown(summary, title=''):
  s, it = summary, max(summary['iterations'], 1)
  wall = s['wall_us'] or 1.0
  lines = [f'### {title}' if title else '### profile', '']
  lines.append(
      f'- events: {s["source"]}; {s["n_events"]} events, {s.get("n_ops", 0)} distinct '
      f'ops, {s["n_events"] / it:.0f} per iteration'
  )
  lines.append(
      f'- wall {wall / 1e3:.2f} ms for {it} iteration(s) = {wall / 1e3 / it:.3f} '
      f'ms/iteration; device busy (union of events) {100 * s["busy_us"] / wall:.1f}%, '
      f'idle {100 * (1 - s["busy_us"] / wall):.1f}%; sum of self times '
      f'{100 * s["total_us"] / wall:.1f}% of wall'
  )
  if s['n_events']:
    lines.append(f'- mean event {s["total_us"] / s["n_events"]:.1f} us')
  else:
    lines.append('- no events selected: on a GPU, was CUPTI (the profiler library) missing?')
  for label, d in (('by kind', s['by_kind']), ('by pass', s['by_pass'])):
    if d:
      lines.append(
          f'- {label}: '
          + ', '.join(
              f'{k} {100 * v / wall:.1f}%' for k, v in sorted(d.items(), key=lambda kv: -kv[1])
          )
      )
  lines += [
      '',
      '| # | op | kind | pass | calls/iter | ms/iter | share of wall | top kernel | '
      'op_name (tail) |',
      '|---|---|---|---|---|---|---|---|---|',
  ]
  for i, a in enumerate(s['rows'], 1):
    lines.append(
        f'| {i} | {_short(a["op"], 40)} | {a["kind"]} | {a["pass"]} | '
        f'{a["count"] / it:.1f} | {a["us"] / 1e3 / it:.3f} | {100 * a["share"]:.1f}% | '
        f'{_short(a["kernel"], 50)} | {_short(a["op_name"], 70)} |'
    )
  return '\n'.join(lines) + '\n'


def profile(
    fn, state, data, log_dir, calls=2, iterations_per_call=1, hlo_text='', top=25, title=''
):
  """Runs fn(state, data) `calls` times under jax.profiler.trace; (summary, markdown, state).

  The first call before the trace warms up; the wall time is of the traced calls only.
  """
  import jax  # pylint: disable=g-import-not-at-top

  state, _ = fn(state, data)
  jax.block_until_ready(state)
  os.makedirs(log_dir, exist_ok=True)
  with jax.profiler.trace(log_dir, create_perfetto_trace=True):
    t0 = time.perf_counter()
    for _ in range(calls):
      state, metrics = fn(state, data)
    jax.block_until_ready((state, metrics))
    wall = time.perf_counter() - t0
  summary = summarise(
      load_trace(log_dir),
      wall_us=wall * 1e6,
      iterations=calls * iterations_per_call,
      top=top,
      op_names=hlo_op_names(hlo_text),
  )
  return summary, to_markdown(summary, title), state


def main(argv=None):
  p = argparse.ArgumentParser(description='summarise a jax.profiler trace by op')
  p.add_argument('trace', help='perfetto_trace.json.gz / *.trace.json.gz, or its folder')
  p.add_argument(
      '--wall_ms',
      type=float,
      default=0.0,
      help='wall time of the traced calls (0: first-to-last event span)',
  )
  p.add_argument('--iterations', type=int, default=1)
  p.add_argument('--top', type=int, default=25)
  p.add_argument('--hlo', default='', help="the compiled program's as_text(), for op_names")
  p.add_argument('--out', default='', help="markdown file ('' = profile.md by the trace)")
  args = p.parse_args(argv)
  trace = load_trace(args.trace)
  hlo = open(args.hlo).read() if args.hlo else ''
  summary = summarise(
      trace,
      wall_us=args.wall_ms * 1e3 or None,
      iterations=args.iterations,
      top=args.top,
      op_names=hlo_op_names(hlo),
  )
  text = to_markdown(summary, os.path.basename(trace['_path']))
  print(text)
  out = args.out or os.path.join(os.path.dirname(trace['_path']), 'profile.md')
  with open(out, 'w') as fh:
    fh.write(text)


if __name__ == '__main__':
  sys.exit(main())
