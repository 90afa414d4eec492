"""Data parallelism: one mesh axis over every device, batches split along it.

Parameters and the auxiliary data are replicated; the per-step batches (images,
z, y, penalty interpolation weights) are constrained to be split over 'data', and
XLA's partitioner inserts the gradient all-reduce. This is what `pmap` used to do,
written as `jax.jit` over a mesh.
"""
import jax
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

AXIS = 'data'


class ShardingError(ValueError):
  pass


def data_mesh(devices=None) -> jax.sharding.Mesh:
  """A 1-D mesh over `devices` (default: every device of every host)."""
  devices = jax.devices() if devices is None else list(devices)
  return jax.make_mesh((len(devices),), (AXIS,), axis_types=(AxisType.Auto,),
                       devices=devices)


def batch_sharding(mesh: jax.sharding.Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(AXIS))


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def check_batch_size(batch_size: int, mesh: jax.sharding.Mesh) -> None:
  n = mesh.devices.size
  if batch_size % n:
    raise ShardingError(
        f'config.attack.batch_size={batch_size} is not divisible by the {n} devices: '
        f'set --config.attack.batch_size to a multiple of {n}')


def maybe_initialize_distributed(enabled: bool) -> None:
  """Multi-host runs: every host runs the same command with this flag set."""
  if enabled:
    jax.distributed.initialize()
