"""attack.critic_augment: the critic sees real and generated images through a
random differentiable warp (DiffAugment), in its own updates and in G's."""

import jax
import jax.numpy as jnp
import numpy as np

from c2g_jax import attack as attack_lib
from c2g_jax import augment
from c2g_jax import losses
from c2g_jax import networks
from c2g_jax import train
from test_attack import critic_step_draws
from test_attack import make_tiny_attack
from test_attack import tree_equal

WARP = augment.PRESETS['characters']  # 'auto' on EMNIST


def _state(attack, step=4):
  return jax.jit(attack.init)(jax.random.PRNGKey(0)).replace(step=jnp.int32(step))


def test_critic_update_scores_warped_real_and_fake_by_hand():
  attack, data = make_tiny_attack(critic_augment='auto')
  assert attack.critic_warp() == WARP
  state = _state(attack)
  key = jax.random.PRNGKey(3)
  _, _, metrics = jax.jit(attack.critic_update)(state, key, data)

  # By hand: the step's draws as without the warp, then each half warped with
  # its own key split from fold_in(step key, CRITIC_KEY_SALT).
  @jax.jit
  def by_hand(state, key, data):
    real, _, z, y, eps = critic_step_draws(attack, key, data)
    fake = attack.generate(state.g_params, z, y)
    k_r, k_f = jax.random.split(jax.random.fold_in(key, attack_lib.CRITIC_KEY_SALT))
    real_w = augment.random_warp(k_r, real, WARP, fill=0.0)
    fake_w = augment.random_warp(k_f, fake, WARP, fill=0.0)
    critic = lambda x: attack._critic(state.d_params, x)
    wdist = losses.critic_loss(critic(real_w), critic(fake_w))
    gp = losses.gradient_penalty(critic, real_w, fake_w, eps)
    unwarped = losses.critic_loss(critic(real), critic(fake))
    return wdist, gp, unwarped

  wdist, gp, unwarped = by_hand(state, key, data)
  np.testing.assert_allclose(metrics['wasserstein'], -wdist, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(metrics['gradient_penalty'], gp, rtol=1e-4, atol=1e-7)
  np.testing.assert_allclose(
      metrics['critic_loss'], wdist + attack.hyper.gp_weight * gp, rtol=1e-5, atol=1e-6
  )
  assert abs(float(wdist) - float(unwarped)) > 1e-6  # the warp did change what it scored


def test_generator_loss_scores_a_warped_fake_and_its_gradient_passes_the_warp():
  attack, data = make_tiny_attack(critic_augment='auto')
  state = _state(attack)  # gamma 2
  key = jax.random.PRNGKey(11)
  g_params, _, metrics = jax.jit(attack.generator_update)(state, key, data)

  def loss(g_params, warped):
    z, y = attack.sample_latents(key, data)
    fake = attack.generate(g_params, z, y)
    seen = fake
    if warped:
      k = jax.random.fold_in(key, attack_lib.CRITIC_KEY_SALT)
      seen = augment.random_warp(k, fake, WARP, fill=0.0)
    sim = losses.get_similarity('log_likelihood')(attack.f_apply(data.f_variables, fake), y)
    return -jnp.mean(attack._critic(state.d_params, seen)) - 2.0 * jnp.mean(sim)

  by_hand = jax.jit(loss, static_argnums=1)
  np.testing.assert_allclose(
      metrics['generator_loss'], by_hand(state.g_params, True), rtol=1e-5, atol=1e-6
  )
  assert abs(float(by_hand(state.g_params, False)) - float(metrics['generator_loss'])) > 1e-6
  # The critic's term reaches G through the warp: its gradient is the warped
  # loss's (not the unwarped one's), and G moves.
  grad = jax.jit(jax.grad(loss), static_argnums=1)
  g_warped, g_plain = grad(state.g_params, True), grad(state.g_params, False)
  flat = lambda t: np.concatenate([np.ravel(x) for x in jax.tree.leaves(t)])
  assert np.linalg.norm(flat(g_warped)) > 0
  assert not np.allclose(flat(g_warped), flat(g_plain))
  assert not tree_equal(g_params, state.g_params)


def test_the_warp_is_differentiable_against_finite_differences():
  # G's gradient passes the critic's warp: d/dx of a warped image's sum of
  # squares, along a random direction, against a central difference.
  attack, _ = make_tiny_attack(critic_augment='characters')
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.uniform(0, 1, (2, 28, 28, 1)), jnp.float32)
  v = jnp.asarray(rng.normal(size=x.shape), jnp.float32)
  key = jax.random.PRNGKey(5)
  f = jax.jit(lambda x: jnp.sum(attack.critic_view(key, x) ** 2))
  analytic = float(jnp.vdot(jax.grad(f)(x), v))
  h = 1e-2
  numeric = (float(f(x + h * v)) - float(f(x - h * v))) / (2 * h)
  np.testing.assert_allclose(analytic, numeric, rtol=2e-2)


def test_off_shows_the_critic_the_images_themselves():
  attack, data = make_tiny_attack()
  assert attack.hyper.critic_augment == 'off' and attack.critic_warp() is None
  x = jnp.ones((2, 28, 28, 1))
  assert attack.critic_view(jax.random.PRNGKey(0), x) is x
  # And on, the same step gives another critic and generator.
  on, _ = make_tiny_attack(critic_augment='auto')
  state = jax.jit(attack.init)(jax.random.PRNGKey(0))
  a, _ = jax.jit(attack.run, static_argnums=2)(state, data, 1)
  b, _ = jax.jit(on.run, static_argnums=2)(state, data, 1)
  assert not tree_equal(a.d_params, b.d_params) and not tree_equal(a.g_params, b.g_params)


def test_auto_picks_the_faces_warp_for_faces():
  faces = attack_lib.Attack(
      generator=networks.Generator(dataset='facescrub', width=0.0625),
      critic=networks.Critic(dataset='facescrub', width=0.0625),
      f_apply=None,
      num_classes=3,
      image_shape=(64, 64, 3),
      value_range=(-1.0, 1.0),
      hyper=attack_lib.Hyper(critic_augment='auto'),
  )
  assert faces.critic_warp() == augment.PRESETS['faces']


def test_the_control_keeps_the_critic_warp():
  # It changes the GAN (the critic's updates and G's), not only f's term: a
  # control without it would not be the same GAN at gamma = 0.
  from configs import orl as orl_config

  config = orl_config.get_config('cpu')
  config.attack.critic_augment = 'auto'
  control = train.control_config(config)
  assert control.attack.critic_augment == 'auto'
  assert attack_lib.Hyper.from_config(control.attack).critic_augment == 'auto'
  assert not attack_lib.Hyper.from_config(control.attack).uses_classifier
