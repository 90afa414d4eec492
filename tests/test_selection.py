"""The final selection: M = pool x N candidates per target, the N that f labels most
confidently under random warps kept, checked against scores computed by hand."""

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from c2g_jax import attack as attack_lib
from c2g_jax import augment
from c2g_jax import evaluate
from test_attack import make_tiny_attack  # pylint: disable=g-bad-import-order


def tiny_attack(**hyper):
  """test_attack's tiny attack and f, with an untrained generator's parameters."""
  attack, data = make_tiny_attack(**hyper)
  g_params = jax.jit(attack.generator.init)(
      jax.random.PRNGKey(3), jnp.zeros((1, 128)), jnp.zeros((1, 10))
  )['params']
  return attack, g_params, data.f_variables


def test_selection_keeps_the_n_draws_f_is_surest_of_in_draw_order():
  # No warps ('none'): a candidate's score is f's probability of its target.
  attack, g_params, f_vars = tiny_attack(selection_pool=3, selection_views=1, view_augment='none')
  targets, n, key = [2, 7], 5, jax.random.PRNGKey(11)
  # batch_size 4 < 15 candidates: scores over several batches, joined in order.
  selected, raw = evaluate.select_targets(attack, g_params, f_vars, targets, n, key, batch_size=4)
  candidates = evaluate.sample_targets(attack, g_params, targets, 3 * n, key, batch_size=4)
  assert selected.shape == raw.shape == (2, n, 28, 28, 1)
  np.testing.assert_array_equal(raw, candidates[:, :n])
  for i, t in enumerate(targets):
    scores = np.asarray(attack.f_apply(f_vars, jnp.asarray(candidates[i])))[:, t]
    keep = sorted(np.argsort(-scores)[:n])
    assert len(set(np.round(scores, 7))) == 3 * n  # no ties: the choice is unique
    np.testing.assert_array_equal(selected[i], candidates[i, keep])
    # The kept are f's most confident: each beats every candidate left out.
    assert scores[keep].min() > np.delete(scores, keep).max()


def test_selection_compiles_one_scoring_program_for_every_target(caplog):
  # The target is an argument of the scoring program, not a constant in it: 100
  # FaceScrub targets would otherwise compile 100 programs.
  attack, g_params, f_vars = tiny_attack(selection_pool=2, selection_views=2)
  with caplog.at_level(logging.WARNING), jax.log_compiles():
    selected, _ = evaluate.select_targets(
        attack, g_params, f_vars, [1, 5, 8], 4, jax.random.PRNGKey(2), batch_size=8
    )
  compiled = [r for r in caplog.records if 'Compiling jit(selection_scores)' in r.getMessage()]
  assert len(compiled) <= 1, [r.getMessage()[:80] for r in compiled]
  assert selected.shape == (3, 4, 28, 28, 1)


def test_selection_score_is_the_mean_over_random_warps():
  attack, g_params, f_vars = tiny_attack(selection_views=3, view_augment='characters')
  x = evaluate.sample_targets(attack, g_params, [4], 6, jax.random.PRNGKey(0))[0]
  key = jax.random.PRNGKey(5)
  got = evaluate.selection_scores(attack, f_vars, jnp.asarray(x), 4, key)
  warp = augment.preset('characters')
  by_hand = np.mean(
      [
          np.asarray(
              attack.f_apply(f_vars, augment.random_warp(k, jnp.asarray(x), warp, fill=0.0))
          )[:, 4]
          for k in jax.random.split(key, 3)
      ],
      axis=0,
  )
  np.testing.assert_allclose(np.asarray(got), by_hand, rtol=1e-5, atol=1e-7)
  # The warps change f's view: the score is not f's probability of the image itself.
  plain = np.asarray(attack.f_apply(f_vars, jnp.asarray(x)))[:, 4]
  assert not np.allclose(np.asarray(got), plain, rtol=1e-4)


@pytest.mark.parametrize('field', ['selection_pool', 'selection_views'])
@pytest.mark.parametrize('value', [0, True, 1.5])
def test_bad_selection_keys_name_the_config_key(field, value):
  with pytest.raises(ValueError, match=f'set config.attack.{field}'):
    attack_lib.Hyper(**{field: value})
