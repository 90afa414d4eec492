"""Appendix C: what G learned between points, as image grids.

Three grids, each row a straight line walked in `steps` equal steps:
  z: z from z_a to z_b, y = onehot(t) fixed (style varies, class should not);
  y: y from onehot(t_a) to onehot(t_b), z fixed (class morphs, style should not);
  zy: both at once.
`generator` is anything with generate(g_params, z, y), hyper.z_dim and
num_classes: an Attack or the ACGAN baseline.
"""

import os
from typing import Dict, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from c2g_jax import images
from c2g_jax import prior


def lerp(a: jax.Array, b: jax.Array, steps: int) -> jax.Array:
  """(steps, ...) points from a to b inclusive."""
  w = jnp.linspace(0.0, 1.0, steps).reshape((steps,) + (1,) * jnp.ndim(a))
  return (1.0 - w) * a + w * b


def latent_rows(
    key: jax.Array, targets: Sequence[int], num_classes: int, z_dim: int, steps: int
) -> Dict[str, tuple]:
  """{'z' | 'y' | 'zy': (z, y)} with z (R, steps, z_dim) and y (R, steps, d).

  Row r of 'y' and 'zy' goes from target r to target r+1 (cyclically).
  """
  targets = list(targets)
  rows = len(targets)
  k_a, k_b = jax.random.split(key)
  z_a = prior.sample_z(k_a, rows, z_dim)
  z_b = prior.sample_z(k_b, rows, z_dim)
  y_a = prior.onehot_labels(jnp.array(targets), num_classes)
  y_b = prior.onehot_labels(jnp.array(targets[1:] + targets[:1]), num_classes)
  walk = jax.vmap(lambda a, b: lerp(a, b, steps))
  hold = lambda x: jnp.repeat(x[:, None], steps, axis=1)
  return {
      'z': (walk(z_a, z_b), hold(y_a)),
      'y': (hold(z_a), walk(y_a, y_b)),
      'zy': (walk(z_a, z_b), walk(y_a, y_b)),
  }


def interpolate(
    generator, g_params, key: jax.Array, targets: Sequence[int], steps: int = 10
) -> Dict[str, np.ndarray]:
  """{'z' | 'y' | 'zy': images (R, steps, H, W, C)}."""
  gen = jax.jit(generator.generate)
  out = {}
  for name, (z, y) in latent_rows(
      key, targets, generator.num_classes, generator.hyper.z_dim, steps
  ).items():
    r, s = z.shape[:2]
    x = gen(g_params, z.reshape(r * s, -1), y.reshape(r * s, -1))
    out[name] = np.asarray(x).reshape((r, s) + x.shape[1:])
  return out


def save_interpolations(
    directory: str,
    generator,
    g_params,
    key: jax.Array,
    targets: Sequence[int],
    label_names: Sequence[str],
    value_range,
    steps: int = 10,
) -> Dict[str, str]:
  """Writes interp_z.png, interp_y.png, interp_zy.png; returns {name: path}."""
  os.makedirs(directory, exist_ok=True)
  names = [label_names[t] for t in targets]
  row_labels = {'z': names, 'y': [f'{a}>{b}' for a, b in zip(names, names[1:] + names[:1])]}
  row_labels['zy'] = row_labels['y']
  paths = {}
  for name, grid in interpolate(generator, g_params, key, targets, steps).items():
    paths[name] = os.path.join(directory, f'interp_{name}.png')
    images.save_grid(paths[name], grid, value_range, row_labels[name])
  return paths
