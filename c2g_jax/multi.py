"""Many independent attacks trained together in one jitted program.

`MultiAttack` vmaps one `Attack`'s pure methods over a stacked `AttackState`
(every leaf gets a leading axis of size N), so N PreImageGANs with different
seeds, or with different data of the same shapes, run as one program: one
compile, one dispatch per chunk, and batched matmuls/convolutions that keep a
large device busy where one attack at batch 64 cannot.

Attack i in the stack computes what it would compute alone: its keys come from
its own `state.rng` and `state.step`, exactly as in `Attack.run`, so the stack
equals N separate runs up to float rounding (batched kernels may sum in
another order).

Limits (vmap needs one program with one set of shapes):
  * One `Attack` for all: the same networks and widths, `num_classes`, image
    shape, batch size, n_critic and the whole `Hyper` (so one gamma schedule).
    Settings with different numbers of classes or datasets are separate
    programs; group a grid by shape and run one `MultiAttack` per group.
  * Data is either shared by all attacks (`shared_data=True`: different seeds,
    or targets evaluated from one trained generator) or one `AttackData` per
    attack stacked with `stack_data`, which needs equal aux image counts and
    the same classifier architecture (e.g. the label settings that share
    num_classes, with their aux sets cut to a common size).
  * `batch_sharding` (data parallelism) inside a vmapped step is untested.
"""

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp

from c2g_jax.attack import Attack, AttackData, AttackState

PyTree = Any


def stack(trees: Sequence[PyTree]) -> PyTree:
  """N pytrees of one structure and shapes -> one pytree with a leading N axis."""
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def select(tree: PyTree, i: int) -> PyTree:
  """Member i of a stacked pytree (e.g. one attack's state, to save or sample)."""
  return jax.tree.map(lambda x: x[i], tree)


def num_attacks(states: AttackState) -> int:
  return int(states.step.shape[0])


def stack_data(datas: Sequence[AttackData]) -> AttackData:
  """One AttackData per attack -> stacked data for `MultiAttack(shared_data=False)`."""
  if not datas:
    raise ValueError('stack_data: got no AttackData; pass one per attack')
  first = jax.tree_util.tree_flatten_with_path(datas[0])[0]
  for i, data in enumerate(datas[1:], 1):
    leaves = jax.tree_util.tree_flatten_with_path(data)[0]
    if [p for p, _ in leaves] != [p for p, _ in first]:
      raise ValueError(
          f'stack_data: attack {i} has a different classifier structure than '
          'attack 0; run attacks with different classifiers as separate programs'
      )
    for (path, a), (_, b) in zip(first, leaves):
      if a.shape != b.shape or a.dtype != b.dtype:
        name = jax.tree_util.keystr(path)
        raise ValueError(
            f'stack_data: {name} of attack {i} is {b.dtype}{list(b.shape)} but attack 0 has '
            f'{a.dtype}{list(a.shape)}; give every attack the same aux count and classifier '
            'shapes (e.g. cut the aux sets to the smallest), or run separate programs'
        )
  return stack(datas)


@dataclasses.dataclass(frozen=True, eq=False)
class MultiAttack:
  """N copies of `attack`, each with its own state, as one vmapped program."""

  attack: Attack
  shared_data: bool = True

  @property
  def _data_axis(self):
    return None if self.shared_data else 0

  def init(self, keys: jax.Array) -> AttackState:
    """One fresh state per key (N typed or (N, 2) raw keys); state i is attack.init(keys[i])."""
    return jax.vmap(self.attack.init)(keys)

  def step(self, states: AttackState, keys: jax.Array, data: AttackData):
    """One generator iteration of every attack; keys has one key per attack."""
    return jax.vmap(self.attack.step, in_axes=(0, 0, self._data_axis))(states, keys, data)

  def run(self, states: AttackState, data: AttackData, num_iterations: int):
    """`num_iterations` iterations of every attack in one scan; metrics are (N, num_iterations)."""
    return jax.vmap(
        lambda s, d: self.attack.run(s, d, num_iterations), in_axes=(0, self._data_axis)
    )(states, data)

  def generate(self, g_params: PyTree, z: jax.Array, y: jax.Array) -> jax.Array:
    """Every attack's generator on the same (z, y): images (N, B, H, W, C)."""
    return jax.vmap(self.attack.generate, in_axes=(0, None, None))(g_params, z, y)
