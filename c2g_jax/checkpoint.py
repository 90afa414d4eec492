"""Orbax checkpoints: the published classifier (variables + JSON metadata) and the
attack's state (kept by a CheckpointManager so a restarted run resumes).

Everything is stored as arrays and JSON; nothing is pickled.
"""
import json
import os
from typing import Any, Optional

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

from c2g_jax import networks

PyTree = Any

# The metadata a classifier checkpoint must carry for an attacker to use it.
REQUIRED_METADATA = ('architecture', 'dataset', 'num_classes', 'label_names',
                     'input_shape', 'value_range')


class CheckpointError(ValueError):
  """A checkpoint that is missing, incomplete or does not fit what is asked of it."""


def _manager(directory: str, max_to_keep: Optional[int] = None,
             create: bool = True) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(
      os.path.abspath(directory),
      options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=create))


# --- the published classifier ------------------------------------------------------

def save_classifier(directory: str, variables: PyTree, metadata: dict) -> None:
  """Writes f (or f') the way a publisher would release it."""
  missing = [k for k in REQUIRED_METADATA if k not in metadata]
  if missing:
    raise CheckpointError(f'classifier metadata lacks {missing}')
  with _manager(directory) as mngr:
    mngr.save(0, args=ocp.args.Composite(
        variables=ocp.args.StandardSave(variables),
        metadata=ocp.args.JsonSave(metadata)), force=True)
    mngr.wait_until_finished()


def load_classifier_metadata(directory: str) -> dict:
  directory = os.path.abspath(directory)
  if not os.path.isdir(directory):
    raise CheckpointError(f'no classifier checkpoint at {directory}: train one with '
                          'main.py or point config.classifier.checkpoint at a saved one')
  with _manager(directory, create=False) as mngr:
    step = mngr.latest_step()
    if step is None:
      raise CheckpointError(f'{directory} holds no finished checkpoint')
    try:
      meta = mngr.restore(step, args=ocp.args.Composite(
          metadata=ocp.args.JsonRestore()))['metadata']
    except Exception as e:  # orbax raises several types for unreadable files
      raise CheckpointError(f'cannot read the metadata of {directory}: {e}') from e
  missing = [k for k in REQUIRED_METADATA if k not in meta] if isinstance(meta, dict) else list(REQUIRED_METADATA)
  if missing:
    raise CheckpointError(f'classifier metadata in {directory} lacks {missing}')
  return meta


def build_from_metadata(meta: dict):
  return networks.build_classifier(
      meta['architecture'], int(meta['num_classes']), meta['dataset'],
      width=float(meta.get('width', 1.0)), conv_impl=meta.get('conv_impl', 'auto'))


def load_classifier(directory: str):
  """Returns (module, variables, metadata), restoring onto the module's own shapes."""
  meta = load_classifier_metadata(directory)
  module = build_from_metadata(meta)
  shape = (1,) + tuple(meta['input_shape'])
  abstract = jax.eval_shape(
      lambda: module.init(jax.random.PRNGKey(0), jnp.zeros(shape), train=False))
  directory = os.path.abspath(directory)
  with _manager(directory, create=False) as mngr:
    try:
      variables = mngr.restore(mngr.latest_step(), args=ocp.args.Composite(
          variables=ocp.args.StandardRestore(abstract)))['variables']
    except Exception as e:
      raise CheckpointError(f'cannot restore the classifier in {directory} as a '
                            f'{meta["architecture"]} with {meta["num_classes"]} classes: {e}') from e
  return module, variables, meta


# --- the attack ------------------------------------------------------------------

class AttackCheckpoints:
  """Periodic, atomic (Orbax commits a step only when fully written) state saves."""

  def __init__(self, directory: str, max_to_keep: int = 3):
    self._mngr = _manager(directory, max_to_keep=max_to_keep)

  def latest_step(self) -> Optional[int]:
    return self._mngr.latest_step()

  def save(self, step: int, state: PyTree, info: dict) -> None:
    self._mngr.save(int(step), args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), info=ocp.args.JsonSave(info)), force=True)

  def restore(self, abstract_state: PyTree, step: Optional[int] = None):
    step = self._mngr.latest_step() if step is None else step
    out = self._mngr.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state), info=ocp.args.JsonRestore()))
    return out['state'], out['info']

  def wait(self) -> None:
    self._mngr.wait_until_finished()

  def close(self) -> None:
    self._mngr.wait_until_finished()
    self._mngr.close()


def write_json(path: str, obj: Any) -> None:
  """Writes JSON atomically (temp file + rename), so a kill never leaves half a file."""
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    json.dump(obj, f, indent=2, sort_keys=True)
  os.replace(tmp, path)
