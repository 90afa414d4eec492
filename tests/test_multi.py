"""N vmapped attacks equal N attacks run one by one."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from c2g_jax import attack as attack_lib
from c2g_jax import classifier
from c2g_jax import multi
from c2g_jax import networks

ITERS = 2


def _attack():
  f_module = networks.Classifier(num_classes=10, dataset='emnist', width=0.125)
  return f_module, attack_lib.Attack(
      generator=networks.Generator(dataset='emnist', width=0.0625),
      critic=networks.Critic(dataset='emnist', width=0.0625, conv_impl='im2col'),
      f_apply=classifier.probs_fn(f_module, (0.0, 1.0)),
      num_classes=10,
      image_shape=(28, 28, 1),
      value_range=(0.0, 1.0),
      hyper=attack_lib.Hyper(batch_size=8, n_critic=2, gamma_increment=0.5),
  )


def _data(f_module, seed, n_aux=32):
  rng = np.random.default_rng(seed)
  f_vars = f_module.init(jax.random.PRNGKey(seed), jnp.zeros((1, 28, 28, 1)), train=False)
  return attack_lib.AttackData(
      aux_images=jnp.asarray(rng.integers(0, 256, (n_aux, 28, 28, 1), dtype=np.uint8)),
      aux_probs=jax.nn.softmax(jnp.asarray(rng.normal(size=(n_aux, 10)) * 3, jnp.float32)),
      f_variables=f_vars,
  )


@pytest.fixture(scope='module')
def setup():
  f_module, attack = _attack()
  datas = [_data(f_module, seed) for seed in (1, 2, 3)]
  keys = jax.random.split(jax.random.PRNGKey(0), 3)
  init = jax.jit(attack.init)
  run = jax.jit(attack.run, static_argnums=2)
  # Committed to the device as test_attack.py's states are: a committed argument
  # changes the program, and the separate runs then find test_attack's in the cache.
  singles = [jax.device_put(init(k), jax.devices()[0]) for k in keys]
  return f_module, attack, datas, keys, singles, run


def assert_trees_close(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5), a, b)


def assert_states_close(a, b, learning_rate):
  """Equal to float tolerance, allowing Adam's sign flips on rounding-level gradients.

  Adam moves a parameter by about +-lr whatever the gradient's size, so where a
  gradient is ~0 a rounding difference (a batched kernel summing in another
  order) can flip one update: up to 2 lr per iteration on a few elements.
  """
  assert jax.tree.structure(a) == jax.tree.structure(b)
  xs = np.concatenate([np.ravel(x) for x in jax.tree.leaves(a)]).astype(np.float64)
  ys = np.concatenate([np.ravel(y) for y in jax.tree.leaves(b)]).astype(np.float64)
  diff = np.abs(xs - ys)
  assert diff.max() <= 2 * learning_rate * ITERS + 1e-6
  assert np.mean(diff > 1e-6 + 1e-4 * np.abs(ys)) < 0.005


def test_vmapped_init_equals_separate_inits(setup):
  _, attack, _, keys, singles, _ = setup
  states = jax.jit(multi.MultiAttack(attack).init)(keys)
  assert multi.num_attacks(states) == 3
  for i, single in enumerate(singles):
    assert_trees_close(multi.select(states, i), single)


def test_shared_data_vmapped_run_equals_separate_runs(setup):
  _, attack, datas, _, singles, run = setup
  m = multi.MultiAttack(attack, shared_data=True)
  states, metrics = jax.jit(m.run, static_argnums=2)(multi.stack(singles), datas[0], ITERS)
  assert metrics['critic_loss'].shape == (3, ITERS)
  finals = []
  for i, single in enumerate(singles):
    final, single_metrics = run(single, datas[0], ITERS)
    assert_states_close(multi.select(states, i), final, attack.hyper.learning_rate)
    assert_trees_close(multi.select(metrics, i), single_metrics)
    finals.append(final)
  # Different seeds really are different attacks.
  assert not np.allclose(
      finals[0].g_params['Dense_0']['kernel'], finals[1].g_params['Dense_0']['kernel']
  )


def test_per_attack_data_vmapped_run_equals_separate_runs(setup):
  _, attack, datas, _, singles, run = setup
  # Same seed for both attacks, different data: only the data makes them differ.
  m = multi.MultiAttack(attack, shared_data=False)
  states, metrics = jax.jit(m.run, static_argnums=2)(
      multi.stack([singles[0], singles[0]]), multi.stack_data(datas[1:]), ITERS
  )
  for i, data in enumerate(datas[1:]):
    final, single_metrics = run(singles[0], data, ITERS)
    assert_states_close(multi.select(states, i), final, attack.hyper.learning_rate)
    assert_trees_close(multi.select(metrics, i), single_metrics)
  assert not np.allclose(metrics['similarity'][0], metrics['similarity'][1])


def test_stack_data_names_the_mismatch(setup):
  f_module, _, datas, _, _, _ = setup
  with pytest.raises(ValueError, match=r'aux_images.*uint8\[16, 28, 28, 1\].*same aux count'):
    multi.stack_data([datas[0], _data(f_module, 4, n_aux=16)])
  with pytest.raises(ValueError, match='no AttackData'):
    multi.stack_data([])
