"""Evaluator training: the random warps and the validation-selected epoch."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from c2g_jax import augment
from c2g_jax import classifier
from c2g_jax import networks


def _images(n=3, h=8, w=8, c=1, seed=0):
  return jax.random.uniform(jax.random.PRNGKey(seed), (n, h, w, c))


def test_none_is_the_identity():
  x = _images()
  assert augment.random_warp(jax.random.PRNGKey(0), x, augment.PRESETS['none']) is x


def test_sampling_convention_is_a_shift_with_background_fill():
  # Output pixel (r, c) samples the input at (r, c + 2): content moves 2 columns left.
  x = _images(1)[0]
  out = augment._warp_one(x, jnp.eye(2), jnp.array([0.0, 2.0]), -1.0)
  np.testing.assert_allclose(out[:, :-2], x[:, 2:], atol=1e-6)
  np.testing.assert_array_equal(out[:, -2:], -1.0)


def test_flip_only_warp_gives_the_image_or_its_mirror():
  x = _images(16, seed=1)
  warp = augment.Warp(flip=True)
  out = augment.random_warp(jax.random.PRNGKey(3), x, warp)
  same = [bool(np.allclose(o, i, atol=1e-5)) for o, i in zip(out, x)]
  mirrored = [bool(np.allclose(o, i[:, ::-1], atol=1e-5)) for o, i in zip(out, x)]
  assert all(s or m for s, m in zip(same, mirrored))
  assert any(same) and any(mirrored)  # both happen among 16 draws


def test_character_warps_differ_per_image_and_are_differentiable():
  x = jnp.broadcast_to(_images(1, 28, 28), (4, 28, 28, 1))
  warp = augment.preset('auto', 'emnist')
  out = augment.random_warp(jax.random.PRNGKey(5), x, warp)
  assert out.shape == x.shape
  assert not np.allclose(out[0], out[1])  # one draw per image
  grad = jax.grad(lambda v: jnp.sum(augment.random_warp(jax.random.PRNGKey(5), v, warp)))(x)
  assert np.all(np.isfinite(grad)) and float(jnp.abs(grad).sum()) > 0
  assert augment.preset('auto', 'facescrub').flip and not warp.flip
  with pytest.raises(ValueError, match="'blur'"):
    augment.preset('blur')


def test_blur_of_an_impulse_is_the_sampled_gaussian_by_hand():
  # A unit impulse in the middle of a 15x15 image blurred with sigma 1.5 becomes
  # the outer product of the normalised taps exp(-x^2 / (2 * 1.5^2)), x = -4..4.
  x = np.zeros((1, 15, 15, 1), np.float32)
  x[0, 7, 7, 0] = 1.0
  out = np.asarray(augment.gaussian_blur(jnp.asarray(x), jnp.array([1.5]), radius=4))
  taps = np.exp(-(np.arange(-4, 5) ** 2) / (2 * 1.5**2))
  taps /= taps.sum()
  expected = np.zeros((15, 15))
  expected[3:12, 3:12] = np.outer(taps, taps)
  np.testing.assert_allclose(out[0, :, :, 0], expected, atol=1e-6)


def test_blur_near_zero_width_is_the_identity_and_keeps_a_constant():
  x = _images(2, c=3)
  same = augment.gaussian_blur(x, jnp.array([0.0, 1e-4]), radius=3)
  np.testing.assert_allclose(same, x, atol=1e-6)
  flat = jnp.full((1, 8, 8, 1), 0.3)  # edges repeated: the border stays 0.3
  np.testing.assert_allclose(augment.gaussian_blur(flat, jnp.array([2.0]), 6), flat, atol=1e-6)


def test_view_blur_erases_a_checkerboard_and_is_differentiable():
  # The fine texture that fooled f on ORL: +-1 per pixel. A blur of width >= 1
  # leaves almost nothing of it, while the warp alone keeps it (a mirror, so that
  # no sub-pixel resampling averages it away).
  board = (np.indices((16, 16)).sum(0) % 2 * 2.0 - 1.0)[None, :, :, None]
  board = jnp.asarray(np.repeat(board, 8, axis=0), jnp.float32)
  key = jax.random.PRNGKey(0)
  plain = augment.random_warp(key, board, augment.Warp(flip=True))
  blurred = augment.random_warp(key, board, augment.Warp(flip=True, max_blur=3.0))
  interior = (slice(None), slice(4, 12), slice(4, 12))
  np.testing.assert_allclose(jnp.abs(plain[interior]), 1.0, atol=1e-5)
  # The width is uniform in [0, 3]: most images lose their texture.
  per_image = jnp.mean(jnp.abs(blurred[interior]), axis=(1, 2, 3))
  assert int(jnp.sum(per_image < 0.05)) >= 4
  # Linear in the image: the gradient of a weighted sum against finite differences.
  w = _images(8, h=16, w=16, seed=4)
  warp = augment.Warp(max_blur=2.0)
  loss = lambda im: jnp.sum(w * augment.random_warp(key, im, warp))
  x = _images(8, h=16, w=16, seed=5)
  d = _images(8, h=16, w=16, seed=6)
  numeric = (loss(x + 1e-2 * d) - loss(x - 1e-2 * d)) / 2e-2
  np.testing.assert_allclose(jnp.sum(jax.grad(loss)(x) * d), numeric, rtol=1e-3)


def test_blur_width_is_drawn_apart_from_the_rotation_and_shift():
  # Each width is uniform in [0, max_blur] and independent of the warp's draws:
  # a key shared with the rotation made the width a function of the angle.
  key, n = jax.random.PRNGKey(5), 4096
  warp = augment.Warp(max_shift=4.0, max_rotation=5.0, max_blur=2.0)
  widths = np.asarray(augment.blur_widths(key, n, warp)) / 2.0
  assert 0.0 <= widths.min() and widths.max() <= 1.0 and abs(widths.mean() - 0.5) < 0.02
  for k in jax.random.split(key, 4):  # shift, rotation, scale, flip
    u = np.asarray(jax.random.uniform(k, (n,)))
    assert abs(np.corrcoef(u, widths)[0, 1]) < 0.06


def test_validation_split_holds_out_each_class():
  labels = np.array([0] * 10 + [1] * 20 + [2])
  fit, held = classifier.validation_split(labels, 0.1, seed=0)
  assert np.bincount(labels[held], minlength=3).tolist() == [1, 2, 0]  # 1-image class stays
  assert sorted(np.concatenate([fit, held]).tolist()) == list(range(len(labels)))


def test_training_keeps_the_epoch_with_the_best_validation_accuracy():
  rng = np.random.default_rng(0)
  y = np.repeat(np.arange(2), 30)
  x = rng.integers(0, 60, (60, 28, 28, 1), dtype=np.uint8)
  x[y == 1, 10:18, 10:18] = 255  # class 1: a bright square
  module = networks.build_classifier('classifier', 2, 'emnist', width=0.125)
  info = {}
  best = classifier.train(
      module,
      x,
      y,
      (0.0, 1.0),
      epochs=4,
      batch_size=16,
      seed=0,
      log=lambda s: None,
      validation_fraction=0.2,
      cosine_schedule=True,
      augment=augment.preset('characters'),
      info=info,
  )
  history = info['validation_accuracy']
  assert len(history) == 4 and info['validation_images'] == 12
  assert info['selected_epoch'] == int(np.argmax(history)) + 1
  _, held = classifier.validation_split(y, 0.2, 0)
  assert classifier.accuracy(module, best, x[held], y[held], (0.0, 1.0)) == max(history)
