"""Test-wide settings, applied before jax is imported by any test module."""

import atexit
import os
import shutil
import tempfile

# XLA:CPU compile time dominates these tests (tiny networks, few steps); LLVM's
# optimisation passes buy nothing at these sizes and cost about half of it, and
# XLA:CPU's newer fusion emitters cost 60 % of what remains (the tiny attack's
# chunk: 4.0-4.7 s to compile with them, 1.5-2.2 s without; each step 1.1-1.7x
# slower, the same losses: benchmarks/README.md). Each flag the user's
# XLA_FLAGS already sets is left as given; these flags are for the tests only.
_TEST_XLA_FLAGS = (
    '--xla_backend_optimization_level=0',
    '--xla_cpu_use_fusion_emitters=false',
)
for _flag in _TEST_XLA_FLAGS:
  if _flag.split('=')[0] not in os.environ.get('XLA_FLAGS', ''):
    os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') + ' ' + _flag).strip()

# One persistent XLA compilation cache for the whole session, this process and
# every `python main.py` (or other) subprocess a test starts, which inherit the
# environment: a program compiled once (the tiny attack's chunk, f's training
# epoch, ...) is read back instead of compiled again by the next run that builds
# it. Fresh per session and removed after, so each session still compiles all.
if not os.environ.get('JAX_COMPILATION_CACHE_DIR'):
  _XLA_CACHE = tempfile.mkdtemp(prefix='c2g_tests_xla_cache_')
  os.environ['JAX_COMPILATION_CACHE_DIR'] = _XLA_CACHE
  os.environ['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '0'
  os.environ['JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES'] = '-1'
  atexit.register(shutil.rmtree, _XLA_CACHE, ignore_errors=True)

import pytest  # pylint: disable=g-import-not-at-top,wrong-import-position

# A released classifier f for the tests that need *a* classifier, not a trained
# one: random tiny EMNIST digits (the tiny config's f architecture and width).
from shared_helpers import RELEASED_F_META  # noqa: E402  pylint: disable=g-import-not-at-top


@pytest.fixture(scope='session')
def released_f(tmp_path_factory):
  """(checkpoint path, variables, metadata), saved once per session; copy it
  before changing anything in it."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from c2g_jax import checkpoint  # pylint: disable=g-import-not-at-top
  from c2g_jax import networks  # pylint: disable=g-import-not-at-top

  module = networks.Classifier(num_classes=10, dataset='emnist', width=0.125)
  variables = module.init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)), train=False)
  path = str(tmp_path_factory.mktemp('released') / 'f')
  checkpoint.save_classifier(path, variables, dict(RELEASED_F_META))
  return path, variables, dict(RELEASED_F_META)


# The files that take longest (CPU-seconds per file, measured with two workers on
# 2 cores, 2026-12-03: multihost and robustness ~140, main ~100, attack ~50, then
# ~20 and less), collected first. With two xdist workers the long ones start at once and
# the short ones fill in at the end; xdist's default order (most tests first)
# left the two longest files for the end, often on one worker: 50-70 s of one idle
# core. The order only matters for time: every file's tests run as before.
LONGEST_FIRST = (
    'test_multihost.py',
    'test_robustness.py',
    'test_main.py',
    'test_attack.py',
    'test_facescrub.py',
    'test_multi.py',
    'test_acgan.py',
    'test_report.py',
)


def pytest_collection_modifyitems(items):
  rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
  items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable within a file
