"""Leak metrics on cases with known answers; the ACGAN baseline; TensorBoard files."""

import io
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from c2g_jax import acgan
from c2g_jax import attack as attack_lib
from c2g_jax import metrics
from c2g_jax import networks
from c2g_jax import tensorboard


@pytest.fixture(scope='module')
def feats():
  rng = np.random.default_rng(0)
  return rng.normal(size=(40, 6)), rng.normal(size=(50, 6))


# --- accuracy -------------------------------------------------------------------------------


def test_inception_accuracy_is_one_when_the_evaluator_is_perfect():
  targets = [2, 0, 3]
  probs = np.full((3, 7, 4), 0.1)
  for i, t in enumerate(targets):
    probs[i, :, t] = 0.7
  np.testing.assert_array_equal(metrics.accuracy_at_k(probs, targets, 1), [1, 1, 1])
  table = metrics.accuracy_table(probs, targets, ['c', 'a', 'd'])
  assert table['acc@1']['mean'] == 1.0 and table['acc@1']['std'] == 0.0
  assert table['acc@5']['per_class'] == {'c': 1.0, 'a': 1.0, 'd': 1.0}


def test_accuracy_at_k_by_hand():
  # Target 0 ranks 1st, 3rd, 6th in the three samples; 7 classes.
  p = np.array(
      [
          [0.40, 0.10, 0.10, 0.10, 0.10, 0.10, 0.10],
          [0.20, 0.30, 0.25, 0.05, 0.10, 0.05, 0.05],
          [0.01, 0.20, 0.20, 0.20, 0.20, 0.19, 0.00],
      ]
  )
  probs = p[None]
  assert metrics.accuracy_at_k(probs, [0], 1)[0] == pytest.approx(1 / 3)
  assert metrics.accuracy_at_k(probs, [0], 3)[0] == pytest.approx(2 / 3)
  assert metrics.accuracy_at_k(probs, [0], 5)[0] == pytest.approx(2 / 3)
  assert metrics.accuracy_at_k(probs, [0], 6)[0] == pytest.approx(1.0)
  # Equal probabilities are ordered by class index, as argmax orders them.
  tie = np.array([[[0.5, 0.5]]])
  assert metrics.accuracy_at_k(tie, [0], 1)[0] == 1.0
  assert metrics.accuracy_at_k(tie, [1], 1)[0] == 0.0


# --- false recognition ---------------------------------------------------------------------


def test_false_recognition_on_a_hand_made_probability_matrix():
  # f has classes '0', '1'; the real images come from classes 0, O, o, D, 1, l, I, L.
  class_names = ['0', 'O', 'o', 'D', '1', 'l', 'I', 'L']
  rows = [  # (true class index, f's probs for '0' and '1')
      (0, 0.99, 0.01),
      (0, 0.95, 0.05),  # the target itself: ignored
      (1, 0.95, 0.05),
      (1, 0.91, 0.09),
      (1, 0.50, 0.50),
      (1, 0.92, 0.08),  # O: 3/4
      (2, 0.93, 0.07),
      (2, 0.10, 0.90),  # o: 1/2
      (3, 0.90, 0.10),
      (3, 0.20, 0.80),  # D: exactly 0.9 is not above
      (4, 0.02, 0.98),
      (5, 0.01, 0.99),
      (5, 0.05, 0.95),
      (5, 0.3, 0.7),  # l: 2/3 for '1'
      (6, 0.04, 0.96),
      (6, 0.05, 0.95),  # I: 1 for '1'
      (7, 0.06, 0.94),
      (7, 0.5, 0.5),
      (7, 0.5, 0.5),
      (7, 0.5, 0.5),  # L: 1/4
  ]
  labels = np.array([r[0] for r in rows])
  probs = np.array([r[1:] for r in rows])
  table = metrics.false_recognition(probs, labels, class_names, [0, 1], ['0', '1'])
  assert table['0'] == [('O', 0.75), ('o', 0.5)]
  assert table['1'] == [('I', 1.0), ('l', pytest.approx(2 / 3)), ('L', 0.25)]
  top1 = metrics.false_recognition(probs, labels, class_names, [1], ['1'], top=1)
  assert top1 == {'1': [('I', 1.0)]}


# --- feature-space measures ------------------------------------------------------------------


def test_fid_and_kid_of_a_set_with_itself_are_zero(feats):
  x, _ = feats
  assert metrics.fid(x, x) == pytest.approx(0.0, abs=1e-8)
  mean, std = metrics.kid(x, x)
  assert mean == pytest.approx(0.0, abs=1e-12) and std == 0.0


def test_fid_of_a_shifted_set_is_the_squared_shift(feats):
  x, _ = feats
  shift = np.array([1.0, -2.0, 0.5, 0.0, 0.0, 3.0])
  assert metrics.fid(x, x + shift) == pytest.approx(np.sum(shift**2), rel=1e-6)
  # Scaling by s: covariance s^2 C, so the trace term is (1 - s)^2 tr(C).
  c = np.cov(x, rowvar=False)
  assert metrics.fid(x, 2 * x - x.mean(0)) == pytest.approx(np.trace(c), rel=1e-6)


def test_kid_by_hand_and_positive_for_different_sets(feats):
  x = np.array([[0.0, 1.0], [1.0, 0.0]])
  y = np.array([[1.0, 1.0], [0.0, 0.0]])
  k = lambda a, b: (a @ b / 2 + 1) ** 3
  # m = 2: (1/2) [k(x0,x1)+k(x1,x0) + k(y0,y1)+k(y1,y0) - k(x0,y1)-k(x1,y0)-k(x1,y0)-k(x0,y1)]
  hand = (2 * k(x[0], x[1]) + 2 * k(y[0], y[1]) - 2 * k(x[0], y[1]) - 2 * k(x[1], y[0])) / 2
  assert metrics.mmd2_paired(x, y) == pytest.approx(hand)
  a, b = feats
  assert metrics.kid(a, b + 3.0, subset_size=30, num_subsets=5)[0] > 1.0


def test_knn_distance_is_zero_for_points_of_the_reference_set(feats):
  x, _ = feats
  np.testing.assert_array_equal(metrics.knn_distance(x[5:9], x), 0.0)
  d = metrics.knn_distance(
      np.array([[3.0, 4.0], [9.0, 10.0]]), np.array([[0.0, 0.0], [10.0, 10.0]])
  )
  np.testing.assert_allclose(d, [5.0, 1.0], rtol=1e-6)


def test_precision_recall_density_coverage(feats):
  x, _ = feats
  same = metrics.prdc(x, x, k=3)
  assert same['precision'] == 1.0 and same['recall'] == 1.0 and same['coverage'] == 1.0
  far = metrics.prdc(x, x + 100.0, k=3)
  assert far == {'precision': 0.0, 'recall': 0.0, 'density': 0.0, 'coverage': 0.0}
  # Real points 0..9 on a line: the third nearest other point is 2 away inside the
  # line and 3 away at its ends, so the balls have radii [3, 2, 2, ..., 2, 3]. A fake
  # at 4.5 lies in the balls of 3, 4, 5, 6 (|4.5 - r| <= 2): density 4 / (k * 5 fakes);
  # the fakes from 100 on lie in none.
  real = np.arange(10.0)[:, None]
  fake = np.array([[4.5], [100.0], [101.0], [102.0], [103.0]])
  r = metrics.prdc(real, fake, k=3)
  assert r['precision'] == pytest.approx(1 / 5)
  assert r['density'] == pytest.approx(4 / 15)
  assert r['coverage'] == pytest.approx(4 / 10)
  # Fake balls: the fake at 4.5 has radius 98.5 (its third neighbour is 102), so it
  # covers every real point.
  assert r['recall'] == 1.0
  with pytest.raises(ValueError, match='more than k=3'):
    metrics.prdc(real[:3], fake, k=3)


def test_feature_metrics_compare_generated_and_closest_aux():
  private = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.5, 0.5]])
  generated = private + 0.0  # copies of the private images
  aux = np.array([[3.0, 0.0], [0.0, -2.0], [10.0, 10.0], [2.0, 1.0], [0, 5], [6, 6]])
  m = metrics.feature_metrics(generated, private, aux, k=3)
  assert m['knn_generated'] == 0.0 and m['fid'] == pytest.approx(0, abs=1e-9)
  # Each aux point's distance to its nearest private point, in aux order; the mean
  # is over the 5 (= number of generated images) smallest.
  to_private = np.sort([2.0, 2.0, np.hypot(9, 9), 1.0, 4.0, np.hypot(5, 5)])
  assert m['knn_aux_closest'] == pytest.approx(np.mean(to_private[:5]))
  s = metrics.summarize({'a': {'fid': 1.0}, 'b': {'fid': 3.0}})
  assert s == {'fid': {'mean': 2.0, 'std': 1.0}}


def test_coverage_against_real_by_hand():
  # Private points 0..7 on a line; with k = 1 each owns a ball of radius 1 (strict).
  private = np.arange(8.0)[:, None]
  real = np.array([[0.5], [2.5], [4.5], [6.5]])  # every private point within 0.5
  # Four samples of one image: only private point 0 is covered.
  one = metrics.coverage_against_real(private, np.zeros((4, 1)), real, k=1)
  assert one == pytest.approx(
      {'coverage_samples': 1 / 8, 'coverage_real': 1.0, 'relative_coverage': 1 / 8}
  )
  # Eight samples against four real images: cut to 4 at evenly spaced positions
  # (0, 2, 5, 7), which cover the private points 0, 2, 5 and 7.
  copies = metrics.coverage_against_real(private, private.copy(), real, k=1)
  assert copies['coverage_samples'] == 0.5 and copies['relative_coverage'] == 0.5
  # Real images that cover nothing give no scale.
  far = metrics.coverage_against_real(private, private.copy(), real + 100.0, k=1)
  assert far['coverage_real'] == 0.0 and np.isnan(far['relative_coverage'])


# --- ACGAN -----------------------------------------------------------------------------------


def test_aux_loss_by_hand():
  logits = jnp.array([[0.0, np.log(3.0)], [np.log(4.0), 0.0]])
  # softmax rows: [1/4, 3/4] and [4/5, 1/5]; labels 1 and 1.
  expected = -(np.log(3 / 4) + np.log(1 / 5)) / 2
  assert float(acgan.aux_loss(logits, jnp.array([1, 1]))) == pytest.approx(expected, rel=1e-6)


@pytest.fixture(scope='module')
def tiny_acgan():
  # n_critic = 1: the step's critic metrics are then those of one known update.
  model = acgan.ACGAN(
      generator=networks.Generator(dataset='emnist', width=0.0625),
      critic=acgan.ACCritic(num_classes=3, dataset='emnist', width=0.0625, conv_impl='im2col'),
      num_classes=3,
      image_shape=(28, 28, 1),
      value_range=(0.0, 1.0),
      hyper=attack_lib.Hyper(batch_size=4, n_critic=1),
  )
  rng = np.random.default_rng(0)
  data = acgan.ACGANData(
      images=jnp.asarray(rng.integers(0, 256, (12, 28, 28, 1), dtype=np.uint8)),
      labels=jnp.asarray(np.arange(12) % 3, jnp.int32),
  )
  return model, data


def test_acgan_critic_has_the_attack_critics_trunk(tiny_acgan):
  model, _ = tiny_acgan
  x = jnp.zeros((1, 28, 28, 1))
  mine = jax.eval_shape(model.critic.init, jax.random.PRNGKey(0), x)['params']
  theirs = jax.eval_shape(
      networks.Critic(dataset='emnist', width=0.0625).init, jax.random.PRNGKey(0), x
  )['params']
  shapes = lambda p: {k: jax.tree.map(jnp.shape, v) for k, v in p.items() if k != 'Dense_0'}
  assert shapes(mine) == shapes(theirs)
  assert mine['Dense_0']['kernel'].shape[-1] == 1 + 3
  score, logits = jax.eval_shape(model.critic.apply, {'params': mine}, jnp.zeros((5, 28, 28, 1)))
  assert score.shape == (5,) and logits.shape == (5, 3)


def test_acgan_step_runs_and_its_aux_term_uses_the_batch_labels(tiny_acgan):
  model, data = tiny_acgan
  state = jax.jit(model.init)(jax.random.PRNGKey(0))
  key = jax.random.PRNGKey(5)
  new, m = jax.jit(model.step)(state, key, data)
  assert int(new.step) == 1
  for name in (
      'critic_loss',
      'gradient_penalty',
      'aux_loss_real',
      'aux_loss_fake',
      'generator_loss',
      'generator_aux_loss',
  ):
    assert m[name].shape == () and np.isfinite(m[name]), name
  assert not np.allclose(new.g_params['Dense_0']['kernel'], state.g_params['Dense_0']['kernel'])
  assert not np.allclose(new.d_params['Dense_0']['kernel'], state.d_params['Dense_0']['kernel'])

  # The critic's aux term on real images is the CE of its head on that very batch
  # (the one critic update draws it from the step's first key, as step splits it).
  # Jitted as one program: eagerly, each op of the sampling and the critic compiles alone.
  @jax.jit
  def aux_loss_real(key, d_params):
    k_update = jax.random.split(jax.random.split(key)[0], 1)[0]
    real, labels, _, _ = model._sample(jax.random.split(k_update)[0], data)
    logits = model.critic.apply({'params': d_params}, real)[1]
    return acgan.aux_loss(logits, labels)

  assert float(m['aux_loss_real']) == pytest.approx(
      float(aux_loss_real(key, state.d_params)), rel=1e-4
  )
  # The critic loss is the sum of its parts.
  total = -m['wasserstein'] + 10.0 * m['gradient_penalty'] + m['aux_loss_real'] + m['aux_loss_fake']
  assert float(m['critic_loss']) == pytest.approx(float(total), rel=1e-5)


# --- TensorBoard -----------------------------------------------------------------------------


def read_back(logdir):
  """The events of every file in logdir, as TensorBoard itself reads them (with its
  purges applied), keeping every point (size_guidance 0)."""
  from tensorboard.backend.event_processing import event_accumulator

  acc = event_accumulator.EventAccumulator(
      str(logdir), size_guidance={'scalars': 0, 'images': 0, 'tensors': 0}
  )
  return acc.Reload()


def test_tensorboard_scalars_images_and_text_read_back(tmp_path):
  w = tensorboard.SummaryWriter(str(tmp_path))
  w.scalars(10, {'critic_loss': 1.25, 'gamma': 0.5, 'custom': -3.0, 'note': 'skipped'})
  w.scalars(20, {'critic_loss': np.float32(0.75)})
  pixels = np.arange(6 * 9, dtype=np.uint8).reshape(6, 9) * 4
  w.image('samples', pixels, 20)
  png_path = str(tmp_path / 'g.png')
  rgb = np.zeros((3, 4, 3), np.uint8)
  rgb[1, 2] = (200, 10, 30)
  Image.fromarray(rgb).save(png_path)
  w.image('grid', png_path, 30)
  table = '| target | acc |\n|---|---:|\n| 7 | 0.500 |'
  w.text('results', table, 30)
  w.close()
  acc = read_back(tmp_path)
  assert [(e.step, e.value) for e in acc.Scalars('critic/loss')] == [(10, 1.25), (20, 0.75)]
  assert [(e.step, e.value) for e in acc.Scalars('generator/gamma')] == [(10, 0.5)]
  assert [(e.step, e.value) for e in acc.Scalars('custom')] == [(10, -3.0)]
  assert 'note' not in acc.Tags()['scalars']
  (img,) = acc.Images('samples')
  assert (img.step, img.height, img.width) == (20, 6, 9)
  decoded = np.asarray(Image.open(io.BytesIO(img.encoded_image_string)).convert('RGB'))
  np.testing.assert_array_equal(decoded, np.stack([pixels] * 3, -1))
  (grid,) = acc.Images('grid')
  assert (grid.step, grid.height, grid.width) == (30, 3, 4)
  decoded = np.asarray(Image.open(io.BytesIO(grid.encoded_image_string)).convert('RGB'))
  np.testing.assert_array_equal(decoded, rgb)
  (text,) = acc.Tensors('results/text_summary')
  assert text.step == 30 and text.tensor_proto.string_val[0].decode() == table


class _ListLog:

  def __init__(self):
    self.records, self.closed = [], False

  def write(self, record):
    self.records.append(record)

  def close(self):
    self.closed = True


def test_tensorboard_resume_leaves_no_duplicate_steps_past_the_restored_step(tmp_path):
  # A first run logs steps 10..40 and a grid at 35, then dies; its last checkpoint
  # was at step 20. The resumed run logs 30..50 again, with other values.
  first = tensorboard.Tee(_ListLog(), str(tmp_path), resume_step=0)
  for step in (10, 20, 30, 40):
    first.write({'step': step, 'critic_loss': float(step), 'gamma': 1.0})
  first.image('samples', np.zeros((2, 2), np.uint8), 35)
  first.close()
  log = _ListLog()
  resumed = tensorboard.Tee(log, str(tmp_path), resume_step=20)
  for step in (30, 40, 50):
    resumed.write({'step': step, 'critic_loss': step + 1000.0})
  resumed.text('results', 'done', 50)
  resumed.close()
  assert [r['step'] for r in log.records] == [30, 40, 50] and log.closed
  assert len(os.listdir(tmp_path)) == 2  # two event files, neither overwritten
  acc = read_back(tmp_path)
  loss = [(e.step, e.value) for e in acc.Scalars('critic/loss')]
  assert loss == [(10, 10.0), (20, 20.0), (30, 1030.0), (40, 1040.0), (50, 1050.0)]
  # A tag the resumed run did not log again keeps only the points up to step 20.
  assert [e.step for e in acc.Scalars('generator/gamma')] == [10, 20]
  assert acc.Images('samples') == []
  steps = [e.step for e in acc.Scalars('critic/loss')]
  assert len(steps) == len(set(steps))
