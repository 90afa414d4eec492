"""The test suite's time: where its CPU goes, and how fast the machine was meanwhile.

    python benchmarks/suite_time.py [--repeats=N] [--out=DIR] [-- PYTEST ARGS]

Runs the README's test command (`python -m pytest -q`, two xdist workers by
pyproject.toml) N times with benchmarks/suite_cpu_plugin.py, and prints, per run:
the wall and CPU time of the whole suite, each worker's share (how well the two
cores were kept busy), CPU per test file, and the tests that take most CPU. Before
and after each run it times a fixed Python loop: on a shared VM the machine's speed
itself can swing by tens of percent within minutes (2026-12-03: 2.2 to 4.7 s for
this loop), so compare two versions of the code by interleaved repeats with their
loop times beside them, never by one run each. Writes DIR/suite_time.md.
"""

import argparse
import collections
import glob
import json
import os
import resource
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOOP = 's = 0\nfor i in range(30_000_000):\n  s += i\n'


def loop_seconds() -> float:
  """Wall time of a fixed pure-Python loop in a fresh interpreter: the machine's speed."""
  start = time.time()
  subprocess.run([sys.executable, '-c', LOOP], check=True)
  return time.time() - start


def summarise(rows_by_worker: dict, top: int = 25) -> dict:
  """Per worker, per file and top tests from the plugin's rows {worker: [row, ...]}."""
  workers = {
      w: {'wall_s': sum(r['wall_s'] for r in rows), 'cpu_s': sum(r['cpu_s'] for r in rows)}
      for w, rows in sorted(rows_by_worker.items())
  }
  files = collections.defaultdict(lambda: {'cpu_s': 0.0, 'wall_s': 0.0, 'worker': ''})
  every = []
  for w, rows in rows_by_worker.items():
    for r in rows:
      f = files[r['test'].split('::')[0]]
      f['cpu_s'] += r['cpu_s']
      f['wall_s'] += r['wall_s']
      f['worker'] = w
      every.append(dict(r, worker=w))
  return {
      'cpu_s': sum(w['cpu_s'] for w in workers.values()),
      'workers': workers,
      'files': dict(sorted(files.items(), key=lambda kv: -kv[1]['cpu_s'])),
      'top': sorted(every, key=lambda r: -r['cpu_s'])[:top],
  }


def markdown(run: dict) -> str:
  s = run['summary']
  lines = [
      f"## run {run['index']}: {run['wall_s']:.1f} s wall, {run['cpu_s']:.0f} CPU-s "
      f"(pytest and children), exit {run['returncode']}",
      '',
      f"fixed loop: {run['loop_before_s']:.2f} s before, {run['loop_after_s']:.2f} s after; "
      f"per-test CPU sums to {s['cpu_s']:.0f} s",
      '',
      '| worker | wall s (sum of its tests) | CPU s |',
      '|---|---|---|',
  ]
  lines += [f"| {w} | {v['wall_s']:.0f} | {v['cpu_s']:.0f} |" for w, v in s['workers'].items()]
  lines += ['', '| file | worker | CPU s | wall s |', '|---|---|---|---|']
  lines += [
      f"| {f} | {v['worker']} | {v['cpu_s']:.1f} | {v['wall_s']:.1f} |"
      for f, v in s['files'].items()
  ]
  lines += ['', '| test | CPU s | wall s |', '|---|---|---|']
  lines += [f"| {r['test']} | {r['cpu_s']:.1f} | {r['wall_s']:.1f} |" for r in s['top']]
  return '\n'.join(lines) + '\n'


def run_once(index: int, out: str, pytest_args: list) -> dict:
  prefix = os.path.join(out, f'run{index}')
  for stale in glob.glob(prefix + '.*.json'):
    os.remove(stale)
  env = dict(
      os.environ,
      SUITE_CPU_OUT=prefix,
      PYTHONPATH=os.pathsep.join(
          [os.path.join(REPO, 'benchmarks')] + [p for p in [os.environ.get('PYTHONPATH')] if p]
      ),
  )
  cmd = [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '-p', 'suite_cpu_plugin']
  loop_before = loop_seconds()
  before = resource.getrusage(resource.RUSAGE_CHILDREN)
  start = time.time()
  proc = subprocess.run(cmd + pytest_args, cwd=REPO, env=env, check=False)
  wall = time.time() - start
  after = resource.getrusage(resource.RUSAGE_CHILDREN)
  rows = {}
  for path in glob.glob(prefix + '.*.json'):
    with open(path) as f:
      rows[path[len(prefix) + 1 : -len('.json')]] = json.load(f)
  return {
      'index': index,
      'returncode': proc.returncode,
      'wall_s': wall,
      'cpu_s': (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
      'loop_before_s': loop_before,
      'loop_after_s': loop_seconds(),
      'summary': summarise(rows),
  }


def main(argv=None):
  argv = sys.argv[1:] if argv is None else argv
  extra = argv[argv.index('--') + 1 :] if '--' in argv else []
  own = argv[: argv.index('--')] if '--' in argv else argv
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--repeats', type=int, default=1, help='runs of the suite, one after another')
  p.add_argument('--out', default='/tmp/c2g_suite_time', help='folder for rows and the table')
  args = p.parse_args(own)
  if args.repeats < 1:
    p.error(f'--repeats={args.repeats}: give 1 or more')
  os.makedirs(args.out, exist_ok=True)
  text = f'# suite time, {time.strftime("%Y-%m-%dT%H:%M:%S")}, {os.cpu_count()} CPUs\n\n'
  for i in range(args.repeats):
    table = markdown(run_once(i, args.out, extra))
    text += table + '\n'
    with open(os.path.join(args.out, 'suite_time.md'), 'w') as f:
      f.write(text)
    print(table, flush=True)
  return 0


if __name__ == '__main__':
  sys.exit(main())
