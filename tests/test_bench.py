"""benchmarks/bench.py: runs on a bare GPU image, and reads its variant names right.

Speed itself is measured by running the script, never asserted here.
"""
import os
import subprocess
import sys
import textwrap

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, 'benchmarks'))

import bench  # pylint: disable=g-import-not-at-top


def test_bench_imports_nothing_the_gpu_image_lacks():
  # The GPU machine has jax, flax, optax, orbax, chex, absl, but neither
  # tensorflow-datasets nor ml_collections: importing them there would fail.
  script = textwrap.dedent('''
    import sys
    for name in ('tensorflow_datasets', 'ml_collections', 'tensorflow'):
      sys.modules[name] = None   # any import of these now raises ImportError
    sys.path.insert(0, 'benchmarks')
    import bench
    from c2g_jax import attack, classifier, conv, multi, networks
    print('ok')
  ''')
  out = subprocess.run([sys.executable, '-c', script], cwd=REPO, capture_output=True,
                       text=True, env=dict(os.environ, PYTHONPATH=REPO))
  assert out.returncode == 0, out.stderr
  assert out.stdout.strip() == 'ok'


def test_variant_names():
  v = bench.parse_variant('bf16-other-k50-donate', default_conv='im2col')
  assert v == dict(dtype='bf16', conv='xla', k=50, donate=True, name='bf16-xla-k50-donate')
  v = bench.parse_variant('f32-auto-k1-nodonate', default_conv='xla')
  assert (v['conv'], v['k'], v['donate']) == ('xla', 1, False)
  for bad in ('f16-xla-k1-donate', 'f32-xla-1-donate', 'f32-xla-k1', 'f32-winograd-k1-donate'):
    with pytest.raises(SystemExit, match='--variants: bad'):
      bench.parse_variant(bad, default_conv='xla')


def test_default_variants_change_one_thing_at_a_time():
  for size in ('tiny', 'paper'):
    names = bench.default_variants(size, 'emnist', 10)
    parsed = [bench.parse_variant(n, 'xla') for n in names]
    assert len(set(v['name'] for v in parsed)) == len(parsed)
    assert {v['dtype'] for v in parsed} == {'f32', 'bf16'}
    assert {v['conv'] for v in parsed} == {'xla', 'im2col'}
    assert {v['donate'] for v in parsed} == {True, False}
    assert {v['k'] for v in parsed} == {1, 10}
