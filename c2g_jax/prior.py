"""The attacker's priors: labels y from a KDE of f's outputs on D_aux, and z ~ U[-1, 1]."""

import jax
import jax.numpy as jnp


def sample_labels(
    key: jax.Array, aux_probs: jax.Array, batch_size: int, bandwidth: float = 0.01
) -> jax.Array:
  """Draws y from the Gaussian KDE of {f(x) : x in D_aux}.

  A KDE sample is a stored prediction plus N(0, bandwidth^2) noise. The noisy
  vector can leave the probability simplex, while f's outputs (what y stands
  for) never do, so we clip it at 0 and renormalise it to sum to 1.
  """
  k_pick, k_noise = jax.random.split(key)
  idx = jax.random.randint(k_pick, (batch_size,), 0, aux_probs.shape[0])
  y = aux_probs[idx] + bandwidth * jax.random.normal(
      k_noise, (batch_size, aux_probs.shape[-1]), aux_probs.dtype
  )
  y = jnp.clip(y, 0.0, None)
  # The sum is ~1 (the picked prediction sums to 1); the floor only guards a
  # pathological all-zero draw.
  return y / jnp.maximum(jnp.sum(y, axis=-1, keepdims=True), 1e-12)


# fold_in salt of the key that picks the one-hot rows' classes: the KDE rows keep
# the key they had before one-hot rows existed, so share 0 draws the paper's y.
ONEHOT_KEY_SALT = 0x1E07


def sample_mixed_labels(
    key: jax.Array,
    aux_probs: jax.Array,
    batch_size: int,
    bandwidth: float,
    onehot_rows: int,
    num_classes: int,
) -> jax.Array:
  """y for a training batch: `onehot_rows` rows onehot(c), c uniform over f's
  classes, then batch_size - onehot_rows rows from the KDE (sample_labels).

  The KDE of f(D_aux) rarely comes near onehot(t) for a target t that no
  auxiliary image resembles (lowercase g from uppercase letters), yet onehot(t)
  is what G is asked for after training: one-hot rows train G on that input.
  """
  kde = sample_labels(key, aux_probs, batch_size - onehot_rows, bandwidth)
  if not onehot_rows:
    return kde
  classes = jax.random.randint(
      jax.random.fold_in(key, ONEHOT_KEY_SALT), (onehot_rows,), 0, num_classes
  )
  return jnp.concatenate([onehot_labels(classes, num_classes).astype(kde.dtype), kde])


def sample_z(key: jax.Array, batch_size: int, z_dim: int = 128) -> jax.Array:
  return jax.random.uniform(key, (batch_size, z_dim), minval=-1.0, maxval=1.0)


def onehot_labels(targets, num_classes: int) -> jax.Array:
  """y = onehot(t): what G is given to draw class t after training."""
  return jax.nn.one_hot(jnp.asarray(targets), num_classes)
