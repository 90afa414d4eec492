"""Both conv lowerings compute the same function and the same derivatives.

tests/test_networks.py checks outputs and parameter gradients of one Conv and
the EMNIST critic's penalty. Here: the input gradients (what the penalty
takes the norm of), the double backward of a single Conv for every kernel
and stride the networks use, and the FaceScrub critic's whole WGAN-GP loss.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from c2g_jax import losses
from c2g_jax.conv import Conv
from c2g_jax.networks import Critic


def _init(module, x, seed):
  """Parameters with module.init's structure, drawn with numpy (no threefry compile)."""
  rng = np.random.default_rng(seed)
  shapes = jax.eval_shape(lambda: module.init(jax.random.key(0), x))

  def draw(leaf):
    fan_in = math.prod(leaf.shape[:-1]) if leaf.ndim > 1 else 4
    return (rng.standard_normal(leaf.shape) / np.sqrt(fan_in)).astype(np.float32)

  return jax.tree.map(draw, shapes)


def _assert_close(actual, desired, rtol, atol):
  assert jax.tree.structure(actual) == jax.tree.structure(desired)
  jax.tree.map(lambda a, d: np.testing.assert_allclose(a, d, rtol=rtol, atol=atol), actual, desired)


@pytest.mark.parametrize('kernel_size,stride', [(1, 1), (3, 1), (4, 2), (5, 2)])
def test_conv_input_gradient_and_double_backward_agree(kernel_size, stride):
  x = np.random.default_rng(0).standard_normal((2, 9, 9, 3)).astype(np.float32)
  variables = _init(Conv(4, kernel_size, stride=stride), x, seed=1)

  def derivatives(impl):
    conv = Conv(4, kernel_size, stride=stride, impl=impl)
    f = lambda v, xs: jnp.sum(jnp.sin(conv.apply(v, xs)))
    # The penalty's shape of computation: a norm of the input gradient,
    # differentiated with respect to the parameters.
    penalty = lambda v: jnp.sum(jnp.square(jax.grad(f, argnums=1)(v, x)))
    return jax.jit(lambda v: (jax.grad(f, argnums=1)(v, x), jax.grad(penalty)(v)))(variables)

  input_grad_xla, double_xla = derivatives('xla')
  input_grad_im2col, double_im2col = derivatives('im2col')
  np.testing.assert_allclose(input_grad_im2col, input_grad_xla, rtol=1e-4, atol=1e-5)
  _assert_close(double_im2col, double_xla, rtol=1e-4, atol=1e-5)
  # Non-trivial: the second-order term is there and not tiny.
  assert all(float(jnp.max(jnp.abs(g))) > 1e-2 for g in jax.tree.leaves(double_xla))


def test_facescrub_critic_wgan_gp_loss_agrees():
  rng = np.random.default_rng(2)
  real = rng.uniform(-1, 1, (2, 64, 64, 3)).astype(np.float32)
  fake = rng.uniform(-1, 1, (2, 64, 64, 3)).astype(np.float32)
  eps = rng.uniform(0, 1, (2,)).astype(np.float32)
  params = _init(Critic('facescrub', width=1 / 16, conv_impl='xla'), real, seed=3)['params']

  def loss_and_grads(impl):
    critic = Critic('facescrub', width=1 / 16, conv_impl=impl)
    critic_fn = lambda p: lambda xs: critic.apply({'params': p}, xs)

    def loss(p):
      # As Attack.critic_update: Wasserstein term plus the weighted penalty.
      scores = critic_fn(p)(jnp.concatenate([real, fake]))
      gp = losses.gradient_penalty(critic_fn(p), real, fake, eps)
      return losses.critic_loss(*jnp.split(scores, 2)) + 10.0 * gp, gp

    x_hat = losses.interpolate(real, fake, eps)
    input_grad = jax.grad(lambda xs: jnp.sum(critic_fn(params)(xs)))
    return jax.jit(lambda p: (jax.value_and_grad(loss, has_aux=True)(p), input_grad(x_hat)))(params)

  ((loss_xla, gp_xla), grads_xla), input_grad_xla = loss_and_grads('xla')
  ((loss_im2col, gp_im2col), grads_im2col), input_grad_im2col = loss_and_grads('im2col')
  assert float(gp_xla) > 1e-3
  np.testing.assert_allclose(loss_im2col, loss_xla, rtol=1e-5)
  np.testing.assert_allclose(gp_im2col, gp_xla, rtol=1e-5)
  np.testing.assert_allclose(input_grad_im2col, input_grad_xla, rtol=1e-4, atol=1e-7)
  _assert_close(grads_im2col, grads_xla, rtol=1e-4, atol=1e-6)
