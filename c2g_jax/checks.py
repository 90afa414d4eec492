"""Start-up checks of the config and of the arrays a run is given.

Each failure is one line naming the input and the fix, raised before anything
is trained or written: ConfigError for a config value, DataError for arrays.
Other loaders (image folders, a user's classifier) call `check_images` and
`check_labels` on what they read.
"""

import math
import numbers
from typing import Sequence

import numpy as np

from c2g_jax import attack as attack_lib
from c2g_jax import conv
from c2g_jax import losses
from c2g_jax import networks
from c2g_jax.data import DataError


class ConfigError(ValueError):
  """A config value that cannot work."""


def _int_at_least(lo):
  return (
      lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= lo,
      f'an integer >= {lo}',
  )


def _real(lo=-math.inf, hi=math.inf, lo_open=False, hi_open=False):
  def ok(v):
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
      return False
    return (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)

  if hi == math.inf:
    bound = '' if lo == -math.inf else f' {">" if lo_open else ">="} {lo:g}'
    return ok, 'a finite number' + bound
  return ok, f'a finite number in {"(" if lo_open else "["}{lo:g}, {hi:g}{")" if hi_open else "]"}'


_POSITIVE = _real(0.0, lo_open=True)
_CONFIG_RULES = {
    'seed': _int_at_least(0),
    'attack.steps': _int_at_least(0),
    'attack.batch_size': _int_at_least(1),
    'attack.n_critic': _int_at_least(1),
    'attack.iterations_per_call': _int_at_least(1),
    'attack.z_dim': _int_at_least(1),
    'attack.similarity_views': _int_at_least(1),
    'attack.selection_pool': _int_at_least(1),
    'attack.selection_views': _int_at_least(1),
    'attack.selection_realism': _int_at_least(1),
    'attack.learning_rate': _POSITIVE,
    'attack.b1': _real(0.0, 1.0, hi_open=True),
    'attack.b2': _real(0.0, 1.0, hi_open=True),
    'attack.gp_weight': _real(0.0),
    'attack.diversity_weight': _real(0.0),
    'attack.bandwidth': _real(0.0),
    'attack.onehot_share': _real(0.0, 1.0),
    'attack.margin_cap': _real(0.0),
    'attack.view_blur': _real(0.0, attack_lib.MAX_BLUR),
    'attack.gamma_start': _real(),
    'attack.gamma_increment': _real(),
    'attack.gamma_max': _real(),
    'attack.generator_width': _POSITIVE,
    'attack.critic_width': _POSITIVE,
    'log_every_steps': _int_at_least(1),
    'checkpoint_every_steps': _int_at_least(1),
    'checkpoint_every_secs': _POSITIVE,
    'checkpoints_to_keep': _int_at_least(1),
    'sample_every_steps': _int_at_least(1),
    'eval.samples_per_target': _int_at_least(1),
    'eval.grid_columns': _int_at_least(1),
    'evaluator.max_seeds': _int_at_least(1),
}
for _m in ('classifier', 'evaluator'):
  _CONFIG_RULES.update(
      {
          f'{_m}.epochs': _int_at_least(1),
          f'{_m}.batch_size': _int_at_least(1),
          f'{_m}.learning_rate': _POSITIVE,
          f'{_m}.width': _POSITIVE,
          f'{_m}.validation_fraction': _real(0.0, 0.5, hi_open=True),
      }
  )
_CHOICES = {
    'classifier.augment': ('auto', 'none', 'characters', 'faces'),
    'evaluator.augment': ('auto', 'none', 'characters', 'faces'),
    'evaluator.balance_classes': ('auto', 'on', 'off'),
    'attack.similarity': tuple(losses.SIMILARITIES),
    'attack.recipe': tuple(attack_lib.RECIPES),
    'attack.conv_impl': conv.CONV_IMPL_CHOICES,
    'attack.compute_dtype': tuple(attack_lib.COMPUTE_DTYPES),
    **{f'attack.{key}': choices for key, choices in attack_lib.CHOICES.items()},
}


_MISSING = object()


def _get(config, dotted: str):
  node = config
  for part in dotted.split('.'):
    if part not in node:
      return _MISSING
    node = node[part]
  return node


def check_config(config) -> None:
  """Every known numeric field in range; fields a config does not have are skipped."""
  for key, (ok, requirement) in _CONFIG_RULES.items():
    value = _get(config, key)
    if value is not _MISSING and not ok(value):
      raise ConfigError(f'config.{key}={value!r} must be {requirement}: set ' f'--config.{key}')
  for key, choices in _CHOICES.items():
    value = _get(config, key)
    if value is not _MISSING and value not in choices:
      raise ConfigError(f'config.{key}={value!r} is not one of {choices}: set ' f'--config.{key}')
  # Rules between attack keys (a margin cap needs the max_margin similarity, after
  # the recipe): Hyper checks them; here they fail before any training.
  attack = _get(config, 'attack')
  if attack is not _MISSING:
    try:
      attack_lib.Hyper.from_config(attack)
    except ValueError as e:
      raise ConfigError(str(e)) from None


def check_images(x, shape: Sequence[int], name: str, allow_empty: bool = False) -> None:
  """x is uint8 (N, H, W, C) images of `shape` with N > 0 (N >= 0 if allow_empty)."""
  shape = tuple(int(s) for s in shape)
  if not isinstance(x, np.ndarray):
    raise DataError(
        f'{name} must be a numpy array of uint8 (N, {", ".join(map(str, shape))}) '
        f'images, got a {type(x).__name__}'
    )
  if x.dtype != np.uint8:
    if np.issubdtype(x.dtype, np.inexact) and x.size and not np.all(np.isfinite(x)):
      first = int(np.flatnonzero((~np.isfinite(x.reshape(len(x), -1))).any(1))[0])
      raise DataError(
          f'{name} hold NaN or infinite pixels (first in image {first}): '
          'fix or drop those images'
      )
    raise DataError(
        f'{name} have dtype {x.dtype}; pixels must be uint8 in [0, 255] '
        '(convert with images.to_uint8)'
    )
  if x.ndim != 4 or x.shape[1:] != shape:
    raise DataError(
        f'{name} have shape {x.shape}, expected (N, {", ".join(map(str, shape))}): '
        'resize them, or use a classifier and config for this shape'
    )
  if not len(x) and not allow_empty:
    raise DataError(f'{name} hold no images: give at least one')


def check_labels(y, count: int, num_classes: int, name: str) -> None:
  """y is `count` integer labels in [0, num_classes)."""
  if not isinstance(y, np.ndarray) or not np.issubdtype(y.dtype, np.integer):
    dtype = getattr(y, 'dtype', type(y).__name__)
    raise DataError(f'{name} have dtype {dtype}; labels must be integers')
  if y.shape != (count,):
    raise DataError(
        f'{name} have shape {y.shape} but there are {count} images: ' 'give one label per image'
    )
  if y.size and (y.min() < 0 or y.max() >= num_classes):
    raise DataError(
        f'{name} hold {int(y.min())}..{int(y.max())}, outside the '
        f'{num_classes} classes 0..{num_classes - 1}'
    )


def check_problem(problem) -> None:
  """The experiment's arrays, classes and targets fit together."""
  if problem.dataset not in networks.DATASETS:
    raise DataError(f'problem dataset {problem.dataset!r} is not one of {networks.DATASETS}')
  shape = networks.image_shape(problem.dataset)
  names = list(problem.label_names)
  if len(names) < 2 or len(set(map(str, names))) != len(names):
    raise DataError(f'the classes {names[:5]} must be at least 2 distinct names')
  check_images(problem.aux_x, shape, 'the auxiliary images (D_aux)')
  check_images(problem.private_x, shape, 'the private images (D_tr)', allow_empty=True)
  check_images(problem.test_x, shape, 'the test images', allow_empty=True)
  check_labels(problem.private_y, len(problem.private_x), len(names), 'the D_tr labels')
  check_labels(problem.test_y, len(problem.test_x), len(names), 'the test labels')
  check_targets(problem.target_ids, names)


def check_targets(target_ids, label_names) -> None:
  """Every target is a class of f, listed once."""
  n = len(label_names)
  if not len(target_ids):
    raise DataError('no target classes: list at least one')
  for t in target_ids:
    if isinstance(t, bool) or not isinstance(t, numbers.Integral) or not 0 <= t < n:
      raise DataError(
          f'target {t!r} is not a class of f, which has {n} classes '
          f'(0..{n - 1}: {", ".join(map(str, label_names[:8]))}'
          f'{", ..." if n > 8 else ""})'
      )
  if len(set(int(t) for t in target_ids)) != len(target_ids):
    raise DataError(f'targets {list(target_ids)} repeat a class: list each once')


def check_training_data(problem, jobs) -> None:
  """f and the evaluators need D_tr when they are to be trained, not given.

  jobs: train.ClassifierJob of f and each evaluator.
  """
  for job in jobs:
    if not job.spec and len(problem.private_x) < 2:
      given = (
          'config.classifier.checkpoint'
          if job.role == 'f'
          else 'a checkpoint folder or module:function in config.evaluators'
      )
      raise DataError(
          f'{job.role} is to be trained but there are {len(problem.private_x)} '
          f'private images (D_tr): give {given} instead'
      )


def check_probs(probs, count: int, num_classes: int, role: str = 'f') -> None:
  """f's predictions on D_aux (the label prior's points) are usable."""
  probs = np.asarray(probs)
  if probs.shape != (count, num_classes):
    raise DataError(
        f"{role}'s predictions on D_aux have shape {probs.shape}, expected "
        f'({count}, {num_classes})'
    )
  if not np.all(np.isfinite(probs)):
    raise DataError(
        f'{role} returns NaN or infinite probabilities on '
        f'{int(np.sum(~np.isfinite(probs).all(1)))} of the D_aux images: check '
        f"{role}'s weights and value_range"
    )
