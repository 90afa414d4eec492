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


def test_realism_stage_keeps_the_n_of_fs_best_that_the_critic_scores_highest():
  # pool 4, realism 2: f keeps its 2n surest of 4n draws, the critic n of those.
  attack, g_params, f_vars = tiny_attack(
      selection_pool=4, selection_realism=2, selection_views=1, view_augment='none'
  )
  d_params = attack.init(jax.random.PRNGKey(8)).d_params
  targets, n, key = [3, 6], 4, jax.random.PRNGKey(12)
  selected, raw = evaluate.select_targets(
      attack, g_params, f_vars, targets, n, key, d_params, batch_size=5
  )
  candidates = evaluate.sample_targets(attack, g_params, targets, 4 * n, key, batch_size=5)
  np.testing.assert_array_equal(raw, candidates[:, :n])
  for i, t in enumerate(targets):
    f_scores = np.asarray(attack.f_apply(f_vars, jnp.asarray(candidates[i])))[:, t]
    realism = np.asarray(attack.realism(d_params, jnp.asarray(candidates[i])))
    assert len(set(np.round(f_scores, 7))) == len(set(np.round(realism, 6))) == 4 * n
    f_best = np.argsort(-f_scores)[: 2 * n]
    keep = sorted(f_best[np.argsort(-realism[f_best])[:n]])
    np.testing.assert_array_equal(selected[i], candidates[i, keep])
    # Every kept draw is among f's 2n best, and the critic prefers it to the
    # rest of them; f alone (realism 1) would have kept other draws.
    assert set(keep) <= set(f_best)
    assert (
        realism[keep].min()
        > np.delete(realism, np.r_[keep, np.setdiff1d(np.arange(4 * n), f_best)]).max()
    )
    assert keep != sorted(np.argsort(-f_scores)[:n])


def test_realism_stage_needs_the_critic_and_a_pool_to_choose_from():
  attack, g_params, f_vars = tiny_attack(selection_pool=2, selection_realism=2)
  with pytest.raises(ValueError, match='needs the critic'):
    evaluate.select_targets(attack, g_params, f_vars, [1], 2, jax.random.PRNGKey(0))
  with pytest.raises(
      ValueError, match='config.attack.selection_realism <= config.attack.selection_pool'
  ):
    attack_lib.Hyper(selection_pool=2, selection_realism=3)


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


@pytest.mark.parametrize('field', ['selection_pool', 'selection_views', 'selection_realism'])
@pytest.mark.parametrize('value', [0, True, 1.5])
def test_bad_selection_keys_name_the_config_key(field, value):
  with pytest.raises(ValueError, match=f'set config.attack.{field}'):
    attack_lib.Hyper(**{field: value})
