"""attack.critic_condition='projection': the critic reads each image's label
vector (f's probabilities for an auxiliary image, the asked y for G's)."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from c2g_jax import attack as attack_lib
from c2g_jax import evaluate
from c2g_jax import losses
from c2g_jax import networks
from c2g_jax import train
from test_attack import critic_step_draws
from test_attack import make_tiny_attack
from test_attack import tree_equal

NUM_CLASSES = 10  # make_tiny_attack's f


def _conditional(**hyper):
  attack, data = make_tiny_attack(**hyper)
  return (
      dataclasses.replace(
          attack,
          critic=dataclasses.replace(attack.critic, num_classes=NUM_CLASSES),
          hyper=dataclasses.replace(attack.hyper, critic_condition='projection'),
      ),
      data,
  )


def _state(attack, step=4):
  return jax.jit(attack.init)(jax.random.PRNGKey(0)).replace(step=jnp.int32(step))


def _soft_labels(seed, n=3):
  rng = np.random.default_rng(seed)
  return jax.nn.softmax(jnp.asarray(rng.normal(size=(n, NUM_CLASSES)) * 2, jnp.float32))


def test_projection_score_is_the_plain_score_plus_the_labels_inner_product_by_hand():
  critic = networks.Critic(dataset='emnist', width=0.0625, conv_impl='im2col', num_classes=10)
  x = jax.random.uniform(jax.random.PRNGKey(1), (3, 28, 28, 1))
  y = _soft_labels(2)
  params = critic.init(jax.random.PRNGKey(0), x, y)['params']
  score, inter = critic.apply({'params': params}, x, y, capture_intermediates=True)
  # By hand: the last conv's output, leaky ReLU, flattened, is the features h;
  # the score is Dense_0(h) + <W^T y, h> with W the label embedding.
  last_conv = max(
      (k for k in inter['intermediates'] if k.startswith('Conv_')), key=lambda k: int(k[5:])
  )
  h = jax.nn.leaky_relu(inter['intermediates'][last_conv]['__call__'][0], 0.2).reshape(3, -1)
  dense = params['Dense_0']
  plain = h @ dense['kernel'][:, 0] + dense['bias'][0]
  projection = jnp.sum((y @ params['label_embedding']['kernel']) * h, axis=-1)
  np.testing.assert_allclose(score, plain + projection, rtol=1e-5, atol=1e-5)
  assert np.abs(np.asarray(projection)).max() > 1e-4  # the labels do change the score
  # Without its label embedding, the same parameters are the paper's critic.
  unconditional = networks.Critic(dataset='emnist', width=0.0625, conv_impl='im2col')
  rest = {k: v for k, v in params.items() if k != 'label_embedding'}
  np.testing.assert_allclose(unconditional.apply({'params': rest}, x), plain, rtol=1e-5, atol=1e-5)


def test_a_critic_takes_labels_exactly_when_it_is_conditional():
  x = jnp.zeros((1, 28, 28, 1))
  with pytest.raises(ValueError, match='takes a label vector y exactly when'):
    networks.Critic(num_classes=10).init(jax.random.PRNGKey(0), x)
  with pytest.raises(ValueError, match='takes a label vector y exactly when'):
    networks.Critic().init(jax.random.PRNGKey(0), x, jnp.zeros((1, 10)))


def test_critic_update_scores_both_halves_under_the_real_half_s_labels_by_hand():
  attack, data = _conditional()
  state = _state(attack)
  key = jax.random.PRNGKey(3)
  _, _, metrics = jax.jit(attack.critic_update)(state, key, data)

  @jax.jit
  def by_hand(state, key, data):
    real, y_real, z, y_prior, eps = critic_step_draws(attack, key, data)
    critic = lambda x, y: attack.critic.apply({'params': state.d_params}, x, y)

    def loss(y):  # G draws the fakes with labels y; the critic reads them so
      fake = attack.generate(state.g_params, z, y)
      wdist = jnp.mean(critic(fake, y)) - jnp.mean(critic(real, y_real))
      e = eps[:, None]
      y_hat = e * y_real + (1 - e) * y
      return wdist, losses.gradient_penalty(lambda x: critic(x, y_hat), real, fake, eps)

    return loss(y_real), loss(y_prior)

  (wdist, gp), (wdist_prior, _) = by_hand(state, key, data)
  np.testing.assert_allclose(metrics['wasserstein'], -wdist, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(metrics['gradient_penalty'], gp, rtol=1e-4, atol=1e-7)
  np.testing.assert_allclose(
      metrics['critic_loss'], wdist + attack.hyper.gp_weight * gp, rtol=1e-5, atol=1e-6
  )
  assert abs(float(wdist) - float(wdist_prior)) > 1e-6  # the prior's labels would differ


class _LabelShifted(nn.Module):
  """The inner critic's score plus a large term of the labels alone."""

  inner: nn.Module
  num_classes: int = NUM_CLASSES

  def __call__(self, x, y):
    return self.inner(x, y) + 1e3 * y @ jnp.arange(1.0, self.num_classes + 1)


def test_a_label_only_term_cancels_from_the_critic_s_loss():
  # Why the fakes share the real half's labels: the critic's score plus any c(y)
  # gives the same loss and penalty, so it gains nothing by growing a label-only
  # term, which the penalty (a gradient in x) cannot bound; unpaired, the ORL
  # runs diverged.
  attack, data = _conditional()
  state = _state(attack)
  key = jax.random.PRNGKey(3)
  _, _, plain = jax.jit(attack.critic_update)(state, key, data)
  shifted = dataclasses.replace(attack, critic=_LabelShifted(attack.critic))
  wrapped = {'inner': state.d_params}
  state = state.replace(d_params=wrapped, d_opt_state=attack.optimizer().init(wrapped))
  _, _, with_c = jax.jit(shifted.critic_update)(state, key, data)
  for name in ('wasserstein', 'gradient_penalty', 'critic_loss'):
    np.testing.assert_allclose(with_c[name], plain[name], rtol=1e-4, atol=1e-3)


def test_the_penalty_s_input_gradient_under_labels_matches_finite_differences():
  # The penalty differentiates the conditional critic in x with y held: its
  # directional derivative against a central difference, in float64.
  with jax.enable_x64():
    critic = networks.Critic(dataset='emnist', width=0.0625, conv_impl='im2col', num_classes=10)
    rng = np.random.default_rng(4)
    x = jnp.asarray(rng.uniform(0, 1, (2, 28, 28, 1)))
    y = jnp.asarray(_soft_labels(5, 2), jnp.float64)
    v = jnp.asarray(rng.normal(size=x.shape))
    params = critic.init(jax.random.PRNGKey(0), x, y)['params']
    params = jax.tree.map(lambda a: a.astype(jnp.float64), params)
    f = lambda x: jnp.sum(critic.apply({'params': params}, x, y))
    analytic = float(jnp.vdot(jax.grad(f)(x), v))
    h = 1e-7  # small: a wider step crosses the leaky ReLUs' kinks
    numeric = (float(f(x + h * v)) - float(f(x - h * v))) / (2 * h)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5)


def test_generator_loss_asks_the_critic_about_the_y_g_was_given():
  attack, data = _conditional()
  state = _state(attack)  # gamma 2
  key = jax.random.PRNGKey(11)
  g_params, _, metrics = jax.jit(attack.generator_update)(state, key, data)

  @functools.partial(jax.jit, static_argnums=1)
  def by_hand(g_params, shuffled):
    z, y = attack.sample_latents(key, data)
    fake = attack.generate(g_params, z, y)
    sim = losses.get_similarity('log_likelihood')(attack.f_apply(data.f_variables, fake), y)
    asked = y[::-1] if shuffled else y
    d_fake = attack.critic.apply({'params': state.d_params}, fake, asked)
    return -jnp.mean(d_fake) - 2.0 * jnp.mean(sim)

  np.testing.assert_allclose(
      metrics['generator_loss'], by_hand(state.g_params, False), rtol=1e-5, atol=1e-6
  )
  assert abs(float(by_hand(state.g_params, True)) - float(metrics['generator_loss'])) > 1e-6
  assert not tree_equal(g_params, state.g_params)


def test_conditional_and_plain_critics_train_differently_from_one_state():
  plain, data = make_tiny_attack()
  conditional, _ = _conditional()
  state = jax.jit(conditional.init)(jax.random.PRNGKey(0))
  shared = {k: v for k, v in state.d_params.items() if k != 'label_embedding'}
  plain_state = jax.jit(plain.init)(jax.random.PRNGKey(0)).replace(g_params=state.g_params)
  plain_state = plain_state.replace(d_params=shared, d_opt_state=plain.optimizer().init(shared))
  a, _ = jax.jit(plain.run, static_argnums=2)(plain_state, data, 1)
  b, _ = jax.jit(conditional.run, static_argnums=2)(state, data, 1)
  assert 'label_embedding' not in a.d_params and 'label_embedding' in b.d_params
  assert not tree_equal(a.g_params, b.g_params)
  for name in shared:
    assert not tree_equal(a.d_params[name], b.d_params[name])


def test_the_selection_s_realism_stage_reads_candidates_under_their_target():
  attack, data = _conditional()
  state = _state(attack)
  x = jax.random.uniform(jax.random.PRNGKey(2), (4, 28, 28, 1))
  scores = {
      t: np.asarray(evaluate._realism(attack, state.d_params, x, np.int32(t))) for t in (1, 7)
  }
  for t, s in scores.items():
    by_hand = attack.critic.apply(
        {'params': state.d_params}, x, jax.nn.one_hot(jnp.full((4,), t), NUM_CLASSES)
    )
    np.testing.assert_allclose(s, by_hand, rtol=1e-5, atol=1e-6)
  assert not np.allclose(scores[1], scores[7])
  # And the selection itself runs its realism stage on the conditional critic.
  attack = dataclasses.replace(
      attack, hyper=dataclasses.replace(attack.hyper, selection_pool=4, selection_realism=2)
  )
  selected, raw = evaluate.select_targets(
      attack, state.g_params, data.f_variables, [1, 7], 3, jax.random.PRNGKey(5), state.d_params
  )
  assert selected.shape == raw.shape == (2, 3, 28, 28, 1)


def test_the_attack_refuses_a_critic_that_does_not_match_its_setting():
  attack, _ = make_tiny_attack()
  with pytest.raises(ValueError, match=r'needs a critic with num_classes=10, not 0'):
    dataclasses.replace(
        attack, hyper=dataclasses.replace(attack.hyper, critic_condition='projection')
    )
  with pytest.raises(ValueError, match=r"critic_condition='off' needs a critic with num_classes=0"):
    dataclasses.replace(attack, critic=dataclasses.replace(attack.critic, num_classes=10))
  conditional, data = _conditional()
  with pytest.raises(ValueError, match="pass the images' label vectors y"):
    conditional.realism(_state(conditional).d_params, jnp.zeros((2, 28, 28, 1)))


def test_it_carries_f_s_labels_so_the_control_turns_it_off():
  from configs import orl as orl_config

  config = orl_config.get_config('cpu')
  config.attack.critic_condition = 'projection'
  assert attack_lib.Hyper.from_config(config.attack).critic_condition == 'projection'
  control = train.control_config(config)
  assert control.attack.critic_condition == 'off'
  # A control stored before the key existed reads as 'off': the same control.
  stored = control.to_dict()
  del stored['attack']['critic_condition']
  assert train.control_changes(stored, control) == ([], [])
