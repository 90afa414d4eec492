"""PreImageGAN losses as pure functions of arrays (no models inside).

WGAN-GP (Gulrajani et al. 2017) for the critic, and the paper's generator loss
    L_G = -E[D(G(z, y))] - gamma * E[similarity(f(G(z, y)), y)]
where f is the frozen published classifier.
"""

from typing import Callable

import jax
import jax.numpy as jnp

# Keeps log(p) finite when f is fully confident in another class.
_LOG_EPS = 1e-8


def critic_loss(d_real: jax.Array, d_fake: jax.Array) -> jax.Array:
  """WGAN critic loss E[D(fake)] - E[D(real)] (the critic minimises it)."""
  return jnp.mean(d_fake) - jnp.mean(d_real)


def interpolate(real: jax.Array, fake: jax.Array, eps: jax.Array) -> jax.Array:
  """Points eps*real + (1-eps)*fake; eps has one value per sample, shape (B,)."""
  eps = eps.reshape((-1,) + (1,) * (real.ndim - 1))
  return eps * real + (1.0 - eps) * fake


def gradient_penalty(
    critic_fn: Callable[[jax.Array], jax.Array], real: jax.Array, fake: jax.Array, eps: jax.Array
) -> jax.Array:
  """E[(||grad_x D(x_hat)||_2 - 1)^2] at random interpolates x_hat (unweighted).

  critic_fn maps a batch (B, ...) to scores (B,). Samples are independent in the
  critic (no batch norm), so the gradient of the summed scores is the per-sample
  input gradient.
  """
  x_hat = interpolate(real, fake, eps)
  grads = jax.grad(lambda x: jnp.sum(critic_fn(x)))(x_hat)
  norms = jnp.sqrt(jnp.sum(jnp.square(grads.reshape(grads.shape[0], -1)), axis=-1) + 1e-12)
  return jnp.mean(jnp.square(norms - 1.0))


# --- similarity(f(x), y): how well the classifier's output on x matches y ----------


def log_likelihood_similarity(probs: jax.Array, y: jax.Array) -> jax.Array:
  """sum_k y_k log f_k(x) per sample: minus the cross-entropy of f(x) to y.

  The paper leaves the similarity open; this is our default because it is the
  log-likelihood of y under f and is maximal exactly at f(x) = y.
  """
  return jnp.sum(y * jnp.log(probs + _LOG_EPS), axis=-1)


def inner_product_similarity(probs: jax.Array, y: jax.Array) -> jax.Array:
  """sum_k y_k f_k(x): bounded in [0, 1], gentler gradients than the log."""
  return jnp.sum(y * probs, axis=-1)


def neg_kl_similarity(probs: jax.Array, y: jax.Array) -> jax.Array:
  """-KL(y || f(x)): the log-likelihood minus its value at f(x) = y (0 at best)."""
  return log_likelihood_similarity(probs, y) - jnp.sum(y * jnp.log(y + _LOG_EPS), axis=-1)


def max_margin_similarity(probs: jax.Array, y: jax.Array) -> jax.Array:
  """log f_c(x) - max_{k != c} log f_k(x) with c = argmax(y): f's logit margin of c.

  f returns probabilities, so their logs serve as logits (the margin is the same
  for any logits of f: the softmax's normaliser cancels). Soft labels y from the
  KDE prior count as their argmax class. Positive exactly when f predicts c; it
  keeps pushing past the point where the log-likelihood's gradient fades.
  """
  logp = jnp.log(probs + _LOG_EPS)
  target = jax.nn.one_hot(jnp.argmax(y, axis=-1), probs.shape[-1], dtype=bool)
  own = jnp.sum(jnp.where(target, logp, 0.0), axis=-1)
  other = jnp.max(jnp.where(target, -jnp.inf, logp), axis=-1)
  return own - other


SIMILARITIES = {
    'log_likelihood': log_likelihood_similarity,
    'inner_product': inner_product_similarity,
    'neg_kl': neg_kl_similarity,
    'max_margin': max_margin_similarity,
}


def get_similarity(name: str) -> Callable[[jax.Array, jax.Array], jax.Array]:
  if name not in SIMILARITIES:
    raise ValueError(
        f'unknown similarity {name!r}: set config.attack.similarity '
        f'to one of {sorted(SIMILARITIES)}'
    )
  return SIMILARITIES[name]


def generator_loss(d_fake: jax.Array, similarity: jax.Array, gamma) -> jax.Array:
  """-E[D(G(z,y))] - gamma * E[similarity(f(G(z,y)), y)]."""
  return -jnp.mean(d_fake) - gamma * jnp.mean(similarity)


def mode_seeking_loss(images: jax.Array, z: jax.Array) -> jax.Array:
  """1 / (mean |x1 - x2| / mean |z1 - z2|): small when distinct z give distinct images.

  The mode-seeking term of Mao et al. 2019 (MSGAN): the batch's first and second
  halves are pairs drawn with the same label, so the ratio is how far G moves its
  image per unit of z; its inverse grows without bound as G ignores z (one image
  per label), the collapse a growing f term brings.
  """
  half = images.shape[0] // 2
  image_gap = jnp.mean(jnp.abs(images[:half] - images[half : 2 * half]))
  z_gap = jnp.mean(jnp.abs(z[:half] - z[half : 2 * half]))
  return 1.0 / (image_gap / z_gap + 1e-5)


def gamma_schedule(step, start: float = 0.0, increment: float = 1e-3, maximum: float = 10.0):
  """gamma after `step` generator steps: start + increment*step, capped."""
  return jnp.minimum(start + increment * jnp.asarray(step, jnp.float32), maximum)
