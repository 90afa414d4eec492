"""The divergence guard: a NaN or infinity in a loss or a parameter stops the run.

After each jitted chunk the trainer gets every step's losses (already on the
host for logging) and one boolean per parameter group, reduced on the device
inside the same jitted call, so the check costs no extra transfer of the
parameters. The bad state is never checkpointed: the last good checkpoint stays
the newest one.
"""

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

# The state's parameter groups the guard looks at, with the words used in messages.
PARAMETERS = (('g_params', "the generator's parameters"), ('d_params', "the critic's parameters"))


class DivergenceError(RuntimeError):
  """Training produced a non-finite loss or parameter."""


def all_finite(tree) -> jax.Array:
  """One boolean: every floating leaf of tree is finite (jittable)."""
  leaves = [
      jnp.all(jnp.isfinite(x))
      for x in jax.tree.leaves(tree)
      if jnp.issubdtype(x.dtype, jnp.inexact)
  ]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def finite_flags(state) -> dict:
  """{group name: all finite} for the state's parameter groups (jittable)."""
  return {name: all_finite(getattr(state, name)) for name, _ in PARAMETERS}


def checked(run):
  """Wraps attack.run so its jitted call also returns `finite_flags` of the new state."""

  def run_checked(state, data, num_iterations):
    state, metrics = run(state, data, num_iterations)
    return state, metrics, finite_flags(state)

  return run_checked


def find_divergence(metrics: dict, flags: dict, first_step: int) -> Optional[str]:
  """What went non-finite first in a chunk, or None.

  metrics: {name: (n,) values of the chunk's steps}, step first_step + i + 1 for
  row i; flags: finite_flags after the chunk's last step.
  """
  first = None
  for name in sorted(metrics):
    values = np.asarray(metrics[name]).reshape(-1)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size and (first is None or bad[0] < first[0]):
      first = (int(bad[0]), name, values[bad[0]])
  if first is not None:
    i, name, value = first
    return f'{name} is {value} at generator step {first_step + i + 1}'
  n = len(np.asarray(next(iter(metrics.values()))).reshape(-1)) if metrics else 0
  for name, words in PARAMETERS:
    if name in flags and not bool(flags[name]):
      return f'{words} ({name}) hold NaN or infinity after generator step {first_step + n}'
  return None
