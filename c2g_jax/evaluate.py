"""What an attack produced: samples per target, the grid, inception accuracy."""

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from c2g_jax import prior

PyTree = Any


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
