"""Helpers that several test files use (plain functions; fixtures live in conftest.py)."""

import json
import os

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
