"""Helpers that several test files use (plain functions; fixtures live in conftest.py)."""

import contextlib
import io
import json
import os
import sys
import types

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The metadata of conftest's released_f: random tiny EMNIST digits, the tiny
# config's f architecture and width.
RELEASED_F_META = {
    'architecture': 'classifier',
    'dataset': 'emnist',
    'width': 0.125,
    'num_classes': 10,
    'label_names': [str(i) for i in range(10)],
    'input_shape': [28, 28, 1],
    'value_range': [0.0, 1.0],
    'test_accuracy': 0.5,
}
SHARED_10PC = os.path.join(REPO, '..', 'shared', 'data', 'emnist', 'emnist_byclass_test_10pc.npz')


def emnist_10_per_class():
  """Real EMNIST images (10 per class, upright) when ../shared is present, else synthetic."""
  if os.path.isfile(SHARED_10PC):
    with np.load(SHARED_10PC) as npz:
      return npz['x'], npz['y']
  rng = np.random.default_rng(0)
  y = np.repeat(np.arange(62, dtype=np.uint8), 10)
  return rng.integers(0, 256, (len(y), 28, 28), dtype=np.uint8), y


def metrics(workdir):
  """A run's metrics.jsonl without the wall-clock rate, for run-to-run comparisons."""
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    records = [json.loads(line) for line in f]
  for r in records:
    r.pop('iterations_per_sec')
  return records


def main_in_process(args):
  """`python main.py ARGS` run in this process, for commands that stop at start-up
  (bad input exits 2 before any training): main.py's own flag parsing and main
  function, without a Python and jax start (2-3 s each). Returns an object with
  the command's returncode and stderr. The flags are reset before each call."""
  from absl import flags  # pylint: disable=g-import-not-at-top

  if REPO not in sys.path:
    sys.path.insert(0, REPO)
  import main  # pylint: disable=g-import-not-at-top

  argv = ['main.py', *map(str, args)]
  flags.FLAGS.unparse_flags()
  # The --config.* overrides are flags a parse of --config defines: drop the last call's.
  for name in [n for n in flags.FLAGS if n.startswith('config.')]:
    delattr(flags.FLAGS, name)
  stderr, saved_argv = io.StringIO(), sys.argv
  # ml_collections reads the --config.* overrides from sys.argv when it parses --config.
  sys.argv = argv
  try:
    with contextlib.redirect_stderr(stderr):
      main.main(main.parse_flags(argv))
    code = 0
  except SystemExit as e:
    code = e.code
  finally:
    sys.argv = saved_argv
  return types.SimpleNamespace(returncode=code, stderr=stderr.getvalue())


def printout_numbers(names, evaluator_shares, f_shares) -> dict:
  """report.leak_metrics' numbers, as much as train.format_results reads: the
  headline evaluator's and f's per-target acc@1 (the evaluator's acc@5 the same)."""
  stats = lambda shares: {
      'per_class': dict(zip(names, shares)),
      'mean': float(np.mean(shares)),
      'std': float(np.std(shares)),
  }
  return {
      'evaluator': {m: stats(evaluator_shares) for m in ('acc@1', 'acc@5')},
      'f': {'acc@1': stats(f_shares)},
      'features': {'summary': {}},
      'false_recognition': {},
  }
