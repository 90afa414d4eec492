"""The attacker's surrogate of f: trained on D_aux with f's labels, it joins f in
G's similarity and the final selection; checked against values computed by hand."""

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from c2g_jax import attack as attack_lib
from c2g_jax import checkpoint
from c2g_jax import checks
from c2g_jax import classifier
from c2g_jax import evaluate
from c2g_jax import networks
from c2g_jax import surrogate as surrogate_lib
from c2g_jax import train
from c2g_jax.data.problems import Problem
from test_attack import make_tiny_attack  # pylint: disable=g-bad-import-order


def tiny_surrogate(seed=5):
  module = networks.Classifier(num_classes=10, dataset='emnist', width=0.125)
  variables = jax.jit(lambda k: module.init(k, jnp.zeros((1, 28, 28, 1)), train=False))(
      jax.random.PRNGKey(seed)
  )
  return classifier.probs_fn(module, (0.0, 1.0)), variables


def with_surrogate(**hyper):
  """test_attack's tiny attack with a surrogate (another randomly initialised
  network), and the same attack with the surrogate standing in for f."""
  attack, data = make_tiny_attack(**hyper)
  s_apply, s_vars = tiny_surrogate()
  both = dataclasses.replace(
      attack,
      hyper=dataclasses.replace(attack.hyper, surrogate='classifier'),
      surrogate_apply=s_apply,
  )
  s_only = dataclasses.replace(attack, f_apply=s_apply)
  return attack, both, s_only, data.replace(surrogate_variables=s_vars), s_vars


def test_similarity_is_the_mean_of_f_s_and_the_surrogate_s_on_the_same_views():
  f_only, both, s_only, data, s_vars = with_surrogate(similarity_views=3, similarity='max_margin')
  state = jax.jit(f_only.init)(jax.random.PRNGKey(0)).replace(step=jnp.int32(4))  # gamma 2
  key = jax.random.PRNGKey(11)
  z, y = f_only.sample_latents(key, data)
  fake = f_only.generate(state.g_params, z, y)
  by_f = np.asarray(f_only.similarity(data.f_variables, fake, y, key))
  by_s = np.asarray(s_only.similarity(s_vars, fake, y, key))
  assert not np.allclose(by_f, by_s)  # two different networks
  np.testing.assert_allclose(
      both.similarity(data.f_variables, fake, y, key, s_vars), (by_f + by_s) / 2, rtol=1e-5
  )
  # The generator's step uses it: its logged similarity and loss, by hand.
  _, _, m = jax.jit(both.generator_update)(state, key, data)
  d_fake = np.asarray(f_only._critic(state.d_params, fake))
  sim = np.mean((by_f + by_s) / 2)
  np.testing.assert_allclose(m['similarity'], sim, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(
      m['generator_loss'], -np.mean(d_fake) - 2.0 * sim, rtol=1e-5, atol=1e-6
  )
  with pytest.raises(ValueError, match='surrogate_vars'):
    both.similarity(data.f_variables, fake, y, key)


def test_a_step_with_a_surrogate_leaves_f_and_the_surrogate_bit_identical():
  _, both, _, data, s_vars = with_surrogate(similarity_views=2)
  before = jax.tree.map(np.array, (data.f_variables, s_vars))
  state = jax.jit(both.init)(jax.random.PRNGKey(0))
  new, _ = jax.jit(both.run, static_argnums=2)(state, data, 2)
  assert int(new.step) == 2
  after = (data.f_variables, data.surrogate_variables)
  assert all(jax.tree.leaves(jax.tree.map(np.array_equal, before, after)))


def test_selection_scores_average_f_s_and_the_surrogate_s_probabilities():
  f_only, both, _, data, s_vars = with_surrogate(selection_views=1, view_augment='none')
  images = jax.random.uniform(jax.random.PRNGKey(2), (6, 28, 28, 1))
  key = jax.random.PRNGKey(3)
  p_f = np.asarray(f_only.f_apply(data.f_variables, images))[:, 4]
  p_s = np.asarray(both.surrogate_apply(s_vars, images))[:, 4]
  np.testing.assert_allclose(
      evaluate.selection_scores(f_only, data.f_variables, images, 4, key), p_f, rtol=1e-6
  )
  np.testing.assert_allclose(
      evaluate.selection_scores(both, data.f_variables, images, 4, key, s_vars),
      (p_f + p_s) / 2,
      rtol=1e-6,
  )


def test_surrogate_needs_its_apply_and_a_known_architecture():
  attack, _ = make_tiny_attack()
  with pytest.raises(ValueError, match='surrogate_apply'):
    dataclasses.replace(attack, hyper=attack_lib.Hyper(batch_size=8, surrogate='vgg'))
  with pytest.raises(ValueError, match='surrogate_apply'):
    dataclasses.replace(attack, surrogate_apply=lambda v, x: x)
  with pytest.raises(ValueError, match='config.attack.surrogate'):
    attack_lib.Hyper(surrogate='alexnet')
  from configs import emnist as emnist_config

  config = emnist_config.get_config('numeric_mutually_exclusive,tiny')
  config.attack.surrogate = 'alexnet'
  with pytest.raises(checks.ConfigError, match=r"config.attack.surrogate='alexnet'"):
    checks.check_config(config)


def test_the_surrogate_acts_through_f_s_term_so_the_control_drops_it():
  from configs import emnist as emnist_config

  config = emnist_config.get_config('numeric_mutually_exclusive,tiny')
  config.attack.surrogate = 'vgg'
  assert train.control_config(config).attack.surrogate == ''
  assert attack_lib.Hyper.from_config(config.attack).surrogate == 'vgg'


def test_surrogate_learns_f_s_labels_on_the_aux_images_and_is_saved_and_loaded(tmp_path):
  # A problem whose auxiliary images f labels by brightness: the surrogate is
  # trained on those labels (never on D_tr), saved, and loaded back unchanged.
  rng = np.random.default_rng(0)
  level = rng.integers(0, 2, 64)
  aux = (rng.integers(0, 60, (64, 28, 28, 1)) + 180 * level[:, None, None, None]).astype(np.uint8)
  aux_probs = np.eye(10, dtype=np.float32)[3 + 4 * level] * 0.9 + 0.01
  empty = np.zeros((0, 28, 28, 1), np.uint8)
  problem = Problem(
      dataset='emnist',
      private_x=empty,  # the surrogate must not need D_tr
      private_y=np.zeros((0,), np.int64),
      test_x=aux[:8],
      test_y=(3 + 4 * level[:8]),
      aux_x=aux,
      label_names=[str(i) for i in range(10)],
      target_ids=list(range(10)),
  )
  np.testing.assert_array_equal(surrogate_lib.labels(aux_probs), 3 + 4 * level)
  assert surrogate_lib.epochs_for(3, 64) == -(-surrogate_lib.MIN_IMAGE_PASSES // 64)
  assert surrogate_lib.epochs_for(10**6, 64) == 10**6
  config = ml_collections.ConfigDict(
      {
          'seed': 0,
          'attack': {'surrogate': 'classifier'},
          'evaluator': {
              'width': 0.125,
              'epochs': 1,
              'batch_size': 32,
              'learning_rate': 3e-3,
              'augment': 'none',
              'cosine_schedule': False,
          },
      }
  )
  folder = str(tmp_path / 'surrogate')
  module, variables, meta = surrogate_lib.train_or_load(config, problem, aux_probs, folder)
  assert meta['architecture'] == 'classifier' and meta['train_images'] == 64
  assert meta['agreement_with_f_on_aux'] >= 0.95  # it learned f's two labels
  again = surrogate_lib.train_or_load(config, problem, aux_probs, folder)
  assert all(jax.tree.leaves(jax.tree.map(np.array_equal, variables, again[1])))
  config.attack.surrogate = 'vgg'
  with pytest.raises(checkpoint.CheckpointError, match='--config.attack.surrogate=classifier'):
    surrogate_lib.train_or_load(config, problem, aux_probs, folder)
