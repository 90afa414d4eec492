"""TFDS builder for the EMNIST ByClass sample shipped with the package.

Prepares without TensorFlow (and without internet) when asked for
file_format='array_record': the image is a plain uint8 Tensor feature, because
tfds encodes `Image` features with TensorFlow.
"""

from __future__ import annotations

import importlib.resources

import numpy as np
import tensorflow_datasets as tfds

from c2g_jax.data.emnist_labels import IMAGE_SHAPE, LABEL_NAMES, rank_within_class

# The packaged files: 300 images of every class, and 900 more of every digit
# (disjoint from the first by their index in the official test split), so the
# default digit experiments train f and the evaluators on enough images.
NPZ_NAMES = ('emnist_byclass_test_300pc.npz', 'emnist_byclass_test_extra_digits.npz')
PER_CLASS = {**{name: 300 for name in LABEL_NAMES}, **{d: 1200 for d in '0123456789'}}
TEST_FRACTION = 6  # one image in six of each class is 'test' (50 of 300, 200 of 1200)
SPLIT_SEED = 0

_CITATION = r"""
@article{cohen2017emnist,
  title   = {{EMNIST}: an extension of {MNIST} to handwritten letters},
  author  = {Cohen, Gregory and Afshar, Saeed and Tapson, Jonathan and van Schaik, Andr{\'e}},
  journal = {arXiv preprint arXiv:1702.05373},
  year    = {2017},
}
"""


def load_npz() -> dict[str, np.ndarray]:
  """The packaged arrays, concatenated: x (N, 28, 28) upright, y, mapping, src_index."""
  parts = []
  for name in NPZ_NAMES:
    resource = importlib.resources.files('c2g_jax.data') / name
    with importlib.resources.as_file(resource) as path, np.load(path) as npz:
      part = {key: npz[key] for key in npz.files}
    # Guard against a different file sitting under a packaged name.
    if (
        tuple(chr(c) for c in part['mapping']) != LABEL_NAMES
        or part['x'].shape[1:] != IMAGE_SHAPE[:2]
    ):
      raise ValueError(f'{name}: unexpected label mapping or image shape')
    parts.append(part)
  return {
      'x': np.concatenate([p['x'] for p in parts]),
      'y': np.concatenate([p['y'] for p in parts]),
      'mapping': parts[0]['mapping'],
      'src_index': np.concatenate([p['src_index'] for p in parts]),
  }


def split_indices(labels: np.ndarray) -> dict[str, np.ndarray]:
  """Rows of the arrays in each split, in the order the split stores them.

  One fixed permutation of all rows; within each class its first five sixths
  go to 'train', the last sixth to 'test'. Classes stay interleaved, so
  neither split is sorted by label.
  """
  perm = np.random.default_rng(SPLIT_SEED).permutation(len(labels))
  counts = np.bincount(labels, minlength=len(LABEL_NAMES))
  test_count = counts // TEST_FRACTION
  in_train = rank_within_class(labels[perm]) < counts[labels[perm]] - test_count[labels[perm]]
  return {'train': perm[in_train], 'test': perm[~in_train]}


class EmnistSample(tfds.core.GeneratorBasedBuilder):
  """300 images per EMNIST ByClass class (1,200 per digit), 5/6 train, 1/6 test."""

  VERSION = tfds.core.Version('2.0.0')
  RELEASE_NOTES = {
      '1.0.0': 'Initial release.',
      '2.0.0': '900 more images of every digit; split 5/6 train, 1/6 test.',
  }

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=(
            'Class-balanced sample (seed 0, 300 per class) of the EMNIST '
            'ByClass test split, plus 900 more images of every digit, as '
            'repacked in 0r4nd/emnist-packed (commit 0f121efc); images '
            'upright, white on black. Fixed split: per class, 5/6 train and '
            '1/6 test.'
        ),
        features=tfds.features.FeaturesDict(
            {
                'image': tfds.features.Tensor(shape=IMAGE_SHAPE, dtype=np.uint8),
                'label': tfds.features.ClassLabel(names=LABEL_NAMES),
            }
        ),
        supervised_keys=('image', 'label'),
        homepage='https://www.nist.gov/itl/products-and-services/emnist-dataset',
        citation=_CITATION,
        # Store records in key order, i.e. split_indices order.
        disable_shuffling=True,
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # everything is in the package
    data = load_npz()
    x, y = data['x'], data['y']
    counts = np.bincount(y, minlength=len(LABEL_NAMES))
    if any(counts[i] != PER_CLASS[name] for i, name in enumerate(LABEL_NAMES)):
      raise ValueError(f'{NPZ_NAMES}: expected 300 images per class and 1,200 per digit')
    return {split: self._generate_examples(x, y, rows) for split, rows in split_indices(y).items()}

  def _generate_examples(self, x, y, rows):
    for key, row in enumerate(rows):
      yield key, {'image': x[row, :, :, None], 'label': int(y[row])}
