"""The run report: its numbers on hand-made classifiers, its page, its files; plots
and interpolation grids."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from c2g_jax import attack as attack_lib
from c2g_jax import audit
from c2g_jax import classifier
from c2g_jax import evaluate
from c2g_jax import images
from c2g_jax import interpolation
from c2g_jax import metrics
from c2g_jax import networks
from c2g_jax import plots
from c2g_jax import report
from c2g_jax import verdict
from c2g_jax.data.problems import Problem
from configs import emnist as emnist_config

NAMES = ['a', 'b', 'c', 'd']
# The tiny run's judges recover nothing, and the verdict speaks of the variety of
# recovered targets only (tests/test_verdict.py); the report tests below check how the
# measure reaches the verdict and the page, so every status counts there.
EVERY_STATUS = audit.READ_AS + ('not recovered', 'not shown')


def coded_images(classes, rng, shape=(2, 2, 1)):
  """Images whose every pixel is class/10 (+ small noise): a class code a hand
  classifier can read back."""
  classes = np.asarray(classes)
  return (
      classes.reshape((-1,) + (1,) * len(shape)) / 10.0 + 0.01 * rng.random((len(classes),) + shape)
  ).astype(np.float32)


def hand_classifier(confusions=None):
  """probs = onehot(decoded class), except classes in `confusions` {c: t}, which it
  takes for t with probability 0.95; features = the image's pixels."""
  confusions = confusions or {}

  def fn(x):
    x = np.asarray(x, np.float32)
    if x.dtype == np.uint8:
      x = x / 255.0
    code = np.rint(x.reshape(len(x), -1).mean(1) * 10).astype(int)
    probs = np.full((len(x), len(NAMES)), 0.01)
    for i, c in enumerate(code):
      t = confusions.get(int(c), int(c))
      probs[i] = (1 - 0.95) / (len(NAMES) - 1)
      probs[i, min(t, len(NAMES) - 1)] = 0.95
    return probs, x.reshape(len(x), -1)

  return fn


def coded_problem(rng, targets):
  """8 generated images per target, 6 private images per class of NAMES, 30 auxiliary."""
  generated = np.stack([coded_images([t] * 8, rng) for t in targets])
  private_y = np.repeat(np.arange(4), 6)
  private_x = coded_images(private_y, rng)
  return generated, private_x, private_y, coded_images(rng.integers(0, 4, 30), rng)


def test_leak_metrics_on_hand_made_classifiers():
  rng = np.random.default_rng(0)
  targets = [1, 3]
  generated, private_x, private_y, aux_x = coded_problem(rng, targets)
  # Real images of classes 0..5 ('a'..'d', 'x', 'y'); f takes 'x' (code 4) for 'b'.
  ref_y = np.repeat(np.arange(6), 5)
  ref = (coded_images(ref_y, rng), ref_y, NAMES + ['x', 'y'])
  numbers, curves = report.leak_metrics(
      generated,
      targets,
      NAMES,
      private_x,
      private_y,
      aux_x,
      f_eval=hand_classifier({4: 1}),
      e_eval=hand_classifier(),
      reference=ref,
      k=3,
  )
  assert numbers['targets'] == ['b', 'd']
  assert numbers['evaluator']['acc@1']['per_class'] == {'b': 1.0, 'd': 1.0}
  assert numbers['evaluator']['acc@5']['mean'] == 1.0
  assert numbers['f']['acc@1']['mean'] == 1.0
  # 'y' (code 5) is clipped to 'd' by the hand classifier: it too is a false recognition.
  assert numbers['false_recognition'] == {'b': [('x', 1.0)], 'd': [('y', 1.0)]}
  per = numbers['features']['per_class']
  assert set(per) == {'b', 'd'}
  # Generated images sit within 0.01-noise of their class's private images.
  assert per['b']['knn_generated'] < 0.05 and per['b']['precision'] > 0.5
  assert numbers['features']['summary']['fid']['mean'] >= 0
  assert set(curves) == {'b', 'd'}
  np.testing.assert_allclose(curves['b']['generated'], 0.95)
  assert len(curves['b']['private']) == 6 and len(curves['b']['aux']) == 30
  assert np.all(np.diff(curves['b']['aux']) <= 0)


def test_leak_metrics_default_reference_is_d_tr_and_f_reads_it_once():
  targets = [1, 3]
  generated, private_x, private_y, aux_x = coded_problem(np.random.default_rng(1), targets)
  f = hand_classifier({2: 1})  # f takes 'c' for 'b': a false recognition inside D_tr
  seen = []

  def f_eval(x):
    seen.append(len(x))
    return f(x)

  numbers, _ = report.leak_metrics(
      generated, targets, NAMES, private_x, private_y, aux_x, f_eval, hand_classifier(), k=3
  )
  expected = metrics.false_recognition(f(private_x)[0], private_y, NAMES, targets, ['b', 'd'])
  assert numbers['false_recognition'] == expected and expected['b'] == [('c', 1.0)]
  assert numbers['false_recognition_images'] == len(private_x)
  assert seen.count(len(private_x)) == 1  # f over D_tr once: Figure 6 and this table share it


def test_write_html_holds_the_tables_and_figures(tmp_path):
  numbers = {
      'targets': ['0', '1'],
      'samples_per_target': 5,
      'evaluator': {
          m: {'per_class': {'0': 0.25, '1': 0.75}, 'mean': 0.5, 'std': 0.25}
          for m in ('acc@1', 'acc@5')
      },
      'f': {'acc@1': {'per_class': {'0': 1.0, '1': 0.0}, 'mean': 0.5, 'std': 0.5}},
      'features': {
          'per_class': {'0': {'fid': 12.5, 'kid': 0.125}},
          'k': 3,
          'summary': {'fid': {'mean': 12.5, 'std': 0.0}},
          'aux_images_used': 7,
          'skipped': ['1'],
      },
      'false_recognition': {'0': [('O', 0.625)], '1': []},
      'false_recognition_images': 42,
  }
  Image.new('L', (4, 4)).save(tmp_path / 'fig.png')
  page = str(tmp_path / 'index.html')
  report.write_html(
      page,
      'T <1>',
      {'attack': {'steps': 17}},
      {'f': 0.9876},
      numbers,
      {'My figure': 'fig.png'},
      notes=['hello'],
  )
  text = open(page).read()
  for expected in (
      'T &lt;1&gt;',
      '0.9876',
      '0.25',
      '0.75',
      '12.500',
      'O (0.625)',
      '<img src="fig.png">',
      'attack.steps',
      '17',
      'Skipped',
      'hello',
  ):
    assert expected in text, expected


def test_top_sorted_keeps_the_largest_first():
  curves_in = np.array([0.2, 0.9, 0.5])
  np.testing.assert_array_equal(plots.top_sorted(curves_in, 2), [0.9, 0.5])
  assert plots.top_sorted(np.ones(800), 500).shape == (500,)


def _pixels_of(img: np.ndarray, hex_color: str, tol: int = 10) -> np.ndarray:
  """A mask of the pixels within tol of a '#rrggbb' colour."""
  rgb = np.array([int(hex_color[i : i + 2], 16) for i in (1, 3, 5)])
  return np.all(np.abs(img.astype(int) - rgb) <= tol, axis=-1)


def _open_png(path, size):
  img = Image.open(path)
  assert img.format == 'PNG' and img.size == size
  img = np.asarray(img.convert('RGB'))
  assert len(np.unique(img.reshape(-1, 3), axis=0)) > 20  # not blank
  return img


def test_figure6_png(tmp_path):
  path = str(tmp_path / 'f6.png')
  out = plots.figure6(path, np.ones(10), np.zeros(700), np.full(600, 0.5), '7')
  img = _open_png(path, (800, 500))
  assert [len(v) for v in out.values()] == [10, 500, 500]
  for color in plots.COLORS[:3]:  # each curve is drawn in its colour
    assert _pixels_of(img, color).sum() > 50, color


def test_training_curves_plot_every_logged_step(tmp_path):
  # One spike at step 137, not a multiple of any logging cadence. Plotted, it
  # stretches the y axis and the zero line drops to the panel's bottom (below
  # row 180); missed, the flat line sits mid-panel (about row 130).
  records = [
      {'step': s, 'critic_loss': 1.0 if s == 137 else 0.0, 'gamma': 0.5 * s} for s in range(1, 201)
  ]
  path = str(tmp_path / 'c.png')
  plots.training_curves(path, records, ['critic_loss', 'gamma', 'absent'], 'losses')
  img = _open_png(path, (800, 80 + 200 * 2))  # one panel per key that has records
  loss = _pixels_of(img, plots.COLORS[0])
  assert np.nonzero(loss.any(axis=1))[0].max() > 180
  assert _pixels_of(img, plots.COLORS[1]).sum() > 50


def _leak_inputs(t, rng):
  attack = rng.uniform(0.3, 0.9, t)
  control = rng.uniform(0.0, 0.2, t)
  leak = attack - control
  ci = lambda v, h: np.stack([v - h, v + h])
  return attack, ci(attack, 0.1), control, ci(control, 0.05), leak, ci(leak, 0.12)


@pytest.mark.parametrize('t, size', [(3, (800, 700)), (100, (800, 200 + 20 * 100))])
def test_leak_bars_png(tmp_path, t, size):
  rng = np.random.default_rng(t)
  names = [f'Person {i} Lastname' for i in range(t)] if t > 3 else ['0', '1', '2']
  path = str(tmp_path / 'leak.png')
  plots.leak_bars(path, names, *_leak_inputs(t, rng), 'Leak per target', evaluator="f'")
  img = _open_png(path, size)
  for color in plots.COLORS[:3]:  # attack, control and leak bars
    assert _pixels_of(img, color, tol=2).sum() > 200, color
  # The real test images' level: a line across the attack's bar of each target that has one.
  assert _pixels_of(img, plots.REAL_COLOR, tol=2).sum() == 0
  marked = str(tmp_path / 'marked.png')
  plots.leak_bars(marked, names, *_leak_inputs(t, rng), 'x', real=[0.5] * (t - 1) + [None])
  assert _pixels_of(_open_png(marked, size), plots.REAL_COLOR, tol=2).sum() > 20 * t
  with pytest.raises(ValueError, match='3 names but 2 attack'):
    plots.leak_bars(path, names[:3], *[v[..., :2] for v in _leak_inputs(2, rng)], 'x')


def test_interpolation_rows_walk_the_right_line():
  rows = interpolation.latent_rows(jax.random.PRNGKey(0), [2, 0, 1], 3, 5, 4)
  z, y = rows['z']
  assert z.shape == (3, 4, 5) and y.shape == (3, 4, 3)
  np.testing.assert_allclose(y[0], np.tile([0, 0, 1], (4, 1)))  # y fixed
  np.testing.assert_allclose(z[:, 1] - z[:, 0], z[:, 3] - z[:, 2], atol=1e-6)
  z, y = rows['y']
  np.testing.assert_allclose(z[1, 0], z[1, 3])  # z fixed
  np.testing.assert_allclose(y[1, 0], [1, 0, 0])  # target 0 ...
  np.testing.assert_allclose(y[1, -1], [0, 1, 0])  # ... to target 1
  np.testing.assert_allclose(y[2, -1], [0, 0, 1])  # last row wraps
  z, y = rows['zy']
  assert not np.allclose(z[0, 0], z[0, -1]) and not np.allclose(y[0, 0], y[0, -1])


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
  """A tiny untrained attack, f and f', and a fake run directory."""
  rng = np.random.default_rng(0)
  d = 4
  f_module = networks.Classifier(num_classes=d, width=0.125)
  e_module = networks.ResNet(num_classes=d, width=0.0625)
  x0 = jnp.zeros((1, 28, 28, 1))
  meta = {'value_range': [0.0, 1.0]}
  # Jitted inits: eager, op-by-op initialisation of the ResNet is slow on CPU.
  f = (f_module, jax.jit(f_module.init)(jax.random.PRNGKey(1), x0), meta)
  e = (e_module, jax.jit(e_module.init)(jax.random.PRNGKey(2), x0), meta)
  attack = attack_lib.Attack(
      generator=networks.Generator(width=0.0625),
      critic=networks.Critic(width=0.0625),
      f_apply=None,
      num_classes=d,
      image_shape=(28, 28, 1),
      value_range=(0.0, 1.0),
      hyper=attack_lib.Hyper(batch_size=4),
  )
  g_params = jax.jit(attack.generator.init)(
      jax.random.PRNGKey(3), jnp.zeros((1, 128)), jnp.zeros((1, d))
  )['params']
  u8 = lambda n: rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8)
  problem = Problem(
      'emnist', u8(40), np.arange(40) % d, u8(24), np.arange(24) % d, u8(30), NAMES, [0, 2]
  )
  config = emnist_config.get_config('numeric_mutually_exclusive,tiny')
  workdir = str(tmp_path_factory.mktemp('run'))
  with open(os.path.join(workdir, 'metrics.jsonl'), 'w') as fh:
    for s in (2, 4):
      fh.write(
          json.dumps(
              {
                  'step': s,
                  'critic_loss': 1.0 / s,
                  'gradient_penalty': 0.1,
                  'generator_loss': -s,
                  'gamma': 0.5 * s,
                  'similarity': -2.0,
              }
          )
          + '\n'
      )
  generated = evaluate.sample_targets(
      attack, g_params, problem.target_ids, 12, jax.random.PRNGKey(4)
  )
  grid = os.path.join(workdir, 'samples.png')
  images.save_grid(grid, generated[:, :4], (0.0, 1.0), ['a', 'c'])
  return config, problem, attack, g_params, f, e, generated, workdir, grid


def test_run_report_writes_the_page_and_agrees_with_inception_accuracy(tiny_run, monkeypatch):
  config, problem, attack, g_params, f, e, generated, workdir, grid = tiny_run
  monkeypatch.setattr(audit, 'READ_AS', EVERY_STATUS)
  results = {'setting': 'hand', 'steps': 4, 'f_test_accuracy': 0.5, 'evaluator_test_accuracy': 0.25}
  ref_y = np.arange(12) % 6
  reference = (
      np.random.default_rng(1).integers(0, 256, (12, 28, 28, 1), dtype=np.uint8),
      ref_y,
      NAMES + ['x', 'y'],
  )
  # Two evaluators, the second more accurate (it heads the verdict); the control's
  # samples are the attack's shuffled across targets.
  e2 = (e[0], e[1], dict(e[2], test_accuracy=0.5))
  e1 = (f[0], f[1], dict(f[2], test_accuracy=0.25))
  control = generated[::-1]
  out = report.run_report(
      workdir,
      config,
      problem,
      attack,
      g_params,
      f,
      [('one', e1), ('two', e2)],
      generated,
      results,
      grid,
      reference=reference,
      control_generated=control,
  )
  e_apply = classifier.probs_fn(e[0], (0.0, 1.0))
  expected = evaluate.inception_accuracy(
      evaluate.predict_labels(e_apply, e[1], generated), problem.target_ids
  )
  assert list(out['acc1'].values()) == pytest.approx(list(expected))
  assert out['headline_evaluator'] == 'two' and out['evaluator_test_accuracy'] == 0.5
  expected_control = evaluate.inception_accuracy(
      evaluate.predict_labels(e_apply, e[1], control), problem.target_ids
  )
  assert list(out['control_inception_accuracy'].values()) == pytest.approx(list(expected_control))
  for row, a, c in zip(out['leak']['per_target'], expected, expected_control):
    assert (row['attack'], row['control']) == pytest.approx((a, c))
    assert row['leak_ci'] == pytest.approx(
        verdict.difference_interval(round(a * 12), 12, round(c * 12), 12)
    )
  # Beside them, what the headline gives the real test images of each target.
  real_labels = evaluate.predict_labels(e_apply, e[1], images.to_float(problem.test_x, (0.0, 1.0)))
  expected_real = [np.mean(real_labels[problem.test_y == t] == t) for t in problem.target_ids]
  assert list(out['real_inception_accuracy'].values()) == pytest.approx(expected_real)
  assert out['real_inception_accuracy_mean'] == pytest.approx(np.mean(expected_real))
  assert [r['real'] for r in out['leak']['per_target']] == pytest.approx(expected_real)
  assert 'Real test images of these targets score' in out['verdict']
  f_apply = classifier.probs_fn(f[0], (0.0, 1.0))
  expected_one = evaluate.inception_accuracy(
      evaluate.predict_labels(f_apply, f[1], generated), problem.target_ids
  )
  assert list(out['evaluators']['one']['attack'].values()) == pytest.approx(list(expected_one))

  # The verdict names 'one' too exactly when its mean leak interval lies wholly above the
  # headline's (24 samples of the attack and 24 of the control each).
  def interval(name):
    e = out['evaluators'][name]
    return verdict.difference_interval(
        round(e['attack_mean'] * 24), 24, round(e['control_mean'] * 24), 24
    )

  above = interval('one')[0] > interval('two')[1]
  assert (out['larger_leak'] or {}).get('evaluator') == ('one' if above else None)
  assert ('Another judge reads more: ' in out['verdict']) == above
  assert ('larger leak: decide by it' in open(out['report']).read()) == above
  # f (0.5 on the test set) beats evaluator 'one' (0.25): one warning, also on the page.
  assert len(out['warnings']) == 1 and "f'[one]" in out['warnings'][0]
  assert out['acc5_mean'] == 1.0  # 4 classes: the target is always in the top 5
  files = set(os.listdir(os.path.join(workdir, 'report')))
  assert {
      'index.html',
      'report.json',
      'samples.png',
      'figure6_a_lower.png',
      'figure6_c_lower.png',
      'interp_z.png',
      'interp_y.png',
      'interp_zy.png',
      'losses.png',
      'gamma_similarity.png',
      'leak.png',
  } <= files
  saved = json.load(open(os.path.join(workdir, 'report', 'report.json')))
  assert saved['numbers']['targets'] == ['a', 'c']
  assert len(saved['figure6']['a']['generated']) == 12
  page = open(out['report']).read()
  assert 'figure6_a_lower.png' in page and 'Interpolation along y' in page
  # The verdict comes first: before the samples and every other table.
  assert page.index(out['verdict'].split(':')[0]) < page.index('<h2>Samples')
  assert page.index('leak.png') < page.index('Inception accuracy (Tables 3 and 4)')
  assert 'weaker than the model it audits' in page
  # Interpolation grids: 2 rows of grid_columns steps, row labels on the left.
  cols = max(config.eval.grid_columns, 2)
  assert Image.open(os.path.join(workdir, 'report', 'interp_y.png')).height == 2 * 28 * 2
  assert Image.open(os.path.join(workdir, 'report', 'interp_y.png')).width > cols * 28 * 2
  # TensorBoard holds the final grid and the per-target table at the final step.
  from tensorboard.backend.event_processing import event_accumulator

  acc = event_accumulator.EventAccumulator(os.path.join(workdir, 'tensorboard')).Reload()
  assert [i.step for i in acc.Images('samples')] == [4]
  (text,) = acc.Tensors('verdict/hand/text_summary')
  table = text.tensor_proto.string_val[0].decode()
  assert text.step == 4 and table.splitlines()[0] == out['verdict']
  rows = {line.split(' | ')[0][2:]: line for line in table.splitlines() if line.startswith('| ')}
  leak_a = out['leak']['per_target'][0]
  assert rows['a'].startswith(f"| a | {leak_a['attack']:.3f} | {leak_a['control']:.3f} | ")
  assert rows['a'].endswith(f" | {leak_a['real']:.3f} |")
  assert '<th>real test images</th>' in page
  # How much of each private class the samples cover, against as many real test
  # images of it, in the headline's features.
  head_eval = report.model_eval(*e2, (0.0, 1.0))
  feats = head_eval(generated.reshape((-1, 28, 28, 1)))[1].reshape(2, 12, -1)
  private_feats, test_feats = head_eval(problem.private_x)[1], head_eval(problem.test_x)[1]
  expected = {
      name: metrics.coverage_against_real(
          private_feats[problem.private_y == t], feats[i], test_feats[problem.test_y == t]
      )['relative_coverage']
      for i, (name, t) in enumerate(zip(['a', 'c'], problem.target_ids))
  }
  assert out['diversity']['relative_coverage'] == pytest.approx(expected)
  assert saved['numbers']['features']['per_class']['a']['relative_coverage'] == pytest.approx(
      expected['a']
  )
  narrow = [n for n, r in expected.items() if r < verdict.NARROW_COVERAGE]
  assert out['diversity']['narrow'] == narrow
  assert ('The samples vary little' in out['verdict']) == bool(narrow)


def test_run_report_names_a_judge_with_a_clearly_larger_leak(tiny_run, monkeypatch):
  config, problem, attack, g_params, f, e, generated, workdir, grid = tiny_run
  # As if 'one' (the less accurate judge) read a leak wholly above the headline's.
  monkeypatch.setattr(verdict, 'clearly_larger', lambda other, head: other.leak > head.leak - 1)
  judges = [
      ('one', (f[0], f[1], dict(f[2], test_accuracy=0.25))),
      ('two', (e[0], e[1], dict(e[2], test_accuracy=0.5))),
  ]
  results = {'setting': 'hand', 'steps': 4, 'f_test_accuracy': 0.5}
  run = (workdir, config, problem, attack, g_params, f, judges, generated, results, grid)
  out = report.run_report(*run, control_generated=generated[::-1])
  one = out['evaluators']['one']
  assert out['headline_evaluator'] == 'two' and out['larger_leak']['evaluator'] == 'one'
  assert out['larger_leak_mean'] == pytest.approx(one['attack_mean'] - one['control_mean'])
  assert f"Another judge reads more: f'[one] (test accuracy 0.250) gives the same samples" in (
      out['verdict']
  )
  page = open(out['report']).read()
  assert 'larger leak: decide by it' in page
  # Its own leak chart, after the headline's: the picture the verdict says to decide by.
  assert page.index('src="leak.png"') < page.index('src="leak_one.png"')
  assert "The larger leak: f'[one] (test accuracy 0.250)" in page
  assert Image.open(os.path.join(os.path.dirname(out['report']), 'leak_one.png')).size[0] > 100


def test_run_report_says_when_the_generator_collapsed(tiny_run, monkeypatch):
  config, problem, attack, g_params, f, e, generated, workdir, grid = tiny_run
  monkeypatch.setattr(audit, 'READ_AS', EVERY_STATUS)
  # Every z gives the same image of each target: the share cannot see it, the verdict must.
  collapsed = np.repeat(np.asarray(generated)[:, :1], generated.shape[1], axis=1)
  judges = [('one', (e[0], e[1], dict(e[2], test_accuracy=0.5)))]
  results = {'setting': 'hand', 'steps': 4, 'f_test_accuracy': 0.5}
  run = (workdir, config, problem, attack, g_params, f, judges, collapsed, results, grid)
  out = report.run_report(*run, control_generated=generated[::-1])
  relative = out['diversity']['relative_coverage']
  assert out['diversity']['narrow'] == ['a', 'c'] and max(relative.values()) < 0.2
  assert 'so G draws nearly one image per target whatever z: the samples show' in out['verdict']
  page = open(out['report']).read()
  assert 'leak.png' in page and 'The larger leak' not in page  # one judge: one chart
  assert 'The samples vary little' in page and 'relative coverage (samples / real)' in page


# --- the experiment grid's tables ------------------------------------------------------------


def _fake_results(targets, value, report_page='/x/report/index.html'):
  return {
      'inception_accuracy': {t: value for t in targets},
      'acc1_mean': value,
      'acc5_mean': 1.0,
      'fid_mean': 3.0,
      'f_test_accuracy': 0.9,
      'evaluator_test_accuracy': 0.8,
      'report': report_page,
  }


def test_grid_tables_put_ours_beside_the_paper(tmp_path):
  from c2g_jax import experiment_grid as grid_lib

  digits = [str(i) for i in range(10)]
  grid = {
      'preimagegan': {
          'numeric_exact_same': _fake_results(digits, 0.5),
          'numeric_partly_same': _fake_results(digits, 0.4),
          'numeric_mutually_exclusive': _fake_results(digits, 0.25),
      },
      'acgan': {},
  }
  grid['preimagegan']['numeric_mutually_exclusive']['false_recognition'] = {d: [] for d in digits}
  grid['preimagegan']['numeric_mutually_exclusive']['false_recognition']['0'] = [('O', 0.5)]
  for s in ('numeric_exact_same', 'numeric_mutually_exclusive'):
    grid['acgan'][s] = dict(_fake_results(digits, 0.75), dtr=grid_lib.dtr_name(s))
  targets, rows = grid_lib.table_rows(grid, grid_lib.TABLES[0][1])
  assert targets == digits
  by_key = {(m, s, src): (vals, mean) for m, s, src, vals, mean in rows}
  cells, mean = by_key[('PreImageGAN', 'numeric_mutually_exclusive', 'paper')]
  assert [c.value for c in cells] == [0.97, 1.00, 0.59, 0.39, 0.86, 0.98, 0.97, 0.61, 0.72, 0.48]
  # Table 4's '?' cells stay uncertain, '-' cells missing; the mean is the paper's own.
  assert [c.uncertain for c in cells] == [False, False, True] + [False] * 7
  assert mean.text == '0.757' and mean.value == pytest.approx(0.757)
  cells, mean = by_key[('PreImageGAN', 'numeric_exact_same', 'paper')]
  assert cells[8].missing and cells[8].text == '-' and mean.text == '~1.00'
  cells, _ = by_key[('PreImageGAN', 'numeric_partly_same', 'paper')]
  assert cells[7].text == '0.53? (or 0.33)' and cells[7].uncertain and cells[7].value == 0.53
  assert by_key[('PreImageGAN', 'numeric_exact_same', 'ours')][1] == 0.5
  assert by_key[('ACGAN (D_tr: all62)', 'numeric_exact_same', 'ours')][1] == 0.75
  acgan_cells, acgan_mean = by_key[('ACGAN (D_tr: digits)', 'numeric_mutually_exclusive', 'paper')]
  assert [c.value for c in acgan_cells] == [1.00] * 10 and acgan_mean.value == 1.0
  text = grid_lib.write_tables(str(tmp_path), grid, 'test')
  assert '| PreImageGAN | numeric_mutually_exclusive | paper | 0.97 | 1.00 | 0.59? | 0.39' in text
  assert (
      '| PreImageGAN | numeric_exact_same | paper | 1.00 | 1.00 | 1.00 | 1.00 | 1.00 | 1.00 '
      '| 0.99 | 1.00 | - | 1.00 | ~1.00 |' in text
  )
  assert 'Table 3' not in text  # no lowercase runs
  # Appendix B, Table 8, beside ours.
  assert (
      '| Table 8: digit targets, numeric f (mutually exclusive) | numeric_mutually_exclusive '
      '| 0 | O (0.500) | O (0.946) o (0.851) D (0.493) Q (0.362) c (0.200) |'
  ) in text
  assert '| numeric_mutually_exclusive | 1 | none | l (0.904)' in text
  # Table 7 is about f alone: exact and partly same share f, so one set of rows names both;
  # lists that differ (another f) keep a set each.
  shared = {d: [] for d in digits}
  shared['1'] = [('l', 0.25)]
  for s in ('numeric_exact_same', 'numeric_partly_same'):
    grid['preimagegan'][s]['false_recognition'] = shared
  rows = grid_lib.false_recognition_rows(grid)
  table7 = [r for r in rows if r[0].startswith('Table 7')]
  assert [r[1] for r in table7] == ['numeric_exact_same / numeric_partly_same'] * 10
  assert table7[1][2:4] == ('1', [('l', 0.25)])
  grid['preimagegan']['numeric_partly_same']['false_recognition'] = {d: [] for d in digits}
  table7 = [r for r in grid_lib.false_recognition_rows(grid) if r[0].startswith('Table 7')]
  assert [r[1] for r in table7] == ['numeric_exact_same'] * 10 + ['numeric_partly_same'] * 10
  page = (tmp_path / 'index.html').read_text()
  assert '<td class="uncertain" title="digits uncertain in the copy">0.59?</td>' in page
  assert '<td class="uncertain" title="lost in the copy of the paper">-</td>' in page
  assert os.path.exists(tmp_path / 'grid.json')
  # The summary figure: ours, the paper's and ACGAN's bars, linked from the page.
  img = np.asarray(Image.open(tmp_path / 'summary.png').convert('RGB'))
  assert img.shape == (600, 800, 3)
  for color in plots.COLORS[:4]:
    assert _pixels_of(img, color, tol=2).sum() > 200, color
  assert '<img src="summary.png"' in (tmp_path / 'index.html').read_text()


def test_grid_lowercase_table_shows_the_papers_ten_letters():
  from c2g_jax import experiment_grid as grid_lib

  letters = [chr(c) for c in range(ord('a'), ord('z') + 1)]
  ours = _fake_results(letters, 0.5)
  ours['inception_accuracy'].update(a=1.0, o=0.0)  # a: one of the paper's ten; o: not
  grid = {
      'preimagegan': {
          'lowercase_mutually_exclusive': ours,
          'noise': _fake_results(['0', '1', '2'], 0.0),
      },
      'acgan': {},
  }
  targets, rows = grid_lib.table_rows(grid, grid_lib.TABLES[1][1])
  assert targets == letters
  # Beside the paper's mean (over its ten letters), ours over the same ten.
  means = {src: mean for m, s, src, v, mean in rows}
  assert means['ours'] == pytest.approx((24 * 0.5 + 1.0) / 26)
  assert means["ours, the paper's targets only"] == pytest.approx((9 * 0.5 + 1.0) / 10)
  ten = [v for m, s, src, v, mean in rows if src == "ours, the paper's targets only"][0]
  assert [t for t, v in zip(letters, ten) if v is not None] == list('abdefhiqru')
  # The summary figure's bars use the same targets; digits are all printed.
  assert grid_lib.paper_targets('PreImageGAN', 'lowercase_mutually_exclusive', letters) == list(
      'abdefhiqru'
  )
  digits = [str(d) for d in range(10)]
  assert grid_lib.paper_targets('PreImageGAN', 'numeric_exact_same', digits) == digits
  # Partly same: the copy lost the paper's mean and b's cell, so its mean is over the
  # nine kept letters; the grid's row and a run's comparison take ours over the same.
  nine = list('adefhiqru')
  assert grid_lib.paper_targets('PreImageGAN', 'lowercase_partly_same', letters) == nine
  partly = {
      'preimagegan': {'lowercase_partly_same': _fake_results(letters, 0.5)},
      'acgan': {},
  }
  partly['preimagegan']['lowercase_partly_same']['inception_accuracy'].update(a=1.0, b=0.0)
  _, partly_rows = grid_lib.table_rows(partly, grid_lib.TABLES[1][1])
  partly_means = {src: mean for m, s, src, v, mean in partly_rows}
  assert partly_means["ours, the paper's targets only"] == pytest.approx((8 * 0.5 + 1.0) / 9)
  shares = partly['preimagegan']['lowercase_partly_same']['inception_accuracy']
  from c2g_jax import paper_tables as pt

  c = pt.compare('PreImageGAN', 'lowercase_partly_same', shares)
  assert c['targets'] == nine and c['attack_mean'] == pytest.approx((8 * 0.5 + 1.0) / 9)
  # No paper row (noise): all of ours.
  assert grid_lib.paper_targets('PreImageGAN', 'noise', ['0', '1', '2']) == ['0', '1', '2']
  paper = {m: (v, mean) for m, s, src, v, mean in rows if src == 'paper'}
  cells, mean = paper['PreImageGAN']
  shown = {t: c.text for t, c in zip(targets, cells) if c is not None}
  assert shown == {
      'a': '0.10',
      'b': '0.81',
      'd': '0.76',
      'e': '0.95',
      'f': '1.00',
      'h': '0.86',
      'i': '0.94',
      'q': '0.84',
      'r': '0.99',
      'u': '1.00',
  }
  assert mean.text == '0.825'
  text = grid_lib.markdown(grid, 't')
  assert (
      '| PreImageGAN | lowercase_mutually_exclusive | paper | 0.10 | 0.81 |  | 0.76 | 0.95 '
      '| 1.00 |  | 0.86 | 0.94 |'
  ) in text
  # Appendix A gives pictures only: the noise row says so instead of numbers.
  assert '| PreImageGAN | noise | paper | no numbers in the paper |' in text


def test_paper_tables_parse_cells_and_keep_appendix_b():
  from c2g_jax import paper_tables as pt

  assert pt.cell('0.59?') == pt.Cell('0.59?', 0.59, uncertain=True)
  assert pt.cell('-').missing and pt.cell('').missing
  assert pt.cell('~0.88').approximate and not pt.cell('~0.88').uncertain
  with pytest.raises(ValueError, match='0,5'):
    pt.cell('0,5')
  lower = pt.INCEPTION[('PreImageGAN', 'lowercase_exact_same')]
  assert lower.get('f').text == '0.00?' and lower.get('c') is None and lower.mean.uncertain
  assert pt.INCEPTION[('ACGAN', 'lowercase_partly_same')].get('b').missing
  assert pt.INCEPTION[('PreImageGAN', 'lowercase_partly_same')].mean.missing
  title, table = pt.false_recognition_for('lowercase_mutually_exclusive')
  assert title.startswith('Table 6') and table['e'][0] == ('E', 0.186) and table['i'] == []
  assert len(pt.false_recognition_for('numeric_partly_same')[1]['8']) == 5
  assert pt.false_recognition_for('noise') is None


def test_paper_comparison_takes_the_means_over_the_papers_targets():
  from c2g_jax import paper_tables as pt

  letters = 'abcdefghijklmnopqrstuvwxyz'
  attack = {t: i / 25 for i, t in enumerate(letters)}  # a 0.00, b 0.04, ..., z 1.00
  control = {t: 0.01 for t in letters}
  c = pt.compare('PreImageGAN', 'lowercase_mutually_exclusive', attack, control)
  # Table 3 prints a b d e f h i q r u: indices 0 1 3 4 5 7 8 16 17 20, sum 81.
  assert c['targets'] == list('abdefhiqru')
  assert c['attack_mean'] == pytest.approx(81 / 25 / 10)
  assert c['control_mean'] == pytest.approx(0.01) and c['real_mean'] is None
  assert (c['table'], c['paper_mean'], c['uncertain']) == ('Table 3', 0.825, False)
  line = pt.comparison_sentence(c, 'vgg')
  assert 'over a b d e f h i q r u: mean 0.825;' in line
  assert "judged by f'[vgg]: 0.324 (control 0.010)." in line
  # The copy lost partly same's mean and its b: the paper's side is the mean of the
  # nine cells it kept, ours over the same nine letters.
  c = pt.compare('PreImageGAN', 'lowercase_partly_same', attack)
  kept = [0.99, 0.89, 0.67, 0.00, 0.71, 0.08, 0.33, 0.99, 0.60]
  assert c['targets'] == list('adefhiqru')
  assert c['paper_mean'] == pytest.approx(sum(kept) / 9)
  assert c['attack_mean'] == pytest.approx((81 - 1) / 25 / 9)
  assert 'not printed: the mean of the 9 cells the copy kept' in pt.comparison_sentence(c, 'vgg')
  # Uncertain digits are said; ACGAN has its own row; faces and noise have none.
  c = pt.compare('PreImageGAN', 'lowercase_exact_same', attack)
  assert c['uncertain'] and 'digits uncertain' in pt.comparison_sentence(c, 'vgg')
  digits = {str(d): 0.5 for d in range(10)}
  assert pt.compare('ACGAN', 'numeric_partly_same', digits)['paper_mean'] == 1.0
  assert pt.compare('PreImageGAN', 'noise', digits) is None
  assert pt.compare('PreImageGAN', 'orl', {'s1': 1.0}) is None
  # A run without the paper's targets (a custom target list) gets no comparison.
  assert pt.compare('PreImageGAN', 'lowercase_mutually_exclusive', {'z': 1.0}) is None


def test_grid_module_defines_its_flags_only_when_run():
  # Imported for run_grid and write_tables, it must leave the process's flags to
  # main.py (tests/test_robustness.py runs main.py in the same worker): both
  # define --workdir, and absl refuses a flag defined twice.
  from absl import flags
  from c2g_jax import experiment_grid as grid_lib

  assert not flags.FLAGS.flags_by_module_dict().get(grid_lib.__name__)


def test_grid_configs_and_dtr_groups():
  from c2g_jax import experiment_grid as grid_lib

  c = grid_lib.make_config(
      'noise', 'tiny', steps=7, overrides=['eval.samples_per_target=5', 'attack.similarity=neg_kl']
  )
  assert (c.attack.steps, c.eval.samples_per_target, c.attack.similarity) == (7, 5, 'neg_kl')
  with pytest.raises(ValueError, match='KEY=VALUE'):
    grid_lib.parse_override('attack.steps')
  with pytest.raises(ValueError, match='no_such'):
    grid_lib.make_config('noise', 'tiny', overrides=['attack.no_such=1'])
  names = {s: grid_lib.dtr_name(s) for s in grid_lib.ALL_SETTINGS}
  assert names['numeric_exact_same'] == names['noise'] == 'all62'
  assert names['lowercase_mutually_exclusive'] == 'digits+lowercase'
  assert names['numeric_mutually_exclusive'] == 'digits'
  with pytest.raises(ValueError, match='unknown settings'):
    grid_lib.run_grid('/nonexistent', ['numeric'], lambda s: None)


def test_grid_command_reports_a_foreign_workdir_in_one_line(tmp_path):
  """A setting's folder holding another run stops the grid with exit 2, not a traceback."""
  import subprocess
  import sys

  (tmp_path / 'noise').mkdir()
  (tmp_path / 'noise' / 'config.json').write_text(json.dumps({'seed': 12345}))
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  out = subprocess.run(
      [
          sys.executable,
          '-m',
          'c2g_jax.experiment_grid',
          '--size=tiny',
          '--settings=noise',
          '--noacgan',
          f'--workdir={tmp_path}',
          '--compilation_cache=none',
      ],
      cwd=repo,
      capture_output=True,
      text=True,
      timeout=300,
      env=dict(os.environ, JAX_PLATFORMS='cpu'),
  )
  assert out.returncode == 2, out.stderr[-3000:]
  errors = [l for l in out.stderr.splitlines() if l.startswith('error:')]
  assert len(errors) == 1 and 'holds a run with another config' in errors[0], out.stderr[-3000:]
  assert 'Traceback' not in out.stderr


def test_grid_tables_show_the_control_and_the_leak():
  from c2g_jax import experiment_grid as grid_lib

  digits = [str(i) for i in range(10)]
  res = dict(
      _fake_results(digits, 0.5),
      control_inception_accuracy={t: 0.125 if t == '0' else 0.25 for t in digits},
  )
  grid = {'preimagegan': {'numeric_mutually_exclusive': res}, 'acgan': {}}
  _, rows = grid_lib.table_rows(grid, grid_lib.TABLES[0][1])
  by_source = {src: (vals, mean) for _, _, src, vals, mean in rows}
  control, control_mean = by_source['ours, control (gamma = 0)']
  leak, leak_mean = by_source['ours, leak = attack - control']
  assert control[:2] == [0.125, 0.25] and leak[:2] == [0.375, 0.25]
  assert control_mean == pytest.approx(0.2375) and leak_mean == pytest.approx(0.2625)
  # The field table: the leak, and another judge's clearly larger leak where there is one.
  res['leak_mean'], res['larger_leak_mean'] = 0.06, 0.33
  other = dict(res, leak_mean=0.5)
  other.pop('larger_leak_mean')
  grid['preimagegan']['numeric_exact_same'] = other
  lines = grid_lib.markdown(grid, 'T').splitlines()
  header = next(line for line in lines if line.startswith('| method | setting | f acc |'))
  cells = lambda line: [c.strip() for c in line.strip('|').split('|')]
  col = cells(header).index('larger leak')
  assert cells(header)[col - 1] == 'leak'
  field = lines[lines.index(header) :]
  row = lambda s: cells(next(line for line in field if line.startswith(f'| PreImageGAN | {s} |')))
  assert row('numeric_mutually_exclusive')[col - 1 : col + 1] == ['0.060', '0.330']
  assert row('numeric_exact_same')[col - 1 : col + 1] == ['0.500', '']


def test_grid_reruns_each_setting_per_recipe_with_the_first_recipes_classifiers(tmp_path):
  from c2g_jax import experiment_grid as grid_lib

  digits = [str(i) for i in range(10)]
  settings = ['numeric_exact_same', 'noise', 'numeric_mutually_exclusive']
  calls = []

  def runner(jobs):  # records each job; an attack's numbers say which recipe ran it
    calls.append([(c.attack.recipe, c.classifier.checkpoint, c.evaluators, w) for c, w in jobs])
    for c, w in jobs:  # what a run trains and publishes: f and its evaluators' folders
      for e in c.evaluators.split(','):
        os.makedirs(os.path.join(w, 'evaluators', e), exist_ok=True)
    value = lambda c: 0.75 if c.attack.recipe == 'strong' else 0.5
    return [
        dict(
            _fake_results(digits, value(c)),
            control_inception_accuracy={t: 0.25 for t in digits},
        )
        for c, _ in jobs
    ]

  make = lambda s: grid_lib.make_config(s, 'tiny')
  grid = grid_lib.run_grid(
      str(tmp_path),
      settings,
      make,
      with_acgan=False,
      attack_runner=runner,
      recipes=['strong', 'paper'],
  )
  # Leaders (one per D_tr), followers, then every setting again with the paper's recipe.
  assert [[(r, w) for r, _, _, w in call] for call in calls] == [
      [('strong', str(tmp_path / 'numeric_exact_same')), ('strong', str(tmp_path / s))]
      for s in ['numeric_mutually_exclusive']
  ] + [
      [('strong', str(tmp_path / 'noise'))],
      [
          ('paper', str(tmp_path / 'recipe_paper' / s))
          for s in ['numeric_exact_same', 'numeric_mutually_exclusive', 'noise']
      ],
  ]
  # The paper recipe's runs use the first recipe's f and evaluators of their D_tr.
  for recipe, f, judges, w in calls[-1]:
    leader = 'numeric_mutually_exclusive' if 'mutually' in w else 'numeric_exact_same'
    assert f == str(tmp_path / leader / 'classifier')
    assert judges.split(',') == [
        str(tmp_path / leader / 'evaluators' / e) for e in ('vgg', 'classifier')
    ]
  assert grid['recipe'] == 'strong' and list(grid['recipes']) == ['paper']
  _, rows = grid_lib.table_rows(grid, grid_lib.TABLES[0][1])
  by_key = {(s, src): mean for _, s, src, _, mean in rows}
  assert by_key[('numeric_exact_same', 'ours')] == 0.75
  assert by_key[('numeric_exact_same', 'ours, recipe paper')] == 0.5
  assert by_key[('numeric_exact_same', 'ours, recipe paper, leak')] == pytest.approx(0.25)
  assert [m for m, s, *_ in grid_lib.field_rows(grid) if s == 'noise'] == [
      'PreImageGAN',
      'PreImageGAN, recipe paper',
  ]
  text = grid_lib.write_tables(str(tmp_path), grid, 'tiny')
  assert '| PreImageGAN | numeric_mutually_exclusive | ours, recipe paper |' in text


def test_grid_gives_a_second_recipe_the_first_recipes_control(tmp_path):
  # The control fixes every key a recipe sets that acts only through gamma, so a
  # second recipe's control is the first's where the GAN is the same: the grid
  # copies it (a run that then resumes it) instead of training the same GAN again,
  # and only where f is the same. The strong recipe's one-hot rows change the GAN:
  # the paper recipe's control is then its own.
  from c2g_jax import checkpoint
  from c2g_jax import experiment_grid as grid_lib
  from c2g_jax import train
  from c2g_jax import workdir as workdir_lib

  leader = tmp_path / 'numeric_mutually_exclusive'
  first = grid_lib.make_config('numeric_mutually_exclusive', 'tiny')
  first.attack.recipe = 'strong'
  (leader / 'control' / 'checkpoints').mkdir(parents=True)
  (leader / 'control' / 'checkpoints' / 'marker').write_text('trained')
  checkpoint.write_json(
      str(leader / 'control' / 'config.json'), train.control_config(first).to_dict()
  )
  job = grid_lib.make_config('numeric_mutually_exclusive', 'tiny')
  job.attack.recipe = 'paper'
  job.classifier.checkpoint = str(leader / 'classifier')
  job.evaluators = str(leader / 'evaluators' / 'vgg')
  run = tmp_path / 'recipe_paper' / 'numeric_mutually_exclusive'
  assert not grid_lib.share_control(str(leader), job, str(run))  # no one-hot rows
  assert not run.exists()
  job.attack.onehot_share = 0.25
  assert grid_lib.share_control(str(leader), job, str(run))
  assert (run / 'control' / 'checkpoints' / 'marker').read_text() == 'trained'
  assert workdir_lib.prepare(str(run), job.to_dict()).action == 'new'
  control = train.control_config(job)
  assert train.prepare_control(str(run / 'control'), control, 'check').action == 'resume'
  # Once the run exists it is left alone; another f gets no copy.
  assert not grid_lib.share_control(str(leader), job, str(run))
  other = tmp_path / 'recipe_paper' / 'other'
  job.classifier.checkpoint = str(tmp_path / 'elsewhere' / 'classifier')
  assert not grid_lib.share_control(str(leader), job, str(other))
  assert not other.exists()
  # A GAN setting that differs (its learning rate) is no copy either.
  job.classifier.checkpoint = str(leader / 'classifier')
  job.attack.learning_rate = 1e-3
  assert not grid_lib.share_control(str(leader), job, str(other))


def test_grid_reads_a_finished_run_and_judges_a_changed_or_restarted_one_again(
    tmp_path, monkeypatch
):
  # Adding a setting or a recipe to a grid must not judge every finished run again
  # (5-6 minutes each at CPU size); but a run of another config, one started again
  # since its results, or --reevaluate is judged.
  from c2g_jax import experiment_grid as grid_lib
  from c2g_jax import train
  from c2g_jax import workdir as workdir_lib

  judged = []

  def train_and_evaluate(config, workdir):  # what a run leaves: its config, then results
    workdir_lib.prepare(workdir, config.to_dict(), 'continue').commit()
    results = {'steps': config.attack.steps, 'judged': len(judged)}
    judged.append(workdir)
    with open(os.path.join(workdir, 'results.json'), 'w') as f:
      json.dump(results, f)
    return results

  monkeypatch.setattr(train, 'train_and_evaluate', train_and_evaluate)
  config = grid_lib.make_config('numeric_mutually_exclusive', 'tiny')
  run = str(tmp_path / 'numeric_mutually_exclusive')
  assert grid_lib.run_attacks([(config, run)]) == [{'steps': config.attack.steps, 'judged': 0}]
  assert grid_lib.run_attacks([(config, run)]) == [{'steps': config.attack.steps, 'judged': 0}]
  assert len(judged) == 1
  assert grid_lib.run_attacks([(config, run)], reevaluate=True)[0]['judged'] == 1
  # An evaluation key is free to change for a resume, not for reading old results.
  config.eval.samples_per_target += 1
  assert grid_lib.run_attacks([(config, run)])[0]['judged'] == 2
  assert grid_lib.run_attacks([(config, run)])[0]['judged'] == 2
  # Started again (config.json rewritten) and stopped before its new results.
  later = os.path.getmtime(os.path.join(run, 'results.json')) + 10
  os.utime(os.path.join(run, 'config.json'), (later, later))
  assert grid_lib.run_attacks([(config, run)])[0]['judged'] == 3
  # Fewer steps than asked (a results.json of a shorter run kept by hand).
  with open(os.path.join(run, 'results.json'), 'w') as f:
    json.dump({'steps': config.attack.steps - 1}, f)
  assert grid_lib.run_attacks([(config, run)])[0]['judged'] == 4
  assert grid_lib.finished_results(config, str(tmp_path / 'absent')) is None


def test_grid_run_again_with_a_setting_added_or_reordered_resumes(tmp_path, monkeypatch):
  # The setting that published f for its D_tr stays its publisher: a second run with
  # --settings in another order (or a setting added in front) must not ask the finished
  # follower to train its own f, which its workdir refuses as another config.
  from c2g_jax import experiment_grid as grid_lib
  from c2g_jax import train
  from c2g_jax import workdir as workdir_lib

  published = []

  def train_and_evaluate(config, workdir):
    workdir_lib.prepare(workdir, config.to_dict(), 'check').commit()  # raises on a clash
    if not config.classifier.checkpoint:
      published.append(os.path.basename(workdir))
      os.makedirs(os.path.join(workdir, 'classifier'), exist_ok=True)
    results = {'steps': config.attack.steps, 'f': config.classifier.checkpoint}
    with open(os.path.join(workdir, 'results.json'), 'w') as f:
      json.dump(results, f)
    return results

  monkeypatch.setattr(train, 'train_and_evaluate', train_and_evaluate)
  make = lambda s: grid_lib.make_config(s, 'tiny')
  first = grid_lib.run_grid(
      str(tmp_path), ['numeric_partly_same', 'numeric_exact_same'], make, with_acgan=False
  )
  again = grid_lib.run_grid(
      str(tmp_path),
      ['numeric_mutually_exclusive', 'numeric_exact_same', 'numeric_partly_same'],
      make,
      with_acgan=False,
  )
  assert published == ['numeric_partly_same', 'numeric_mutually_exclusive']
  f = os.path.join(str(tmp_path), 'numeric_partly_same', 'classifier')
  assert first['preimagegan']['numeric_exact_same']['f'] == f
  assert again['preimagegan']['numeric_exact_same']['f'] == f
  assert again['preimagegan']['numeric_partly_same']['f'] == ''


def test_selection_sentence_says_when_the_critic_chose_among_fs_best():
  head = {'attack_raw_mean': 0.5, 'mean': {'attack': 0.75}}
  audit = {'headline': 'vgg', 'evaluators': {'vgg': head}}
  sel = {'pool': 4, 'views': 8, 'kept': 10, 'candidates': 40}
  # A results.json from before the key reads as f alone.
  f_alone = report.selection_sentence(dict(audit, selection=sel))
  assert f_alone.startswith(
      'Final selection: of 40 draws per target, the 10 that f labels most confidently over 8 '
      "random warps are kept (an attacker's step: it uses f alone). f'[vgg] labels 0.500 of "
      'the raw draws and 0.750 of the kept ones'
  )
  assert f_alone == report.selection_sentence(dict(audit, selection=dict(sel, realism=1)))
  both = report.selection_sentence(dict(audit, selection=dict(sel, realism=2)))
  assert both.startswith(
      'Final selection: of 40 draws per target, the 20 that f labels most confidently over 8 '
      'random warps, and of those the 10 that the critic scores most like the auxiliary '
      "images, are kept (an attacker's step: it uses f and D alone). f'[vgg] labels 0.500"
  )
