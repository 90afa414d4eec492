"""The independent evaluators that judge an attack's samples.

`config.evaluators` lists them, comma-separated; each entry is
  - an architecture name (networks.EVALUATOR_ARCHITECTURES: 'resnet', 'vgg',
    'classifier'): trained on D_tr only, with config.evaluator's settings
    (augmentation, a validation split for model selection, epochs), and saved to
    <workdir>/evaluators/<name>/; or
  - a released classifier: an Orbax checkpoint folder or 'package.module:function',
    as config.classifier.checkpoint accepts (see byo.py).
Two evaluators of different architectures give a second opinion: a weak
evaluator understates the leak, so every figure comes with its test accuracy.
"""

import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from c2g_jax import byo
from c2g_jax import checks
from c2g_jax import networks

EVALUATORS_DIR = 'evaluators'


def entries(spec: str) -> List[str]:
  """The entries of config.evaluators, checked for form (one-line ConfigError)."""
  items = [s.strip() for s in str(spec or '').split(',') if s.strip()]
  if not items:
    raise checks.ConfigError(
        'config.evaluators is empty: list at least one evaluator, e.g. '
        f"--config.evaluators=resnet,vgg (names: {', '.join(networks.EVALUATOR_ARCHITECTURES)}; "
        "or a checkpoint folder or 'package.module:function')"
    )
  names = [name_of(e) for e in items]
  if len(set(names)) != len(names):
    raise checks.ConfigError(
        f'config.evaluators={spec!r} names an evaluator twice: list ' 'each once'
    )
  for e in items:
    if not is_trained_here(e) and not byo.is_function_spec(e) and not os.path.isdir(e):
      raise checks.ConfigError(
          f'config.evaluators: {e!r} is not an evaluator architecture '
          f"({', '.join(networks.EVALUATOR_ARCHITECTURES)}), a checkpoint folder or "
          "'package.module:function': fix the name or the path"
      )
  return items


def is_trained_here(entry: str) -> bool:
  return entry in networks.EVALUATOR_ARCHITECTURES


def name_of(entry: str) -> str:
  """How the reports call an evaluator: its architecture, folder name or function."""
  if is_trained_here(entry) or byo.is_function_spec(entry):
    return entry
  return os.path.basename(os.path.normpath(entry)) or entry


def role(name: str) -> str:
  return f"f'[{name}]"


def directory(workdir: str, entry: str) -> str:
  """Where an evaluator trained here is saved (its own checkpoint otherwise)."""
  if is_trained_here(entry):
    return os.path.join(workdir, EVALUATORS_DIR, entry)
  return entry


def plan(spec: str, workdir: str) -> List[Tuple[str, str, int]]:
  """[(entry, name, index)] in config order; index seeds the training of entry i."""
  return [(e, name_of(e), i) for i, e in enumerate(entries(spec))]


BALANCE_MODES = ('auto', 'on', 'off')


def balance_classes(mode: str, private_y, target_ids: Sequence[int]) -> bool:
  """Whether an evaluator trained here draws D_tr class by class (config.evaluator.balance_classes).

  A judge learns D_tr's class prior: on EMNIST's own mix it reads a rare class
  as its common look-alike (real s as 5, o as 0) and understates a rare
  target's leak (medium lowercase ME: 0.838, class by class 0.958), while for
  targets commoner than the rest (digits among 62 classes) the prior works for
  them, and a class-by-class judge reads the same samples lower (CPU numeric
  exact same: 1 as l). 'auto' balances exactly when the targets' mean count is
  below the mean count of D_tr's classes, so the judge's prior never works
  against the targets; 'on' and 'off' force it. On equal counts it changes
  nothing either way.
  """
  if mode not in BALANCE_MODES:
    raise checks.ConfigError(
        f'config.evaluator.balance_classes={mode!r} is not one of {BALANCE_MODES}: '
        'set it to auto, on or off'
    )
  if mode != 'auto':
    return mode == 'on'
  counts = np.bincount(np.asarray(private_y, np.int64))
  present = counts[counts > 0]
  targets = counts[np.asarray(list(target_ids), np.int64)]
  return bool(len(targets) and targets.mean() < present.mean())


def judging_accuracy(meta: dict) -> Optional[float]:
  """The accuracy that ranks a classifier as a judge: balanced where known.

  Each target's share is read class by class, so the mean of the per-class
  test accuracies (classifier.balanced_accuracy) says how well a judge reads
  the targets; the plain accuracy is the fallback for metadata stored without it.
  """
  balanced = meta.get('balanced_test_accuracy')
  return balanced if balanced is not None else meta.get('test_accuracy')


def headline(
    evaluated: Sequence[Tuple[str, dict]], attack_shares: Optional[Dict[str, float]] = None
) -> str:
  """The evaluator whose figures head the verdict: the most accurate on the test set
  (judging_accuracy).

  A weaker evaluator understates the leak, so the strongest judge speaks. Ties
  go to the one that reads the most attack samples as their target
  (attack_shares: {name: mean share}), then to the first listed: the test set
  cannot tell equally accurate judges apart (on 40 ORL test faces a ResNet and
  a VGG both at 0.925 read the same samples at 0.20 and 0.39), and an audit must
  not take the lower figure by the order of a list. Without test accuracies (no
  test images), the first. evaluated: [(name, metadata)] in config order.
  """
  shares = attack_shares or {}
  best, best_key = evaluated[0][0], None
  for name, meta in evaluated:
    acc = judging_accuracy(meta)
    if acc is None or acc != acc:  # None or NaN
      continue
    key = (acc, shares.get(name, 0.0))
    if best_key is None or key > best_key:
      best, best_key = name, key
  return best


def released(spec: str, workdir: str) -> List[Tuple[str, str]]:
  """[(name, checkpoint folder or function)] of a finished run's evaluators."""
  return [(name, directory(workdir, entry)) for entry, name, _ in plan(spec, workdir)]


def load_released(spec: str, workdir: str) -> list:
  """[(name, (module, variables, metadata))] of a finished run's evaluators."""
  return [(name, byo.load_classifier(path)) for name, path in released(spec, workdir)]
