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
  script = textwrap.dedent("""
    import sys
    for name in ('tensorflow_datasets', 'ml_collections', 'tensorflow'):
      sys.modules[name] = None   # any import of these now raises ImportError
    sys.path.insert(0, 'benchmarks')
    import bench
    from c2g_jax import attack, classifier, conv, multi, networks
    print('ok')
  """)
  out = subprocess.run(
      [sys.executable, '-c', script],
      cwd=REPO,
      capture_output=True,
      text=True,
      env=dict(os.environ, PYTHONPATH=REPO),
  )
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


# ------------------------------------------------------------- the profile summariser

import gzip  # pylint: disable=g-import-not-at-top,wrong-import-position
import json  # pylint: disable=g-import-not-at-top,wrong-import-position

import profile_step  # pylint: disable=g-import-not-at-top,wrong-import-position


def _meta(pid, tid=None, process=None, thread=None):
  if thread is None:
    return dict(ph='M', pid=pid, name='process_name', args=dict(name=process))
  return dict(ph='M', pid=pid, tid=tid, name='thread_name', args=dict(name=thread))


def _x(pid, tid, ts, dur, name, hlo_op=None):
  e = dict(ph='X', pid=pid, tid=tid, ts=ts, dur=dur, name=name)
  if hlo_op:
    e['args'] = dict(hlo_op=hlo_op, hlo_module='jit_run')
  return e


def _gpu_trace():
  # Host process 1 (ignored: a device exists), device process 2 with two streams and
  # a derived 'XLA Ops' line that repeats their time (ignored). Wall: 0..1000 us.
  return {
      'displayTimeUnit': 'ns',
      'traceEvents': [
          _meta(1, process='/host:CPU'),
          _meta(1, 10, thread='python'),
          _meta(2, process='/device:GPU:0'),
          _meta(2, 20, thread='Stream #13(Compute)'),
          _meta(2, 21, thread='Stream #14(MemcpyD2D)'),
          _meta(2, 22, thread='XLA Ops'),
          _x(1, 10, 0, 1000, 'PjitFunction(run)'),
          _x(2, 20, 0, 300, 'sm90_xmma_fprop_implicit_gemm_bf16', 'custom-call.1'),
          _x(2, 20, 300, 100, 'loop_transpose_fusion', 'transpose_fusion.2'),
          _x(2, 20, 500, 200, 'sm90_xmma_fprop_implicit_gemm_bf16', 'custom-call.1'),
          _x(2, 20, 700, 50, 'loop_add_fusion', 'fusion.3'),
          _x(2, 21, 600, 150, 'MemcpyD2D', None),
          _x(2, 22, 0, 750, 'custom-call.1', 'custom-call.1'),
      ],
  }


def test_vmapped_rows_take_best_beside_named_variants():
  """--vmap_variants=best,bf16-im2col-...: the fastest single row's variant, then the
  named one (its N=1 reference first), each once; 'best' with no single row is skipped."""

  class Recorder:
    default_conv = 'xla'

    def __init__(self, rows):
      self.rows, self.calls = rows, []

    def single(self, dataset, variant):
      self.calls.append(('single', dataset, variant['name']))

    def vmapped(self, dataset, variant, n):
      self.calls.append(('vmap', dataset, variant['name'], n))

  row = lambda name, rate: dict(dataset='emnist', n=1, impl='ours', variant=name, rate=rate)
  args = bench.argparse.Namespace(
      vmap=8, vmap_datasets='emnist', vmap_variants='best,bf16-im2col-k50-donate'
  )
  rec = Recorder([row('f32-xla-k50-donate', 90.0), row('bf16-xla-k50-donate', 160.0)])
  bench._vmapped_rows(rec, args, 'emnist')  # pylint: disable=protected-access
  assert rec.calls == [
      ('single', 'emnist', 'bf16-xla-k50-donate'),
      ('vmap', 'emnist', 'bf16-xla-k50-donate', 8),
      ('single', 'emnist', 'bf16-im2col-k50-donate'),
      ('vmap', 'emnist', 'bf16-im2col-k50-donate', 8),
  ]
  # The fastest single row is the named one: it is run once.
  rec = Recorder([row('bf16-im2col-k50-donate', 200.0)])
  bench._vmapped_rows(rec, args, 'emnist')  # pylint: disable=protected-access
  assert [c[0] for c in rec.calls] == ['single', 'vmap']
  # No single row yet: only the named variant.
  rec = Recorder([])
  bench._vmapped_rows(rec, args, 'emnist')  # pylint: disable=protected-access
  assert rec.calls[-1] == ('vmap', 'emnist', 'bf16-im2col-k50-donate', 8) and len(rec.calls) == 2


def test_profile_summary_of_a_gpu_trace(tmp_path):
  path = tmp_path / 'perfetto_trace.json.gz'
  with gzip.open(path, 'wt') as fh:
    json.dump(_gpu_trace(), fh)
  trace = profile_step.load_trace(str(tmp_path))  # a folder: finds the file
  hlo = (
      '  %custom-call.1 = bf16[64,8,8,256]{3,2,1,0} custom-call(%a), '
      'metadata={op_name="jit(run)/transpose(jvp(transpose(jvp(Critic))))/conv"}\n'
      '  ROOT %fusion.3 = f32[64]{0} fusion(%b), kind=kLoop, '
      'metadata={op_name="jit(run)/jvp(Critic)/add" source_file="x.py"}\n'
  )
  s = profile_step.summarise(
      trace, wall_us=1000, iterations=2, top=3, op_names=profile_step.hlo_op_names(hlo)
  )
  assert 'Stream' in s['source']
  assert s['n_events'] == 5 and s['n_ops'] == 4
  ops = [(r['op'], r['us'], r['count'], round(r['share'], 3)) for r in s['rows']]
  assert ops == [
      ('custom-call.1', 500, 2, 0.5),
      ('MemcpyD2D', 150, 1, 0.15),
      ('transpose_fusion.2', 100, 1, 0.1),
  ]
  kinds = [r['kind'] for r in s['rows']]
  assert kinds == ['conv/matmul', 'memcpy/memset', 'data movement']
  assert s['rows'][0]['pass'] == 'bwd of bwd'
  assert s['busy_us'] == 650 and s['total_us'] == 800  # idle 400-500
  assert s['by_pass'] == {'bwd of bwd': 500, '?': 250, 'fwd': 50}
  md = profile_step.to_markdown(s, 'test')
  assert '| 1 | custom-call.1 | conv/matmul | bwd of bwd | 1.0 | 0.250 | 50.0% |' in md
  assert 'idle 35.0%' in md and '0.500 ms/iteration' in md


def test_profile_summary_of_a_cpu_trace_counts_self_time():
  # XLA:CPU: no device process; thunk events carry hlo_op; a while thunk holds its body's
  # thunks, so its own (self) time is what is left; 'end: ...' markers have no hlo_op.
  trace = {
      'traceEvents': [
          _meta(1, process='/host:CPU'),
          _meta(1, 5, thread='tf_XLAPjRtCpuClient'),
          _x(1, 5, 0, 100, 'ThunkExecutor::Execute'),
          _x(1, 5, 0, 10, 'copy.1', 'copy.1'),
          _x(1, 5, 10, 0.1, 'end: copy.1'),
          _x(1, 5, 20, 80, 'while.2', 'while.2'),
          _x(1, 5, 25, 40, 'dot.3', 'dot.3'),
          _x(1, 5, 70, 20, 'wrapped_tanh', 'wrapped_tanh'),
      ]
  }
  s = profile_step.summarise(trace)  # no wall given: the span of the events, 100 us
  assert 'hlo_op' in s['source']
  got = {r['op']: r['us'] for r in s['rows']}
  assert got == {'dot.3': 40, 'wrapped_tanh': 20, 'while.2': 20, 'copy.1': 10}
  assert s['wall_us'] == 100 and s['busy_us'] == 90 and s['total_us'] == 90
  assert [r['op'] for r in s['rows']][0] == 'dot.3' and s['rows'][0]['share'] == 0.4


def test_flag_sweep_reports_unknown_flags(tmp_path, monkeypatch):
  # The subprocess is faked: a known flag gives a row, an unknown one XLA's fatal message.
  calls = []

  def fake_run(cmd, env, **kw):
    calls.append(env['XLA_FLAGS'])
    out = [a.split('=', 1)[1] for a in cmd if a.startswith('--out=')][0]
    if 'bogus' in env['XLA_FLAGS']:
      return subprocess.CompletedProcess(
          cmd,
          1,
          '',
          'F1202 parse_flags_from_env.cc:234] ' 'Unknown flag in XLA_FLAGS: --xla_bogus=1\n',
      )
    os.makedirs(out, exist_ok=True)
    rate = 200.0 if 'good' in env['XLA_FLAGS'] else 100.0
    with open(os.path.join(out, 'bench.jsonl'), 'w') as fh:
      fh.write(json.dumps(dict(rate=rate, ms=1e3 / rate, compile_s=3.0)) + '\n')
    return subprocess.CompletedProcess(cmd, 0, '', '')

  monkeypatch.setattr(bench.subprocess, 'run', fake_run)
  monkeypatch.setenv('XLA_FLAGS', '--base=1')
  rows = bench.main(
      [
          '--size=tiny',
          '--datasets=emnist',
          '--variants=bf16-xla-k2-donate',
          f'--out={tmp_path}',
          '--xla_flags_variants=--xla_good=1; --xla_bogus=1',
      ]
  )
  assert calls == ['--base=1', '--base=1 --xla_good=1', '--base=1 --xla_bogus=1']
  assert [r['rate'] for r in rows] == [100.0, 200.0, None]
  assert 'Unknown flag' in rows[2]['status']
  md = (tmp_path / 'flags.md').read_text()
  assert '| --xla_good=1 | 200.0 | 5.00 | 2.000x | 3 | ok |' in md


def test_ablation_variant_that_changes_the_gan_trains_its_own_control(tmp_path):
  import ablation  # pylint: disable=g-import-not-at-top

  base = tmp_path / 'base'
  for name in ('classifier', 'evaluators', 'control', 'checkpoints', 'report'):
    (base / name).mkdir(parents=True)
  (base / 'results.json').write_text('{}')
  (base / 'samples.png').write_text('')
  # One-hot rows change what the control's G is trained on; views and the margin
  # act only through gamma, which is 0 in the control.
  assert ablation.changes_the_gan(ablation.VARIANTS['onehot'])
  assert ablation.changes_the_gan(ablation.VARIANTS['views+max_margin+onehot'])
  assert not ablation.changes_the_gan(ablation.VARIANTS['views+max_margin'])
  for name, kept in (
      ('views+max_margin', {'classifier', 'evaluators', 'control'}),
      ('onehot', {'classifier', 'evaluators'}),
  ):
    flags = ablation.VARIANTS[name]
    ablation.copy_for_variant(
        str(base),
        str(tmp_path / name),
        retrain=True,
        retrain_control=ablation.changes_the_gan(flags),
    )
    assert set(os.listdir(tmp_path / name)) == kept
