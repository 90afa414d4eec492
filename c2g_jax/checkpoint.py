"""Orbax checkpoints: the published classifier (variables + JSON metadata) and the
attack's state (kept by a CheckpointManager so a restarted run resumes).

Everything is stored as arrays and JSON; nothing is pickled.
"""

import json
import os
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from c2g_jax import networks

PyTree = Any

# The metadata a classifier checkpoint must carry for an attacker to use it.
REQUIRED_METADATA = (
    'architecture',
    'dataset',
    'num_classes',
    'label_names',
    'input_shape',
    'value_range',
)


class CheckpointError(ValueError):
  """A checkpoint that is missing, incomplete or does not fit what is asked of it."""


def _first_line(e: Exception, limit: int = 160) -> str:
  text = (str(e).strip().split('\n') or [''])[0]
  text = text.split(' See full TensorStore details')[0]  # a repr of a bound method follows
  return f'{type(e).__name__}: {text[:limit]}'


def _manager(
    directory: str, max_to_keep: Optional[int] = None, create: bool = True
) -> ocp.CheckpointManager:
  # A writer removes the temporary folders of saves that a kill interrupted;
  # Orbax never lists them as steps, so they are never restored either way.
  return ocp.CheckpointManager(
      os.path.abspath(directory),
      options=ocp.CheckpointManagerOptions(
          max_to_keep=max_to_keep, create=create, cleanup_tmp_directories=create
      ),
  )


def finished_step(directory: str) -> Optional[int]:
  """The newest fully written step in directory; None if there is none (or no directory)."""
  directory = os.path.abspath(directory)
  if not os.path.isdir(directory):
    return None
  with _manager(directory, create=False) as mngr:
    return mngr.latest_step()


def _all_finite(tree: PyTree) -> bool:
  return all(
      bool(np.all(np.isfinite(np.asarray(x))))
      for x in jax.tree.leaves(tree)
      if np.issubdtype(np.asarray(x).dtype, np.inexact)
  )


# --- the published classifier ------------------------------------------------------


def save_classifier(directory: str, variables: PyTree, metadata: dict) -> None:
  """Writes f (or f') the way a publisher would release it."""
  missing = [k for k in REQUIRED_METADATA if k not in metadata]
  if missing:
    raise CheckpointError(f'classifier metadata lacks {missing}')
  if jax.process_count() > 1:
    # Every process of a multi-process run calls this with its own (equal) copy;
    # Orbax refuses host-local jax.Arrays there and writes numpy leaves once.
    variables = jax.device_get(variables)
  with _manager(directory) as mngr:
    mngr.save(
        0,
        args=ocp.args.Composite(
            variables=ocp.args.StandardSave(variables), metadata=ocp.args.JsonSave(metadata)
        ),
        force=True,
    )
    mngr.wait_until_finished()


def check_metadata(meta: Any, directory: str) -> dict:
  """What building the module needs: known names, integer sizes, a pixel range."""
  where = f'classifier metadata in {directory}'
  if not isinstance(meta, dict):
    raise CheckpointError(
        f'{where} is a JSON {type(meta).__name__}, not an object: '
        'rewrite it with checkpoint.save_classifier'
    )
  missing = [k for k in REQUIRED_METADATA if k not in meta]
  if missing:
    raise CheckpointError(f'{where} lacks {missing}: rewrite it with checkpoint.save_classifier')
  if meta['architecture'] not in networks.ARCHITECTURES:
    raise CheckpointError(
        f'{where}: architecture {meta["architecture"]!r} is not one of '
        f'{tuple(networks.ARCHITECTURES)}'
    )
  if meta['dataset'] not in networks.DATASETS:
    raise CheckpointError(
        f'{where}: dataset {meta["dataset"]!r} is not one of ' f'{networks.DATASETS}'
    )
  n = meta['num_classes']
  if isinstance(n, bool) or not isinstance(n, int) or n < 2:
    raise CheckpointError(f'{where}: num_classes must be an integer >= 2, got {n!r}')
  names = meta['label_names']
  if not isinstance(names, list) or len(names) != n:
    raise CheckpointError(
        f'{where}: label_names must be a list of num_classes={n} names, ' f'got {str(names)[:60]}'
    )
  shape = meta['input_shape']
  if (
      not isinstance(shape, list)
      or len(shape) != 3
      or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape)
  ):
    raise CheckpointError(
        f'{where}: input_shape must be [H, W, C] positive integers, ' f'got {shape!r}'
    )
  vr = meta['value_range']
  if (
      not isinstance(vr, list)
      or len(vr) != 2
      or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vr)
      or not (np.isfinite(vr).all() and vr[0] < vr[1])
  ):
    raise CheckpointError(
        f'{where}: value_range must be [lo, hi] with finite lo < hi, ' f'got {vr!r}'
    )
  width = meta.get('width', 1.0)
  if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0:
    raise CheckpointError(f'{where}: width must be a positive number, got {width!r}')
  return meta


def load_classifier_metadata(directory: str) -> dict:
  directory = os.path.abspath(directory)
  if not os.path.isdir(directory):
    raise CheckpointError(
        f'no classifier checkpoint at {directory}: train one with '
        'main.py or point config.classifier.checkpoint at a saved one'
    )
  with _manager(directory, create=False) as mngr:
    step = mngr.latest_step()
    if step is None:
      raise CheckpointError(
          f'{directory} holds no finished checkpoint (empty, or its save '
          'was interrupted): save the classifier again'
      )
    try:
      meta = mngr.restore(step, args=ocp.args.Composite(metadata=ocp.args.JsonRestore()))[
          'metadata'
      ]
    except Exception as e:  # orbax raises several types for unreadable files
      raise CheckpointError(
          f'cannot read the metadata of {directory} ({_first_line(e)}): '
          'save the classifier again'
      ) from None
  return check_metadata(meta, directory)


def build_from_metadata(meta: dict):
  return networks.build_classifier(
      meta['architecture'],
      int(meta['num_classes']),
      meta['dataset'],
      width=float(meta.get('width', 1.0)),
      conv_impl=meta.get('conv_impl', 'auto'),
  )


def load_classifier(directory: str):
  """Returns (module, variables, metadata), restoring onto the module's own shapes."""
  meta = load_classifier_metadata(directory)
  module = build_from_metadata(meta)
  shape = (1,) + tuple(meta['input_shape'])
  abstract = jax.eval_shape(
      lambda: module.init(jax.random.PRNGKey(0), jnp.zeros(shape), train=False)
  )
  # Onto this process's first device: each process of a multi-process run reads
  # its own whole copy (Orbax refuses a target without a sharding there).
  local = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  abstract = jax.tree.map(
      lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=local), abstract
  )
  directory = os.path.abspath(directory)
  with _manager(directory, create=False) as mngr:
    try:
      variables = mngr.restore(
          mngr.latest_step(), args=ocp.args.Composite(variables=ocp.args.StandardRestore(abstract))
      )['variables']
    except Exception as e:
      raise CheckpointError(
          f'cannot restore the classifier in {directory} as a {meta["architecture"]} with '
          f'{meta["num_classes"]} classes and width {meta.get("width", 1.0)} '
          f'({_first_line(e)}): its arrays are damaged or do not match its metadata'
      ) from None
  if not _all_finite(variables):
    raise CheckpointError(
        f'the classifier in {directory} has NaN or infinite weights: '
        'use a checkpoint of a classifier that trained normally'
    )
  return module, variables, meta


# --- the attack ------------------------------------------------------------------


class AttackCheckpoints:
  """Periodic state saves that keep the newest `max_to_keep`.

  Orbax writes each step into a temporary folder and renames it when complete,
  so a kill mid-save leaves the previous steps as the newest finished ones.
  """

  def __init__(self, directory: str, max_to_keep: int = 3):
    self.directory = os.path.abspath(directory)
    self._mngr = _manager(directory, max_to_keep=max_to_keep)

  def latest_step(self) -> Optional[int]:
    return self._mngr.latest_step()

  def all_steps(self) -> list:
    return sorted(self._mngr.all_steps())

  def save(self, step: int, state: PyTree, info: dict) -> None:
    self._mngr.save(
        int(step),
        args=ocp.args.Composite(state=ocp.args.StandardSave(state), info=ocp.args.JsonSave(info)),
        force=True,
    )

  def restore(self, abstract_state: PyTree, step: Optional[int] = None):
    """(state, info) of `step` (default: the newest); CheckpointError if it is damaged."""
    step = self._mngr.latest_step() if step is None else step
    path = os.path.join(self.directory, str(step))
    try:
      out = self._mngr.restore(
          step,
          args=ocp.args.Composite(
              state=ocp.args.StandardRestore(abstract_state), info=ocp.args.JsonRestore()
          ),
      )
    except Exception as e:
      older = [s for s in self.all_steps() if s < step]
      hint = (
          f'move {path} elsewhere to resume from step {older[-1]}' if older else 'move it elsewhere'
      )
      raise CheckpointError(
          f'cannot restore the attack checkpoint {path} '
          f'({_first_line(e)}): {hint}, or pass --restart'
      ) from None
    info, state_step = out['info'], getattr(out['state'], 'step', None)
    if not isinstance(info, dict) or (
        state_step is not None and info.get('step') != int(state_step)
    ):
      raise CheckpointError(
          f'the attack checkpoint {path} is inconsistent (info '
          f'{str(info)[:60]} vs state step {state_step}): move it '
          'elsewhere, or pass --restart'
      )
    return out['state'], info

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
