"""Bring your own: audit a classifier you trained, with images you hold.

A classifier is given (config.classifier.checkpoint, config.evaluator.checkpoint) as

  - a folder: an Orbax checkpoint of a module registered in `networks`, with its
    JSON metadata, as `checkpoint.save_classifier` writes it; or
  - 'package.module:function': an importable function returning
    (apply_fn, params, metadata). apply_fn(params, images) -> (B, d) logits (or
    probabilities with metadata['output'] = 'probs'), jax-traceable; images
    arrive as float32 (B, H, W, C) in metadata['value_range']. metadata needs
    'label_names' (d names, f's output order), 'input_shape' [H, W, C] and
    'value_range' [lo, hi]; 'test_accuracy' is optional.

Either way the trainer receives (module, variables, metadata) where `module` has
flax's `apply(variables, x, train=False) -> logits`, so the rest of the
pipeline (classifier.probs_fn, classifier.predict) does not change.

Every mismatch raises ByoError with one line saying what to change, before any
training starts.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import math
import os
import re
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from c2g_jax import checkpoint
from c2g_jax import networks

PyTree = Any
OUTPUTS = ('logits', 'probs')
_FUNCTION_SPEC = re.compile(r'^[A-Za-z_][\w.]*:[A-Za-z_]\w*$')


class ByoError(ValueError):
  """A user-supplied classifier, folder or target that does not fit the attack."""


@dataclasses.dataclass(frozen=True, eq=False)
class FunctionClassifier:
  """A user's apply_fn dressed as a flax module: apply(variables, x, train) -> logits."""

  apply_fn: Callable[[PyTree, jax.Array], jax.Array]
  output: str = 'logits'

  def apply(self, variables, x, train: bool = False):
    del train  # a released classifier is always used in inference mode
    out = self.apply_fn(variables, x)
    # softmax(log p) == p for probabilities that sum to one.
    return jnp.log(jnp.clip(out, 1e-30)) if self.output == 'probs' else out


def is_function_spec(spec: str) -> bool:
  return bool(_FUNCTION_SPEC.match(spec or '')) and not os.path.exists(spec)


def family_for_shape(input_shape) -> str:
  """The networks dataset whose generator makes images of this shape."""
  for dataset in networks.DATASETS:
    if tuple(networks.image_shape(dataset)) == tuple(input_shape):
      return dataset
  shapes = ', '.join(f'{tuple(networks.image_shape(d))} ({d})' for d in networks.DATASETS)
  raise ByoError(
      f'f takes inputs of shape {tuple(input_shape)} but the generators make '
      f'{shapes}: wrap f so it accepts one of these (e.g. resize inside apply_fn)'
  )


def validate_metadata(meta: Any, source: str) -> dict:
  """Checks and normalises a classifier's metadata; returns a new dict."""
  if not isinstance(meta, dict):
    raise ByoError(
        f'{source}: metadata must be a dict with label_names, input_shape and '
        f'value_range, got {type(meta).__name__}'
    )
  missing = [k for k in ('label_names', 'input_shape', 'value_range') if k not in meta]
  if missing:
    raise ByoError(
        f'{source}: metadata lacks {missing}: add them (label_names in output '
        'order, input_shape [H, W, C], value_range [lo, hi])'
    )
  meta = dict(meta)
  names = meta['label_names']
  if isinstance(names, str) or not isinstance(names, Sequence) or len(names) < 2:
    raise ByoError(
        f'{source}: label_names must be a list of at least 2 class names, ' f'got {names!r}'
    )
  meta['label_names'] = [str(n) for n in names]
  if len(set(meta['label_names'])) != len(names):
    raise ByoError(f'{source}: label_names repeat a name: give each class its own name')
  if int(meta.get('num_classes', len(names))) != len(names):
    raise ByoError(
        f'{source}: num_classes={meta["num_classes"]} but label_names has '
        f'{len(names)} names: make them agree'
    )
  meta['num_classes'] = len(names)
  shape = meta['input_shape']
  if (
      not isinstance(shape, Sequence)
      or len(shape) != 3
      or not all(isinstance(s, (int, np.integer)) and s > 0 for s in shape)
  ):
    raise ByoError(
        f'{source}: input_shape must be [H, W, C] positive integers (channels '
        f'last), got {shape!r}'
    )
  meta['input_shape'] = [int(s) for s in shape]
  vr = meta['value_range']
  try:
    lo, hi = (float(v) for v in vr)
  except (TypeError, ValueError):
    raise ByoError(
        f'{source}: value_range must be [lo, hi], the pixel range f expects '
        f'(e.g. [0, 1] or [-1, 1]), got {vr!r}'
    ) from None
  if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
    raise ByoError(
        f'{source}: value_range {vr!r} needs finite lo < hi: give the pixel range '
        'f expects (e.g. [0, 1] or [-1, 1])'
    )
  meta['value_range'] = [lo, hi]
  output = meta.setdefault('output', 'logits')
  if output not in OUTPUTS:
    raise ByoError(f"{source}: metadata output={output!r}: use 'logits' or 'probs'")
  return meta


@functools.lru_cache(maxsize=8)  # the checks and the trainer both load it
def _load_function(spec: str):
  module_name, func_name = spec.split(':')
  try:
    module = importlib.import_module(module_name)
  except ImportError as e:
    raise ByoError(
        f'classifier {spec!r}: cannot import {module_name} ({e}): put it on '
        'PYTHONPATH or fix the module name'
    ) from None
  func = getattr(module, func_name, None)
  if not callable(func):
    raise ByoError(f'classifier {spec!r}: {module_name} has no function {func_name}')
  result = func()
  if not (isinstance(result, tuple) and len(result) == 3 and callable(result[0])):
    raise ByoError(
        f'classifier {spec!r}: {func_name}() must return ' '(apply_fn, params, metadata)'
    )
  apply_fn, params, meta = result
  meta = validate_metadata(meta, f'classifier {spec!r}')
  return FunctionClassifier(apply_fn, meta['output']), params, meta


def load_classifier(spec: str):
  """(module, variables, metadata) of a released classifier given by folder or function."""
  if is_function_spec(spec):
    module, params, meta = _load_function(spec)
    return module, params, dict(meta)
  if not os.path.isdir(spec):
    raise ByoError(
        f'classifier {spec!r} is neither a checkpoint folder nor '
        "'package.module:function': fix config.classifier.checkpoint"
    )
  try:
    module, variables, meta = checkpoint.load_classifier(spec)
  except checkpoint.CheckpointError as e:
    raise ByoError(str(e).split('\n')[0]) from None
  return module, variables, validate_metadata(meta, f'checkpoint {spec}')


def check_fits(meta: dict, label_names: Sequence[str], input_shape, role: str) -> None:
  """The classifier's classes and input shape are the experiment's."""
  if int(meta['num_classes']) != len(label_names):
    raise ByoError(
        f'{role} has {meta["num_classes"]} classes but the experiment has '
        f'{len(label_names)} ({", ".join(map(str, label_names[:5]))}, ...): '
        f'use a classifier of these classes'
    )
  if tuple(meta['input_shape']) != tuple(input_shape):
    raise ByoError(
        f'{role} takes inputs of shape {tuple(meta["input_shape"])} but the '
        f'images are {tuple(input_shape)}: use a classifier for these images'
    )
  names = meta.get('label_names')
  if names is not None and [str(n) for n in names] != [str(n) for n in label_names]:
    diff = next((i for i, (a, b) in enumerate(zip(names, label_names)) if str(a) != str(b)), 0)
    raise ByoError(
        f"{role}'s class {diff} is {names[diff]!r} but the experiment's is "
        f'{label_names[diff]!r}: give {role} the same classes in the same order'
    )
  vr = meta.get('value_range')
  if vr is None or len(vr) != 2 or not float(vr[0]) < float(vr[1]):
    raise ByoError(f'{role} has value_range {vr!r}: its metadata needs [lo, hi] with lo < hi')


def probe(module, variables, meta: dict, images_u8: np.ndarray, role: str) -> np.ndarray:
  """Runs the classifier on a few images; its output must be (n, d) and finite.

  Catches an apply_fn that expects another layout or range, or has another
  number of outputs than label_names, before any training.
  """
  from c2g_jax import classifier  # imported here: classifier imports optax

  x = np.asarray(images_u8[:4])
  try:
    probs = classifier.predict(module, variables, x, tuple(meta['value_range']))
  except Exception as e:  # a user's apply_fn may fail in any way
    first = str(e).strip().split('\n')[0][:200]
    raise ByoError(
        f'{role} fails on a batch of shape {x.shape} in value range '
        f'{meta["value_range"]} ({type(e).__name__}: {first}): check its '
        'input_shape (channels last) and that apply_fn is jax-traceable'
    ) from None
  if probs.shape != (len(x), meta['num_classes']):
    raise ByoError(
        f'{role} returns shape {probs.shape[1:]} per batch of {len(x)} but its '
        f'label_names has {meta["num_classes"]} names: make them agree'
    )
  if not np.all(np.isfinite(probs)):
    raise ByoError(
        f'{role} returns non-finite values on images in value range '
        f'{meta["value_range"]}: check its value_range'
    )
  return probs


def resolve_targets(spec, label_names: Sequence[str]) -> list[int]:
  """Target classes by name or index: 'a,b', '0,3', a list of either; '' = all classes."""
  if isinstance(spec, str):
    items = [s.strip() for s in spec.split(',') if s.strip()]
  else:
    items = list(spec or ())
  if not items:
    return list(range(len(label_names)))
  names = [str(n) for n in label_names]
  out = []
  for item in items:
    text = str(item)
    if text in names:
      out.append(names.index(text))
    elif re.fullmatch(r'-?\d+', text) and 0 <= int(text) < len(names):
      out.append(int(text))
    else:
      shown = ', '.join(names[:8]) + (', ...' if len(names) > 8 else '')
      raise ByoError(
          f'target {text!r} is not a class of f: give names ({shown}) or '
          f'indices 0..{len(names) - 1} in config.targets'
      )
  if len(set(out)) != len(out):
    raise ByoError(f'config.targets={spec!r} names a class twice: list each target once')
  return out
