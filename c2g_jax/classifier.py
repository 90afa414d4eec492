"""The publisher's side: train a classifier (f, or the evaluator f') on D_tr.

The whole training set sits on the device as uint8 and each epoch is one jitted
scan over shuffled batches, so small CPU runs and full GPU runs share the code.
"""
import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from c2g_jax import images

PyTree = Any


def probs_fn(module: nn.Module, value_range, input_range=None
             ) -> Callable[[PyTree, jax.Array], jax.Array]:
  """(variables, images) -> class probabilities, inference mode.

  Images arrive in `input_range` (the generator's) and are rescaled to the
  classifier's own `value_range` when the two differ.
  """
  lo, hi = value_range
  in_lo, in_hi = input_range if input_range is not None else value_range

  def apply(variables, x):
    if (in_lo, in_hi) != (lo, hi):
      x = lo + (hi - lo) * (x - in_lo) / (in_hi - in_lo)
    return jax.nn.softmax(module.apply(variables, x, train=False), axis=-1)
  return apply


def predict(module: nn.Module, variables: PyTree, images_u8: np.ndarray, value_range,
            batch_size: int = 1000) -> np.ndarray:
  """f's probabilities for uint8 images, batch by batch."""
  apply = jax.jit(lambda v, x: jax.nn.softmax(
      module.apply(v, images.to_float(x, value_range), train=False), axis=-1))
  out = [np.asarray(apply(variables, images_u8[i:i + batch_size]))
         for i in range(0, len(images_u8), batch_size)]
  return np.concatenate(out) if out else np.zeros((0,), np.float32)


def accuracy(module, variables, images_u8, labels, value_range) -> float:
  probs = predict(module, variables, images_u8, value_range)
  return float(np.mean(np.argmax(probs, -1) == np.asarray(labels)))


def train(module: nn.Module, train_x: np.ndarray, train_y: np.ndarray, value_range, *,
          epochs: int = 10, batch_size: int = 128, learning_rate: float = 1e-3,
          seed: int = 0, log: Callable[[str], None] = print, name: str = 'f') -> PyTree:
  """Adam on softmax cross-entropy; returns the trained variables."""
  n = len(train_x)
  batch_size = min(batch_size, n)
  steps_per_epoch = n // batch_size
  key = jax.random.PRNGKey(seed)
  k_init, k_loop = jax.random.split(key)
  # Jitted: eagerly, each random draw and zero fill compiles on its own (same values).
  variables = jax.jit(lambda k: module.init(k, jnp.zeros((1,) + train_x.shape[1:]),
                                            train=False))(k_init)
  params, batch_stats = variables['params'], variables.get('batch_stats', {})
  tx = optax.adam(learning_rate)
  opt_state = jax.jit(tx.init)(params)
  x_dev, y_dev = jnp.asarray(train_x), jnp.asarray(train_y, jnp.int32)

  def loss_fn(params, batch_stats, x, y, k):
    logits, updates = module.apply({'params': params, 'batch_stats': batch_stats}, x,
                                   train=True, rngs={'dropout': k}, mutable=['batch_stats'])
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    return loss, (updates.get('batch_stats', {}), jnp.mean(jnp.argmax(logits, -1) == y))

  @functools.partial(jax.jit, donate_argnums=(0,))
  def epoch(carry, k):
    def body(carry, inputs):
      params, batch_stats, opt_state = carry
      idx, k_drop = inputs
      x = images.to_float(x_dev[idx], value_range)
      (loss, (batch_stats, acc)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
          params, batch_stats, x, y_dev[idx], k_drop)
      updates, opt_state = tx.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), batch_stats, opt_state), (loss, acc)
    k_perm, k_drop = jax.random.split(k)
    perm = jax.random.permutation(k_perm, n)[:steps_per_epoch * batch_size]
    return jax.lax.scan(body, carry, (perm.reshape(steps_per_epoch, batch_size),
                                      jax.random.split(k_drop, steps_per_epoch)))

  carry = (params, batch_stats, opt_state)
  for e in range(epochs):
    carry, (loss, acc) = epoch(carry, jax.random.fold_in(k_loop, e))
    log(f'{name}: epoch {e + 1}/{epochs} loss {float(loss.mean()):.4f} '
        f'train accuracy {float(acc.mean()):.4f}')
  params, batch_stats, _ = carry
  return {'params': params, 'batch_stats': batch_stats} if batch_stats else {'params': params}
