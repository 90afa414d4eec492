"""TFDS builder for the EMNIST ByClass sample shipped with the package.

Prepares without TensorFlow (and without internet) when asked for
file_format='array_record': the image is a plain uint8 Tensor feature, because
tfds encodes `Image` features with TensorFlow.
"""

from __future__ import annotations

import importlib.resources

import numpy as np
import tensorflow_datasets as tfds

from c2g_jax.data.emnist import IMAGE_SHAPE, LABEL_NAMES, rank_within_class

NPZ_NAME = 'emnist_byclass_test_300pc.npz'
PER_CLASS = 300
TRAIN_PER_CLASS = 250  # the other 50 of each class are 'test'
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
    """The packaged arrays: x (N, 28, 28) upright, y, mapping, src_index."""
    resource = importlib.resources.files('c2g_jax.data') / NPZ_NAME
    with importlib.resources.as_file(resource) as path, np.load(path) as npz:
        return {key: npz[key] for key in npz.files}


def split_indices(labels: np.ndarray) -> dict[str, np.ndarray]:
    """Rows of the npz in each split, in the order the split stores them.

    One fixed permutation of all rows; within each class its first
    TRAIN_PER_CLASS rows go to 'train', the rest to 'test'. Classes stay
    interleaved, so neither split is sorted by label.
    """
    perm = np.random.default_rng(SPLIT_SEED).permutation(len(labels))
    in_train = rank_within_class(labels[perm]) < TRAIN_PER_CLASS
    return {'train': perm[in_train], 'test': perm[~in_train]}


class EmnistSample(tfds.core.GeneratorBasedBuilder):
    """300 images per EMNIST ByClass class, split 250 train / 50 test."""

    VERSION = tfds.core.Version('1.0.0')
    RELEASE_NOTES = {'1.0.0': 'Initial release.'}

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=(
                'Class-balanced sample (seed 0, 300 per class) of the EMNIST '
                'ByClass test split, as repacked in 0r4nd/emnist-packed '
                '(commit 0f121efc); images upright, white on black. Fixed split: '
                'per class, 250 train and 50 test.'),
            features=tfds.features.FeaturesDict({
                'image': tfds.features.Tensor(shape=IMAGE_SHAPE, dtype=np.uint8),
                'label': tfds.features.ClassLabel(names=LABEL_NAMES),
            }),
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
        # Guard against a different file sitting under the packaged name.
        names = tuple(chr(c) for c in data['mapping'])
        if names != LABEL_NAMES or x.shape[1:] != IMAGE_SHAPE[:2]:
            raise ValueError(f'{NPZ_NAME}: unexpected label mapping or image shape')
        if not np.all(np.bincount(y, minlength=len(LABEL_NAMES)) == PER_CLASS):
            raise ValueError(f'{NPZ_NAME}: expected {PER_CLASS} images per class')
        return {split: self._generate_examples(x, y, rows)
                for split, rows in split_indices(y).items()}

    def _generate_examples(self, x, y, rows):
        for key, row in enumerate(rows):
            yield key, {'image': x[row, :, :, None], 'label': int(y[row])}
