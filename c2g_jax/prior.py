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


def sample_z(key: jax.Array, batch_size: int, z_dim: int = 128) -> jax.Array:
  return jax.random.uniform(key, (batch_size, z_dim), minval=-1.0, maxval=1.0)


def onehot_labels(targets, num_classes: int) -> jax.Array:
  """y = onehot(t): what G is given to draw class t after training."""
  return jax.nn.one_hot(jnp.asarray(targets), num_classes)
