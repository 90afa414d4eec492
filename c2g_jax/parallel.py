"""Data parallelism: one mesh axis over every device, batches split along it.

Parameters and the auxiliary data are replicated; the per-step batches (images,
z, y, penalty interpolation weights) are constrained to be split over 'data', and
XLA's partitioner inserts the gradient all-reduce. This is what `pmap` used to do,
written as `jax.jit` over a mesh.

Several processes (hosts): `maybe_initialize_distributed` joins them with
`jax.distributed`, and the mesh then spans every process's devices. Every process
runs the same program on the same data (the attack's inputs are deterministic),
so `jax.device_put` of a host value onto the global replicated sharding is valid
in jax 0.10: each process supplies its own devices' copies. The state's Orbax
checkpoints are saved and restored by every process (Orbax coordinates them);
files of the run itself (config.json, metrics, TensorBoard, samples, results,
the report) are written by process 0 alone (`is_primary`, `on_primary`), which
also evaluates the finished attack on its own devices (`local`).
"""

from typing import Any, Callable, Optional

import jax
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

AXIS = 'data'


class ShardingError(ValueError):
  pass


def data_mesh(devices=None) -> jax.sharding.Mesh:
  """A 1-D mesh over `devices` (default: every device of every host)."""
  devices = jax.devices() if devices is None else list(devices)
  return jax.make_mesh((len(devices),), (AXIS,), axis_types=(AxisType.Auto,), devices=devices)


def batch_sharding(mesh: jax.sharding.Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(AXIS))


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def check_batch_size(batch_size: int, mesh: jax.sharding.Mesh) -> None:
  n = mesh.devices.size
  if batch_size % n:
    raise ShardingError(
        f'config.attack.batch_size={batch_size} is not divisible by the {n} devices: '
        f'set --config.attack.batch_size to a multiple of {n}'
    )


class DistributedError(ShardingError):
  """jax.distributed could not be set up (a bad coordinator address or process id)."""


def maybe_initialize_distributed(
    enabled: bool,
    coordinator: Optional[str] = None,
    num_processes: Optional[int] = None,
    process_id: Optional[int] = None,
) -> None:
  """Multi-host runs: every host runs the same command with `enabled` set.

  coordinator ('host:port' of process 0), num_processes and process_id may be
  given (e.g. several processes on one machine, or a cluster jax does not
  recognise); left None, jax detects them on Cloud TPU, SLURM, Open MPI and
  similar. A second call (main.py initialises before train_and_evaluate) is a no-op.
  """
  given = {
      k: v
      for k, v in (
          ('coordinator', coordinator),
          ('num_processes', num_processes),
          ('process_id', process_id),
      )
      if v is not None
  }
  if not enabled:
    if given:
      raise DistributedError(
          f'{", ".join("--" + k for k in given)} set up a multi-process '
          'run: add --config.multihost=True'
      )
    return
  if jax.distributed.is_initialized():
    return
  # CPU devices of several processes need a collectives implementation to form
  # one mesh; GPU and TPU backends ignore this setting.
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  try:
    jax.distributed.initialize(
        coordinator_address=coordinator, num_processes=num_processes, process_id=process_id
    )
  except (RuntimeError, ValueError) as e:
    where = ', '.join(f'{k}={v}' for k, v in given.items()) or 'automatic detection'
    first = (str(e).strip().split('\n') or [''])[0][:200]
    raise DistributedError(
        f'jax.distributed.initialize failed ({where}): {first}; give --coordinator=HOST:PORT '
        '--num_processes=N --process_id=I, the same coordinator and N on every process'
    ) from None


def is_primary() -> bool:
  """Process 0: the one that writes the run's own files."""
  return jax.process_index() == 0


def sync(name: str) -> None:
  """Every process waits here until all have arrived (nothing with one process)."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils

    multihost_utils.sync_global_devices(name)


def on_primary(fn: Callable[[], Any], name: str = 'on_primary') -> None:
  """fn() on process 0 only, between two barriers: the others neither run ahead
  of it (reading what it writes) nor before it (racing it in the work directory)."""
  sync(name + ':before')
  if is_primary():
    fn()
  sync(name + ':after')


def primary_first(fn: Callable[[], Any], name: str = 'primary_first') -> Any:
  """fn() on process 0, then, once it has returned, on every other process.

  For work that writes shared files on its first call and reads them after,
  such as preparing a TFDS dataset: processes sharing a filesystem would race
  to prepare the same folder (one fails renaming it into place); hosts with a
  disk of their own each prepare their own copy, one after the other.
  """
  if jax.process_count() == 1:
    return fn()
  result, error = None, None
  if is_primary():
    try:
      result = fn()
    except Exception as e:  # pylint: disable=broad-except
      error = e  # raised after the barrier, so the others are not left waiting
  sync(name)
  if error is not None:
    raise error
  return result if is_primary() else fn()


def agree(timed: bool, signum: Optional[int]):
  """(whether any process wants a time-based checkpoint, the stop signal any
  process received or None), the same on every process.

  A save and a stop must happen at the same step on all processes: each calls
  the Orbax save, whose barriers would wait forever for a peer that went on
  training. Clocks and signals differ between hosts; one small all-gather per
  chunk settles both. With one process the values are returned as they are.
  """
  if jax.process_count() == 1:
    return timed, signum
  from jax.experimental import multihost_utils

  mine = np.array([int(bool(timed)), int(signum or 0)], np.int32)
  every = np.asarray(multihost_utils.process_allgather(mine)).reshape(-1, 2)
  return bool(every[:, 0].any()), int(every[:, 1].max()) or None


class NullLog:
  """Takes the metrics records of processes other than 0 and writes nothing."""

  def write(self, record: dict) -> None:
    pass

  def image(self, tag: str, image, step: int) -> None:
    pass

  def close(self) -> None:
    pass


def primary_log(make: Callable[[], Any]):
  """make() on process 0 (e.g. the metrics log), a NullLog on the others."""
  return make() if is_primary() else NullLog()


def replicate(tree, sharding):
  """jax.device_put(tree, sharding) of values every process holds alike.

  With several processes, arrays on a local device (the classifier, the fresh
  state) go through the host first: jax 0.10 places host values onto a global
  sharding (each process fills its own devices) but refuses a device-to-device
  copy across hosts.
  """
  if jax.process_count() > 1:
    tree = jax.device_get(tree)
  return jax.device_put(tree, sharding)


def local(tree):
  """Global, replicated arrays as host arrays, for work process 0 does alone.

  With several processes a jitted call on global arrays must be made by every
  process; the evaluation runs on process 0 only, on its copy of the values. With
  one process the tree is returned as it is.
  """
  if jax.process_count() == 1:
    return tree

  def one(x):
    if not isinstance(x, jax.Array):
      return x
    if not x.is_fully_replicated:
      raise ValueError(f'parallel.local needs replicated arrays, got {x.sharding}')
    return np.asarray(x.addressable_data(0))

  return jax.tree.map(one, tree)
