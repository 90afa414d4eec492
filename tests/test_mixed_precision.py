"""Hyper.compute_dtype='bfloat16': bf16 activations, f32 parameters and losses."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from c2g_jax import attack as attack_lib
from c2g_jax import classifier
from c2g_jax import networks


@pytest.fixture(scope='module')
def attacks():
  f_module = networks.Classifier(num_classes=10, dataset='emnist', width=0.125)
  f32 = attack_lib.Attack(
      generator=networks.Generator(dataset='emnist', width=0.0625),
      critic=networks.Critic(dataset='emnist', width=0.0625, conv_impl='im2col'),
      f_apply=classifier.probs_fn(f_module, (0.0, 1.0)),
      num_classes=10,
      image_shape=(28, 28, 1),
      value_range=(0.0, 1.0),
      hyper=attack_lib.Hyper(batch_size=8, n_critic=1),
  )
  bf16 = dataclasses.replace(f32, hyper=dataclasses.replace(f32.hyper, compute_dtype='bfloat16'))
  rng = np.random.default_rng(0)
  data = attack_lib.AttackData(
      aux_images=jnp.asarray(rng.integers(0, 256, (32, 28, 28, 1), dtype=np.uint8)),
      aux_probs=jax.nn.softmax(jnp.asarray(rng.normal(size=(32, 10)) * 3, jnp.float32)),
      f_variables=jax.jit(f_module.init)(jax.random.PRNGKey(1), jnp.zeros((1, 28, 28, 1))),
  )
  state = jax.jit(f32.init)(jax.random.PRNGKey(0))
  return f32, bf16, data, state


def test_unsupported_dtype_is_rejected_naming_the_setting():
  with pytest.raises(ValueError, match=r"compute_dtype='float16'.*config.attack.compute_dtype"):
    attack_lib.Hyper(compute_dtype='float16')
  assert attack_lib.Hyper.from_config({'compute_dtype': 'bfloat16'}).compute_dtype == 'bfloat16'


def test_bf16_networks_run_in_bf16_and_return_f32(attacks):
  f32, bf16, _, state = attacks
  z = jax.random.uniform(jax.random.PRNGKey(2), (4, 128), minval=-1.0, maxval=1.0)
  y = jax.nn.one_hot(jnp.arange(4), 10)
  jaxpr = str(jax.make_jaxpr(bf16.generate)(state.g_params, z, y))
  assert 'bf16' in jaxpr and 'bf16' not in str(jax.make_jaxpr(f32.generate)(state.g_params, z, y))
  images_bf16 = jax.jit(bf16.generate)(state.g_params, z, y)
  images_f32 = jax.jit(f32.generate)(state.g_params, z, y)
  assert images_bf16.dtype == jnp.float32
  np.testing.assert_allclose(images_bf16, images_f32, atol=2e-2)
  scores = jax.jit(bf16._critic)(state.d_params, images_f32)
  assert scores.dtype == jnp.float32
  np.testing.assert_allclose(
      scores, jax.jit(f32._critic)(state.d_params, images_f32), rtol=5e-2, atol=5e-3
  )


def test_bf16_critic_update_keeps_f32_state_and_tracks_f32(attacks):
  f32, bf16, data, state = attacks
  key = jax.random.PRNGKey(3)
  params_16, opt_16, metrics_16 = jax.jit(bf16.critic_update)(state, key, data)
  params_32, _, metrics_32 = jax.jit(f32.critic_update)(state, key, data)
  for leaf in jax.tree.leaves((params_16, opt_16)):
    assert leaf.dtype in (jnp.float32, jnp.int32)
  for name in ('critic_loss', 'wasserstein', 'gradient_penalty'):
    assert metrics_16[name].dtype == jnp.float32
    np.testing.assert_allclose(metrics_16[name], metrics_32[name], rtol=5e-2, atol=1e-2)
  # One Adam step moves each parameter by about +-lr; bf16 may flip the sign of
  # a few near-zero gradients, but most updates must match f32's.
  lr = f32.hyper.learning_rate
  moved_16 = np.concatenate(
      [np.ravel(a - b) for a, b in zip(jax.tree.leaves(params_16), jax.tree.leaves(state.d_params))]
  )
  moved_32 = np.concatenate(
      [np.ravel(a - b) for a, b in zip(jax.tree.leaves(params_32), jax.tree.leaves(state.d_params))]
  )
  assert np.abs(moved_16).max() <= 1.01 * lr
  assert np.mean(np.sign(moved_16) == np.sign(moved_32)) > 0.9


@pytest.mark.parametrize('config_file', ['configs/emnist.py', 'configs/facescrub.py'])
def test_configs_expose_compute_dtype_to_the_attack(config_file):
  """--config.attack.compute_dtype=bfloat16 must be a known key that reaches Hyper."""
  import importlib.util

  spec = importlib.util.spec_from_file_location('_cfg', config_file)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(
      'tiny' if 'facescrub' in config_file else 'numeric_mutually_exclusive,tiny'
  )
  assert attack_lib.Hyper.from_config(config.attack).compute_dtype == 'float32'
  config.attack.compute_dtype = 'bfloat16'
  assert attack_lib.Hyper.from_config(config.attack).compute_dtype == 'bfloat16'
