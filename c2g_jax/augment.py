"""Random, differentiable image transforms: training augmentation for evaluators.

Each image gets its own affine warp (shift, rotation, scale) and, for faces, a
random horizontal flip, resampled bilinearly with `map_coordinates` so the
transform is jittable and differentiable in the image. Pixels that come from
outside the image take the background value (the dataset's lowest value:
black behind EMNIST's white strokes); faces are cropped by zooming in, so they
see no border. An optional Gaussian blur of random width follows the warp (the
attack's views only: no preset blurs).
"""

import dataclasses
import math
from typing import Optional

import jax
import jax.numpy as jnp

KINDS = ('none', 'characters', 'faces')


@dataclasses.dataclass(frozen=True)
class Warp:
  """Ranges of the random affine transform; each drawn uniformly per image."""

  max_shift: float = 0.0  # pixels, each axis
  max_rotation: float = 0.0  # degrees
  min_scale: float = 1.0
  max_scale: float = 1.0
  flip: bool = False  # horizontal flip with probability 1/2
  # Gaussian blur after the warp, its standard deviation in pixels drawn
  # uniformly in [0, max_blur] per image; 0 = none.
  max_blur: float = 0.0


# The blur's key is fold_in(key, BLUR_KEY_SALT): with jax_threefry_partitionable
# (the default) fold_in(k, i) == split(k, n)[i], so a small i would reuse the key
# of the shift, rotation, scale or flip and tie the blur's width to it.
BLUR_KEY_SALT = 0x0B1A2


# Characters: small shifts, rotations and scales keep a digit a digit (no flips:
# a mirrored 2 or 7 is another glyph). Faces: random crops (zoom in by up to 15%
# and shift) and mirror images, as in the usual face-recognition recipes.
PRESETS = {
    'none': Warp(),
    'characters': Warp(max_shift=2.5, max_rotation=12.0, min_scale=0.9, max_scale=1.1),
    'faces': Warp(max_shift=4.0, max_rotation=5.0, min_scale=1.0, max_scale=1.15, flip=True),
}


def preset(kind: str, dataset: Optional[str] = None) -> Warp:
  """The preset called `kind`; 'auto' picks it from the dataset."""
  if kind == 'auto':
    kind = 'faces' if dataset == 'facescrub' else 'characters'
  if kind not in PRESETS:
    raise ValueError(f'unknown augmentation {kind!r}: choose one of {("auto",) + KINDS}')
  return PRESETS[kind]


def _warp_one(image: jax.Array, matrix: jax.Array, offset: jax.Array, fill) -> jax.Array:
  """Output pixel p samples the input at matrix @ p + offset (row, col coordinates)."""
  h, w = image.shape[:2]
  rows, cols = jnp.meshgrid(
      jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32), indexing='ij'
  )
  coords = jnp.einsum('ij,jhw->ihw', matrix, jnp.stack([rows, cols])) + offset[:, None, None]

  def channel(c):
    return jax.scipy.ndimage.map_coordinates(c, list(coords), order=1, mode='constant', cval=fill)

  return jnp.moveaxis(jax.vmap(channel, in_axes=-1)(image), 0, -1)


def random_warp(key: jax.Array, images: jax.Array, warp: Warp, fill: float = 0.0) -> jax.Array:
  """Applies an independent random `warp` to each image of (B, H, W, C) floats."""
  if warp == PRESETS['none']:
    return images
  b, h, w = images.shape[:3]
  k_shift, k_rot, k_scale, k_flip = jax.random.split(key, 4)
  shift = jax.random.uniform(k_shift, (b, 2), minval=-warp.max_shift, maxval=warp.max_shift)
  angle = jnp.deg2rad(
      jax.random.uniform(k_rot, (b,), minval=-warp.max_rotation, maxval=warp.max_rotation)
  )
  scale = jax.random.uniform(k_scale, (b,), minval=warp.min_scale, maxval=warp.max_scale)
  flip = jax.random.bernoulli(k_flip, 0.5, (b,)) if warp.flip else jnp.zeros((b,), bool)
  # Inverse map (output -> input) about the image centre: rotate by -angle,
  # shrink by 1/scale (so the content grows by `scale`), mirror the columns.
  cos, sin = jnp.cos(angle) / scale, jnp.sin(angle) / scale
  col_sign = jnp.where(flip, -1.0, 1.0)
  matrix = jnp.stack(
      [jnp.stack([cos, -sin * col_sign], -1), jnp.stack([sin, cos * col_sign], -1)], -2
  )
  centre = jnp.array([(h - 1) / 2.0, (w - 1) / 2.0])
  offset = centre - jnp.einsum('bij,j->bi', matrix, centre) - shift
  warped = jax.vmap(_warp_one, in_axes=(0, 0, 0, None))(images, matrix, offset, fill)
  if not warp.max_blur:
    return warped
  return gaussian_blur(warped, blur_widths(key, b, warp), radius=math.ceil(3 * warp.max_blur))


def blur_widths(key: jax.Array, n: int, warp: Warp) -> jax.Array:
  """The (n,) blur widths random_warp(key, ...) draws, uniform in [0, max_blur]."""
  return jax.random.uniform(jax.random.fold_in(key, BLUR_KEY_SALT), (n,), maxval=warp.max_blur)


def gaussian_kernels(sigma: jax.Array, radius: int) -> jax.Array:
  """(B,) standard deviations -> (B, 2 * radius + 1) normalised 1-D Gaussian taps.

  A width near 0 gives the identity tap (the width is clipped at 1e-3, not divided by 0).
  """
  x = jnp.arange(-radius, radius + 1, dtype=jnp.float32)
  taps = jnp.exp(-(x[None, :] ** 2) / (2.0 * jnp.maximum(sigma[:, None], 1e-3) ** 2))
  return taps / jnp.sum(taps, axis=1, keepdims=True)


def gaussian_blur(images: jax.Array, sigma: jax.Array, radius: int) -> jax.Array:
  """Blurs each image of (B, H, W, C) with its own Gaussian (sigma: (B,) pixels),
  separably, edges repeated (a blurred border neither darkens nor brightens)."""
  taps = gaussian_kernels(sigma, radius)
  h, w = images.shape[1:3]
  padded = jnp.pad(images, ((0, 0), (radius, radius), (0, 0), (0, 0)), mode='edge')
  rows = sum(taps[:, i, None, None, None] * padded[:, i : i + h] for i in range(2 * radius + 1))
  padded = jnp.pad(rows, ((0, 0), (0, 0), (radius, radius), (0, 0)), mode='edge')
  return sum(taps[:, i, None, None, None] * padded[:, :, i : i + w] for i in range(2 * radius + 1))
