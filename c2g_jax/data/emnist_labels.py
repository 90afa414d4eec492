"""EMNIST ByClass facts shared by the loaders and the packaged sample's builder.

Kept apart from emnist.py (the loaders) so the builder in emnist_sample.py and
the loaders can both use them without importing each other.
"""

import string

import numpy as np

LABEL_NAMES: tuple[str, ...] = tuple(
    string.digits + string.ascii_uppercase + string.ascii_lowercase
)
IMAGE_SHAPE = (28, 28, 1)


def rank_within_class(labels: np.ndarray) -> np.ndarray:
  """For each element, how many earlier elements share its label.

  Splitting a permuted sequence by this rank gives per-class splits that are
  fixed by the permutation alone.
  """
  labels = np.asarray(labels)
  order = np.argsort(labels, kind='stable')
  sorted_labels = labels[order]
  first = np.searchsorted(sorted_labels, sorted_labels, side='left')
  ranks = np.empty(len(labels), np.int64)
  ranks[order] = np.arange(len(labels)) - first
  return ranks
