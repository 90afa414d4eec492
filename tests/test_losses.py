"""The losses, the gamma schedule and the label prior against values worked out by hand."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from c2g_jax import losses
from c2g_jax import prior


def test_critic_loss_hand_value():
  d_real = jnp.array([1.0, 3.0])  # mean 2
  d_fake = jnp.array([-1.0, 0.0])  # mean -0.5
  assert float(losses.critic_loss(d_real, d_fake)) == pytest.approx(-2.5)


@pytest.mark.parametrize('w_scale', [0.3, 1.0, 2.5])
def test_gradient_penalty_of_linear_critic(w_scale):
  # D(x) = w.x has input gradient w everywhere, so the penalty is (||w|| - 1)^2,
  # whatever the interpolation points; weighted by 10 as in the paper.
  rng = np.random.default_rng(0)
  w = rng.normal(size=(4, 4, 1)).astype(np.float32)
  w *= w_scale / np.linalg.norm(w)
  critic = lambda x: jnp.sum(x * w, axis=(1, 2, 3))
  real = jnp.asarray(rng.uniform(size=(5, 4, 4, 1)), jnp.float32)
  fake = jnp.asarray(rng.uniform(size=(5, 4, 4, 1)), jnp.float32)
  eps = jnp.asarray(rng.uniform(size=(5,)), jnp.float32)
  gp = losses.gradient_penalty(critic, real, fake, eps)
  assert float(gp) == pytest.approx((w_scale - 1.0) ** 2, abs=1e-5)
  assert float(10.0 * gp) == pytest.approx(10.0 * (w_scale - 1.0) ** 2, abs=1e-4)


def test_interpolate_per_sample():
  real = jnp.ones((2, 3, 3, 1))
  fake = jnp.zeros((2, 3, 3, 1))
  x = losses.interpolate(real, fake, jnp.array([0.25, 1.0]))
  np.testing.assert_allclose(x[0], 0.25)
  np.testing.assert_allclose(x[1], 1.0)


def _tiny_critic(params, x):
  h = jnp.tanh(x.reshape(x.shape[0], -1) @ params['w1'] + params['b1'])
  return (h @ params['w2'])[:, 0]


def test_gradient_penalty_param_gradient_matches_finite_differences():
  # The penalty's gradient w.r.t. the critic's parameters is a double backward;
  # check it against central differences (float64 to make them exact enough).
  with jax.enable_x64(True):
    rng = np.random.default_rng(1)
    params = {
        'w1': jnp.asarray(rng.normal(size=(6, 5))),
        'b1': jnp.asarray(rng.normal(size=(5,))),
        'w2': jnp.asarray(rng.normal(size=(5, 1))),
    }
    real = jnp.asarray(rng.uniform(size=(3, 3, 2, 1)))
    fake = jnp.asarray(rng.uniform(size=(3, 3, 2, 1)))
    eps = jnp.asarray(rng.uniform(size=(3,)))
    penalty = lambda p: losses.gradient_penalty(lambda x: _tiny_critic(p, x), real, fake, eps)
    grads = jax.grad(penalty)(params)
    h = 1e-6
    for name, value in params.items():
      flat = np.asarray(value).ravel()
      for i in range(flat.size):
        plus, minus = flat.copy(), flat.copy()
        plus[i] += h
        minus[i] -= h
        fd = (
            penalty({**params, name: jnp.asarray(plus.reshape(value.shape))})
            - penalty({**params, name: jnp.asarray(minus.reshape(value.shape))})
        ) / (2 * h)
        assert float(np.asarray(grads[name]).ravel()[i]) == pytest.approx(
            float(fd), rel=1e-5, abs=1e-8
        )


def test_similarities_hand_values():
  probs = jnp.array([[0.5, 0.25, 0.25]])
  y = jnp.array([[1.0, 0.0, 0.0]])
  assert float(losses.log_likelihood_similarity(probs, y)[0]) == pytest.approx(
      np.log(0.5), abs=1e-6
  )
  assert float(losses.inner_product_similarity(probs, y)[0]) == pytest.approx(0.5)
  y2 = jnp.array([[0.5, 0.5, 0.0]])
  expected_kl = 0.5 * np.log(0.5 / 0.5) + 0.5 * np.log(0.5 / 0.25)
  assert float(losses.neg_kl_similarity(probs, y2)[0]) == pytest.approx(-expected_kl, abs=1e-6)
  # Best when f(x) = y.
  assert float(losses.neg_kl_similarity(y2, y2)[0]) == pytest.approx(0.0, abs=1e-6)


def test_max_margin_hand_values():
  probs = jnp.array([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3], [0.2, 0.2, 0.6]])
  # Row 0: y's class 0 leads: log .5 - log .3. Row 1: class 0 trails class 1:
  # log .1 - log .6 < 0. Row 2: soft y (KDE noise) counts as its argmax, class 1.
  y = jnp.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.3, 0.45, 0.25]])
  expected = [np.log(0.5 / 0.3), np.log(0.1 / 0.6), np.log(0.2 / 0.6)]
  np.testing.assert_allclose(losses.max_margin_similarity(probs, y), expected, atol=1e-5)
  assert losses.get_similarity('max_margin') is losses.max_margin_similarity
  # The softmax's normaliser cancels: the margin of probabilities' logs is the margin
  # of any logits.
  logits = jnp.array([[2.0, -1.0, 0.5, 0.0]])
  got = losses.max_margin_similarity(jax.nn.softmax(logits), jnp.array([[0.0, 0.0, 1.0, 0.0]]))
  assert float(got[0]) == pytest.approx(0.5 - 2.0, abs=1e-5)


def test_max_margin_gradient_matches_finite_differences():
  # Through a softmax, as f_apply's probabilities; logits with a clear runner-up so
  # the max is differentiable at the point.
  logits = jnp.array([0.3, 1.2, -0.4, 0.1], jnp.float64 if jax.config.x64_enabled else jnp.float32)
  y = jnp.array([[0.1, 0.05, 0.8, 0.05]])
  fn = lambda l: losses.max_margin_similarity(jax.nn.softmax(l)[None], y)[0]
  grad = np.asarray(jax.grad(fn)(logits))
  # d/dl (l_c - l_runner_up) = e_c - e_runner_up (c = 2, runner-up = 1).
  np.testing.assert_allclose(grad, [0.0, -1.0, 1.0, 0.0], atol=1e-4)
  h = 1e-2
  for i in range(4):
    e = jnp.zeros(4).at[i].set(h)
    fd = (float(fn(logits + e)) - float(fn(logits - e))) / (2 * h)
    assert fd == pytest.approx(grad[i], abs=2e-3)


def test_unknown_similarity_names_the_choices():
  with pytest.raises(ValueError, match='log_likelihood'):
    losses.get_similarity('cosine')


def test_generator_loss_hand_value():
  d_fake = jnp.array([2.0, 4.0])  # mean 3
  sim = jnp.array([-1.0, -3.0])  # mean -2
  # -3 - 0.5 * (-2) = -2
  assert float(losses.generator_loss(d_fake, sim, 0.5)) == pytest.approx(-2.0)
  assert float(losses.generator_loss(d_fake, sim, 0.0)) == pytest.approx(-3.0)


def test_mode_seeking_loss_hand_value_and_gradient():
  # Pairs (0, 2) and (1, 3): image gaps |0-2| = 2 and |1-5| = 4, mean 3; z gaps
  # |0-1|, |0-0|, |1-1|, |1-3|, mean 0.75: ratio 4, loss 1 / 4.
  x = jnp.array([[0.0], [1.0], [2.0], [5.0]])
  z = jnp.array([[0.0, 0.0], [1.0, 1.0], [1.0, 0.0], [1.0, 3.0]])
  assert float(losses.mode_seeking_loss(x, z)) == pytest.approx(1 / (4 + 1e-5), rel=1e-6)
  # An odd batch leaves its last sample out of the pairs.
  x5 = jnp.concatenate([x, jnp.array([[100.0]])])
  z5 = jnp.concatenate([z, jnp.zeros((1, 2))])
  assert float(losses.mode_seeking_loss(x5, z5)) == pytest.approx(1 / (4 + 1e-5), rel=1e-6)
  # One image whatever z: the loss is as large as the guard allows.
  assert float(losses.mode_seeking_loss(jnp.ones((4, 1)), z)) == pytest.approx(1e5)
  # Pulling a pair's images apart lowers it: d/dx = -(dr/dx) / r^2 with
  # r = mean|x1 - x2| / 0.75, so dr/dx_2 = sign(x_2 - x_0) / (2 * 0.75).
  grad = np.asarray(jax.grad(lambda v: losses.mode_seeking_loss(v, z))(x))
  r = 4.0
  expected = np.array([[1.0], [1.0], [-1.0], [-1.0]]) / (2 * 0.75) / r**2
  np.testing.assert_allclose(grad, expected, rtol=1e-4)
  h = 1e-3
  for i in range(4):
    e = jnp.zeros((4, 1)).at[i, 0].set(h)
    fd = (float(losses.mode_seeking_loss(x + e, z)) - float(losses.mode_seeking_loss(x - e, z))) / (
        2 * h
    )
    assert fd == pytest.approx(grad[i, 0], rel=1e-2)


def test_gamma_schedule():
  g = lambda s, **kw: float(losses.gamma_schedule(s, **kw))
  assert g(0) == 0.0
  assert g(1) == pytest.approx(0.001)
  assert g(2500) == pytest.approx(2.5)
  assert g(10_000) == pytest.approx(10.0)
  assert g(20_000) == pytest.approx(10.0)  # capped
  # FaceScrub's slower growth, and other starts and caps.
  assert g(50_000, increment=1e-4) == pytest.approx(5.0)
  assert g(3, start=1.0, increment=0.5, maximum=2.0) == pytest.approx(2.0)


def test_kde_sampler_mean_spread_and_simplex():
  point = np.array([0.3, 0.3, 0.4], np.float32)
  pool = jnp.asarray(np.tile(point, (7, 1)))
  y = np.asarray(prior.sample_labels(jax.random.PRNGKey(0), pool, 40_000, 0.01))
  np.testing.assert_allclose(y.sum(-1), 1.0, atol=1e-5)
  assert (y >= 0).all()
  np.testing.assert_allclose(y.mean(0), point, atol=1e-3)
  # Renormalising shrinks the noise a little (the sum's noise is shared out);
  # the spread stays close to the bandwidth.
  std = y.std(0)
  assert np.all(std > 0.007) and np.all(std < 0.011), std
  y_wide = np.asarray(prior.sample_labels(jax.random.PRNGKey(0), pool, 40_000, 0.03))
  assert np.all(y_wide.std(0) > 2.5 * std)


def test_kde_sampler_picks_stored_predictions_uniformly():
  pool = jnp.eye(2)[jnp.array([0, 1, 1, 1])]  # a quarter class 0, three quarters class 1
  y = np.asarray(prior.sample_labels(jax.random.PRNGKey(1), pool, 20_000, 0.01))
  assert np.mean(np.argmax(y, -1) == 0) == pytest.approx(0.25, abs=0.015)
  # Clipped at 0 near the simplex corners.
  assert (y >= 0).all()


def test_z_prior_is_uniform_in_unit_cube():
  z = np.asarray(prior.sample_z(jax.random.PRNGKey(2), 10_000, 128))
  assert z.shape == (10_000, 128)
  assert z.min() >= -1.0 and z.max() <= 1.0
  assert z.mean() == pytest.approx(0.0, abs=0.01)
  assert z.var() == pytest.approx(1.0 / 3.0, abs=0.01)
