"""The publisher's side: train a classifier (f, or the evaluator f') on D_tr.

The whole training set sits on the device as uint8 and each epoch is one jitted
scan over shuffled batches, so small CPU runs and full GPU runs share the code.
"""

import functools
from typing import Any, Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from c2g_jax import augment as augment_lib
from c2g_jax import images

PyTree = Any


def probs_fn(
    module: nn.Module, value_range, input_range=None
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


@functools.lru_cache(maxsize=32)
def _jitted_probs(module: nn.Module, value_range: tuple):
  # One compiled program per (module, value range), shared by every call: the
  # evaluators' per-epoch validation would otherwise compile again each epoch.
  return jax.jit(
      lambda v, x: jax.nn.softmax(
          module.apply(v, images.to_float(x, value_range), train=False), axis=-1
      )
  )


def predict(
    module: nn.Module, variables: PyTree, images_u8: np.ndarray, value_range, batch_size: int = 1000
) -> np.ndarray:
  """f's probabilities for uint8 images, batch by batch (the last one padded)."""
  try:
    apply = _jitted_probs(module, tuple(value_range))
  except TypeError:  # an unhashable user module: compile for this call only
    apply = jax.jit(
        lambda v, x: jax.nn.softmax(
            module.apply(v, images.to_float(x, value_range), train=False), axis=-1
        )
    )
  n = len(images_u8)
  batch_size = max(1, min(batch_size, n))
  out = []
  for i in range(0, n, batch_size):
    xb = np.asarray(images_u8[i : i + batch_size])
    pad = batch_size - len(xb)
    if pad:
      xb = np.concatenate([xb, np.zeros((pad,) + xb.shape[1:], xb.dtype)])
    out.append(np.asarray(apply(variables, xb))[: batch_size - pad])
  return np.concatenate(out) if out else np.zeros((0,), np.float32)


def accuracy(module, variables, images_u8, labels, value_range) -> float:
  probs = predict(module, variables, images_u8, value_range)
  return float(np.mean(np.argmax(probs, -1) == np.asarray(labels)))


def equal_counts(labels) -> bool:
  """Whether every class present in `labels` has as many images as the others."""
  counts = np.bincount(np.asarray(labels, np.int64))
  counts = counts[counts > 0]
  return bool(len(counts) == 0 or np.all(counts == counts[0]))


def balanced_accuracy(module, variables, images_u8, labels, value_range) -> float:
  """The mean over the classes in `labels` of each class's accuracy.

  An audit's figure is a mean of per-class shares, so this is the accuracy
  that says how well a judge reads each class: on EMNIST's half sample the
  plain accuracy rewards reading every s as the 12x commoner 5. On a test set
  with equal counts it is the plain accuracy, computed as such (same number).
  """
  labels = np.asarray(labels)
  if equal_counts(labels):
    return accuracy(module, variables, images_u8, labels, value_range)
  pred = np.argmax(predict(module, variables, images_u8, value_range), -1)
  return float(np.mean([np.mean(pred[labels == c] == c) for c in np.unique(labels)]))


def balanced_draw(labels) -> Optional[np.ndarray]:
  """Each image's probability of being drawn so that every class present is
  drawn equally often: 1 / (classes present * the class's count).

  None when the classes already have equal counts, so training on balanced
  data is unchanged (the same program, bit for bit).
  """
  labels = np.asarray(labels, np.int64)
  if equal_counts(labels):
    return None
  counts = np.bincount(labels)
  return (1.0 / (np.count_nonzero(counts) * counts[labels])).astype(np.float64)


def validation_split(labels: np.ndarray, fraction: float, seed: int):
  """(train rows, validation rows): `fraction` of each class, at least one, held out.

  Classes with a single image stay whole in training.
  """
  labels = np.asarray(labels)
  rng = np.random.default_rng(seed)
  held = []
  for c in np.unique(labels):
    rows = rng.permutation(np.flatnonzero(labels == c))
    k = int(round(fraction * len(rows)))
    if fraction > 0 and len(rows) > 1:
      held.append(rows[: min(max(k, 1), len(rows) - 1)])
  held = np.sort(np.concatenate(held)) if held else np.zeros((0,), np.int64)
  return np.setdiff1d(np.arange(len(labels)), held), held


def train(
    module: nn.Module,
    train_x: np.ndarray,
    train_y: np.ndarray,
    value_range,
    *,
    epochs: int = 10,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    seed: int = 0,
    log: Callable[[str], None] = print,
    name: str = 'f',
    augment: augment_lib.Warp = augment_lib.PRESETS['none'],
    validation_fraction: float = 0.0,
    cosine_schedule: bool = False,
    info: Optional[dict] = None,
    balance_classes: bool = False,
) -> PyTree:
  """Adam on softmax cross-entropy; returns the trained variables.

  augment: a random warp applied to every training batch (on the device).
  validation_fraction > 0 holds out that share of each class and returns the
  variables of the epoch with the best validation accuracy (model selection:
  the last epoch is not always the best). cosine_schedule decays the learning
  rate to 0 over the run. `info`, when given, receives the validation history.
  balance_classes draws each epoch's images class by class (balanced_draw,
  with replacement), so every class is seen as often, and selects the epoch by
  balanced validation accuracy: a judge trained on unequal classes reads a rare
  class's images as its common look-alike (EMNIST's s as 5, o as 0) and
  understates that class's leak. (Weighting the loss instead, up to 16x on the
  few rare images of a batch, trained a ResNet slowly on EMNIST's half sample.)
  """
  if validation_fraction > 0:
    fit_rows, val_rows = validation_split(train_y, validation_fraction, seed)
    val_x, val_y = train_x[val_rows], np.asarray(train_y)[val_rows]
    train_x, train_y = train_x[fit_rows], np.asarray(train_y)[fit_rows]
  draw = balanced_draw(train_y) if balance_classes else None
  score = balanced_accuracy if balance_classes else accuracy
  n = len(train_x)
  batch_size = min(batch_size, n)
  steps_per_epoch = n // batch_size
  key = jax.random.PRNGKey(seed)
  k_init, k_loop = jax.random.split(key)
  # Jitted: eagerly, each random draw and zero fill compiles on its own (same values).
  variables = jax.jit(lambda k: module.init(k, jnp.zeros((1,) + train_x.shape[1:]), train=False))(
      k_init
  )
  params, batch_stats = variables['params'], variables.get('batch_stats', {})
  rate = (
      optax.cosine_decay_schedule(learning_rate, epochs * steps_per_epoch)
      if cosine_schedule
      else learning_rate
  )
  tx = optax.adam(rate)
  opt_state = jax.jit(tx.init)(params)
  x_dev, y_dev = jnp.asarray(train_x), jnp.asarray(train_y, jnp.int32)
  background = float(value_range[0])

  def loss_fn(params, batch_stats, x, y, k):
    logits, updates = module.apply(
        {'params': params, 'batch_stats': batch_stats},
        x,
        train=True,
        rngs={'dropout': k},
        mutable=['batch_stats'],
    )
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    return loss, (updates.get('batch_stats', {}), jnp.mean(jnp.argmax(logits, -1) == y))

  @functools.partial(jax.jit, donate_argnums=(0,))
  def epoch(carry, k):
    def body(carry, inputs):
      params, batch_stats, opt_state = carry
      idx, k_step = inputs
      k_drop, k_aug = jax.random.split(k_step)
      x = images.to_float(x_dev[idx], value_range)
      x = augment_lib.random_warp(k_aug, x, augment, fill=background)
      (loss, (batch_stats, acc)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
          params, batch_stats, x, y_dev[idx], k_drop
      )
      updates, opt_state = tx.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), batch_stats, opt_state), (loss, acc)

    k_perm, k_drop = jax.random.split(k)
    if draw is None:
      perm = jax.random.permutation(k_perm, n)[: steps_per_epoch * batch_size]
    else:
      perm = jax.random.choice(k_perm, n, (steps_per_epoch * batch_size,), p=jnp.asarray(draw))
    return jax.lax.scan(
        body,
        carry,
        (perm.reshape(steps_per_epoch, batch_size), jax.random.split(k_drop, steps_per_epoch)),
    )

  def as_variables(carry):
    params, batch_stats, _ = carry
    return {'params': params, 'batch_stats': batch_stats} if batch_stats else {'params': params}

  carry = (params, batch_stats, opt_state)
  best, best_acc, best_epoch, history = None, -1.0, 0, []
  for e in range(epochs):
    carry, (loss, acc) = epoch(carry, jax.random.fold_in(k_loop, e))
    line = (
        f'{name}: epoch {e + 1}/{epochs} loss {float(loss.mean()):.4f} '
        f'train accuracy {float(acc.mean()):.4f}'
    )
    if validation_fraction > 0:
      val_acc = score(module, as_variables(carry), val_x, val_y, value_range)
      history.append(val_acc)
      line += f" validation {'balanced ' if balance_classes else ''}accuracy {val_acc:.4f}"
      if val_acc > best_acc:  # copies: the next epoch donates carry's buffers
        best, best_acc, best_epoch = jax.device_get(as_variables(carry)), val_acc, e + 1
    log(line)
  if info is not None:
    info.update(
        validation_accuracy=history,
        selected_epoch=best_epoch or epochs,
        validation_images=int(len(val_y)) if validation_fraction > 0 else 0,
    )
  if best is not None:
    log(
        f'{name}: keeping epoch {best_epoch} (best validation '
        f"{'balanced ' if balance_classes else ''}accuracy {best_acc:.4f})"
    )
    return best
  return as_variables(carry)
