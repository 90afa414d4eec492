"""The label settings of the paper's Tables 1 and 2, and the data each one uses.

A setting fixes which classes the released classifier f was trained on (D_tr),
which images the adversary holds (D_aux), and which classes the attack tries
to reconstruct. The publisher's and the adversary's images never overlap:
make_splits gives each its own half of every class.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from c2g_jax.data.emnist import LABEL_NAMES, noise_images, rank_within_class

DIGITS = LABEL_NAMES[:10]
UPPERCASE = LABEL_NAMES[10:36]
LOWERCASE = LABEL_NAMES[36:]


@dataclasses.dataclass(frozen=True)
class Setting:
  """classifier_labels: f's classes, in f's output order.
  aux_labels: classes of the adversary's images; None means uniform noise.
  targets: the classes to reconstruct, a subset of classifier_labels.
  """

  name: str
  classifier_labels: tuple[str, ...]
  aux_labels: tuple[str, ...] | None
  targets: tuple[str, ...]

  def __post_init__(self):
    for field in ('classifier_labels', 'aux_labels', 'targets'):
      labels = getattr(self, field)
      if labels is not None and not set(labels) <= set(LABEL_NAMES):
        raise ValueError(f'{self.name}: {field} has labels outside EMNIST ByClass')
    if not set(self.targets) <= set(self.classifier_labels):
      raise ValueError(f'{self.name}: targets must be classes of the classifier')


SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in (
        Setting('lowercase_exact_same', LABEL_NAMES, LABEL_NAMES, LOWERCASE),
        Setting('lowercase_partly_same', LABEL_NAMES, UPPERCASE, LOWERCASE),
        Setting('lowercase_mutually_exclusive', DIGITS + LOWERCASE, UPPERCASE, LOWERCASE),
        Setting('numeric_exact_same', LABEL_NAMES, DIGITS, DIGITS),
        Setting('numeric_partly_same', LABEL_NAMES, UPPERCASE + LOWERCASE, DIGITS),
        Setting('numeric_mutually_exclusive', DIGITS, UPPERCASE + LOWERCASE, DIGITS),
        # Appendix A: the adversary holds no data at all, only noise.
        Setting('noise', LABEL_NAMES, None, ('0', '1', '2')),
    )
}


def get_setting(name: str) -> Setting:
  try:
    return SETTINGS[name]
  except KeyError:
    raise ValueError(f'unknown setting {name!r}; choose one of {tuple(SETTINGS)}') from None


@dataclasses.dataclass
class Splits:
  """Arrays for one setting. Images are uint8 (N, 28, 28, 1).

  *_y are f's class indices, i.e. indices into label_names. The *_index
  fields are rows of the source 'train' split (-1 for noise), so callers can
  audit that the publisher's and adversary's images are disjoint.
  """

  private_x: np.ndarray  # D_tr: f is trained on these
  private_y: np.ndarray
  test_x: np.ndarray  # held-out images of f's classes
  test_y: np.ndarray
  aux_x: np.ndarray  # D_aux: the adversary's unlabelled images
  aux_source_labels: np.ndarray  # 62-class labels, -1 for noise; reporting only
  label_names: tuple[str, ...]
  target_ids: tuple[int, ...]
  private_index: np.ndarray
  aux_index: np.ndarray


def pool_masks(labels: np.ndarray, seed: int) -> np.ndarray:
  """True for the publisher's rows, False for the adversary's.

  Within each class, a fixed permutation (seed) gives the first half
  (rounded up) to the publisher and the rest to the adversary.
  """
  perm = np.random.default_rng(seed).permutation(len(labels))
  counts = np.bincount(labels, minlength=len(LABEL_NAMES))
  publisher = np.empty(len(labels), bool)
  publisher[perm] = rank_within_class(labels[perm]) < (counts[labels[perm]] + 1) // 2
  return publisher


def _label_ids(labels: tuple[str, ...]) -> np.ndarray:
  return np.array([LABEL_NAMES.index(name) for name in labels], np.int64)


def make_splits(
    setting: Setting | str, data: dict, noise_count: int | None = None, seed: int = 0
) -> Splits:
  """Publisher, adversary and test data of a setting.

  data: load_emnist's dict. seed fixes both the publisher/adversary halving
  of data['train'] and the noise images.
  """
  if isinstance(setting, str):
    setting = get_setting(setting)
  train_x, train_y = data['train']
  test_x, test_y = data['test']
  train_y = np.asarray(train_y)
  test_y = np.asarray(test_y)

  # 62-class label -> f's class index, -1 where f lacks the class.
  to_f = np.full(len(LABEL_NAMES), -1, np.int32)
  to_f[_label_ids(setting.classifier_labels)] = np.arange(len(setting.classifier_labels))

  publisher = pool_masks(train_y, seed)
  private_index = np.flatnonzero(publisher & (to_f[train_y] >= 0))
  test_index = np.flatnonzero(to_f[test_y] >= 0)

  if setting.aux_labels is None:
    count = int((~publisher).sum()) if noise_count is None else noise_count
    aux_x = noise_images(count, seed)
    aux_index = np.full(count, -1, np.int64)
    aux_source_labels = np.full(count, -1, np.int32)
  else:
    wanted = np.isin(train_y, _label_ids(setting.aux_labels))
    aux_index = np.flatnonzero(~publisher & wanted)
    aux_x = train_x[aux_index]
    aux_source_labels = train_y[aux_index].astype(np.int32)

  return Splits(
      private_x=train_x[private_index],
      private_y=to_f[train_y[private_index]],
      test_x=test_x[test_index],
      test_y=to_f[test_y[test_index]],
      aux_x=aux_x,
      aux_source_labels=aux_source_labels,
      label_names=tuple(setting.classifier_labels),
      target_ids=tuple(setting.classifier_labels.index(t) for t in setting.targets),
      private_index=private_index,
      aux_index=aux_index,
  )
