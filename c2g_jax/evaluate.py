"""What an attack produced: samples per target, the grid, inception accuracy."""

import functools
from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from c2g_jax import prior

PyTree = Any
# The selection's warps are keyed by fold_in(key, SELECTION_KEY_SALT), apart from
# the candidates' z, which sample_targets draws from fold_in(key, target index).
SELECTION_KEY_SALT = 0x73656C  # 'sel'


def sample_targets(
    attack, g_params: PyTree, targets: Sequence[int], n: int, key: jax.Array, batch_size: int = 500
) -> np.ndarray:
  """G(z, onehot(t)) for each target t: (len(targets), n, H, W, C)."""
  gen = jax.jit(attack.generate)
  out = []
  for i, t in enumerate(targets):
    k = jax.random.fold_in(key, i)
    rows = []
    for j in range(0, n, batch_size):
      b = min(batch_size, n - j)
      z = prior.sample_z(jax.random.fold_in(k, j), b, attack.hyper.z_dim)
      y = prior.onehot_labels(jnp.full((b,), t), attack.num_classes)
      rows.append(np.asarray(gen(g_params, z, y)))
    out.append(np.concatenate(rows))
  return np.stack(out)


def sample_from_prior(
    attack, g_params: PyTree, aux_probs: jax.Array, n: int, key: jax.Array
) -> np.ndarray:
  """G(z, y) with y drawn from the label KDE, as the attack trained it."""
  k_y, k_z = jax.random.split(key)
  y = prior.sample_labels(k_y, aux_probs, n, attack.hyper.bandwidth)
  z = prior.sample_z(k_z, n, attack.hyper.z_dim)
  return np.asarray(jax.jit(attack.generate)(g_params, z, y))


def predict_labels(
    probs_apply: Callable, variables: PyTree, images: np.ndarray, batch_size: int = 1000
) -> np.ndarray:
  apply = jax.jit(lambda v, x: jnp.argmax(probs_apply(v, x), -1))
  flat = images.reshape((-1,) + images.shape[-3:])
  out = [
      np.asarray(apply(variables, flat[i : i + batch_size]))
      for i in range(0, len(flat), batch_size)
  ]
  return np.concatenate(out).reshape(images.shape[:-3])


def inception_accuracy(predicted: np.ndarray, targets: Sequence[int]) -> np.ndarray:
  """Share of each target's samples (row) that the evaluator labels as that target."""
  return np.mean(predicted == np.asarray(targets)[:, None], axis=1)


def selection_scores(
    attack, f_vars: PyTree, images: jax.Array, target, key: jax.Array, surrogate_vars: PyTree = None
):
  """f's mean probability of `target` over attack.hyper.selection_views random
  warps (view_augment's) of each image: how surely f labels it `target` under
  small changes that should not change its class. With a surrogate
  (attack.hyper.surrogate), the mean of f's and the surrogate's probabilities.

  `target` may be traced: one compiled program serves every target (a static
  target compiled one program per target, 100 for FaceScrub).
  """
  k = int(attack.hyper.selection_views)
  views = attack.views(key, images, k).reshape((-1,) + images.shape[1:])

  def score(apply, variables):
    probs = apply(variables, views)
    return jnp.mean(jnp.take(probs.reshape((k, images.shape[0], -1)), target, axis=-1), axis=0)

  scores = [score(apply, v) for apply, v in attack.scorers(f_vars, surrogate_vars)]
  return sum(scores) / len(scores)


# Jitted once per process: the attack is static (its networks and settings shape
# the program), the target an int32 argument.
_selection_scores = jax.jit(selection_scores, static_argnums=0)


@functools.partial(jax.jit, static_argnums=0)
def _realism(attack, d_params, x, target):
  """The critic's scores of candidates x for target (a conditional critic reads
  them under onehot(target), the label G drew them with)."""
  y = jax.nn.one_hot(jnp.full((x.shape[0],), target), attack.num_classes)
  return attack.realism(d_params, x, y)


def select_targets(
    attack,
    g_params: PyTree,
    f_vars: PyTree,
    targets: Sequence[int],
    n: int,
    key: jax.Array,
    d_params: Optional[PyTree] = None,
    batch_size: int = 500,
    surrogate_vars: PyTree = None,
):
  """The final selection: (selected, raw), each (len(targets), n, H, W, C).

  Draws selection_pool x n candidates per target (sample_targets with `key`),
  scores each by selection_scores and keeps the n best, in their draw order (so a
  grid shows typical kept samples, not the best few); raw is the first n draws,
  what the attack gives without selection. With selection_realism r > 1, f keeps
  the r x n best and the critic (d_params) the n of those it scores highest.
  Uses G, D, f and the attacker's surrogate of f alone: an attacker's step.
  """
  m = n * int(attack.hyper.selection_pool)
  r = int(attack.hyper.selection_realism)
  if r > 1 and d_params is None:
    raise ValueError('selection_realism > 1 needs the critic: pass d_params')
  candidates = sample_targets(attack, g_params, targets, m, key, batch_size)
  selected = []
  for i, t in enumerate(targets):
    k = jax.random.fold_in(jax.random.fold_in(key, SELECTION_KEY_SALT), i)
    s = np.concatenate(
        [
            np.asarray(
                _selection_scores(
                    attack,
                    f_vars,
                    candidates[i, j : j + batch_size],
                    np.int32(t),
                    k_j,
                    surrogate_vars,
                )
            )
            for j, k_j in zip(range(0, m, batch_size), jax.random.split(k, -(-m // batch_size)))
        ]
    )
    # The n (or r x n) highest scores (ties: the earlier draw).
    keep = np.argsort(-s, kind='stable')[: r * n]
    if r > 1:
      realism = np.concatenate(
          [
              np.asarray(
                  _realism(attack, d_params, candidates[i, keep[j : j + batch_size]], np.int32(t))
              )
              for j in range(0, len(keep), batch_size)
          ]
      )
      keep = keep[np.argsort(-realism, kind='stable')[:n]]
    selected.append(candidates[i, np.sort(keep)])  # back in draw order
  return np.stack(selected), candidates[:, :n]
