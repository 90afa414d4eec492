"""Offline tests of the data layer: nothing here needs internet or TensorFlow."""

import io
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from c2g_jax.data import DataError
from c2g_jax.data import emnist_sample
from c2g_jax.data.emnist import LABEL_NAMES, load_emnist, noise_images, upright_from_raw
from c2g_jax.data.settings import SETTINGS, get_setting, make_splits, pool_masks

DIGITS = [str(i) for i in range(10)]
UPPER = [chr(c) for c in range(ord('A'), ord('Z') + 1)]
LOWER = [chr(c) for c in range(ord('a'), ord('z') + 1)]
ALL = DIGITS + UPPER + LOWER
# The embedded sample: 300 images of every class plus 900 more of every digit,
# one sixth of each class held out as 'test'.
TRAIN_PER_CLASS = np.array([1000] * 10 + [250] * 52)
TEST_PER_CLASS = np.array([200] * 10 + [50] * 52)


@pytest.fixture(scope='module')
def embedded_dir(tmp_path_factory):
  """A data_dir where a fresh interpreter prepared the embedded sample.

  A separate process, so no module imported by pytest or other tests can
  mask (or fake) TensorFlow being pulled in.
  """
  data_dir = tmp_path_factory.mktemp('tfds')
  script = textwrap.dedent(f"""
        import json, sys
        from c2g_jax.data.emnist import load_emnist
        data = load_emnist('embedded', data_dir={str(data_dir)!r})
        print(json.dumps({{'tensorflow': 'tensorflow' in sys.modules,
                           'sizes': {{k: len(v[1]) for k, v in data.items()}}}}))
    """)
  out = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, check=True)
  return data_dir, json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope='module')
def embedded(embedded_dir):
  return load_emnist('embedded', data_dir=embedded_dir[0])


@pytest.fixture(scope='module')
def npz():
  return emnist_sample.load_npz()


def test_label_names():
  assert list(LABEL_NAMES) == ALL


def test_embedded_prepares_to_array_record_without_tensorflow(embedded_dir):
  data_dir, report = embedded_dir
  assert report == {'tensorflow': False, 'sizes': {'train': 23000, 'test': 4600}}
  files = sorted(p.name for p in (data_dir / 'emnist_sample' / '2.0.0').iterdir())
  assert any(name.startswith('emnist_sample-train.array_record') for name in files)
  assert any(name.startswith('emnist_sample-test.array_record') for name in files)


def test_embedded_split_is_fixed_and_matches_npz(embedded, npz):
  # The rule, written out independently: per class, the first five sixths of
  # the rows of one seed-0 permutation are train, the rest test.
  assert np.all(np.bincount(npz['y'], minlength=62) == TRAIN_PER_CLASS + TEST_PER_CLASS)
  perm = np.random.default_rng(0).permutation(len(npz['y']))
  expected_train = set()
  for c in range(62):
    expected_train |= set(perm[npz['y'][perm] == c][: TRAIN_PER_CLASS[c]].tolist())

  rows = emnist_sample.split_indices(npz['y'])
  assert set(rows['train'].tolist()) == expected_train
  assert set(rows['test'].tolist()) == set(range(len(npz['y']))) - expected_train

  for split, per_class in (('train', TRAIN_PER_CLASS), ('test', TEST_PER_CLASS)):
    images, labels = embedded[split]
    assert images.dtype == np.uint8 and images.shape == (per_class.sum(), 28, 28, 1)
    assert labels.dtype == np.int32
    assert np.all(np.bincount(labels, minlength=62) == per_class)
    np.testing.assert_array_equal(labels, npz['y'][rows[split]])
    np.testing.assert_array_equal(images[..., 0], npz['x'][rows[split]])


def test_embedded_is_cached_read_only(embedded_dir, embedded):
  again = load_emnist('embedded', data_dir=embedded_dir[0])
  assert again['train'][0] is embedded['train'][0]
  assert not again['train'][0].flags.writeable


def test_tfds_unprepared_raises_with_prepare_command(tmp_path):
  with pytest.raises(DataError) as err:
    load_emnist('tfds', data_dir=tmp_path)
  message = str(err.value)
  assert '\n' not in message
  assert (
      "tfds.builder('emnist/byclass', file_format='array_record'" in message
      and '.download_and_prepare()' in message
      and 'TensorFlow' in message
  )


def test_unknown_source_raises():
  with pytest.raises(DataError, match=r"'mnist'.*'embedded'.*'tfds'"):
    load_emnist('mnist')


def _png(image):
  from PIL import Image

  buf = io.BytesIO()
  Image.fromarray(image[..., 0]).save(buf, format='PNG')
  return buf.getvalue()


def test_tfds_source_reads_prepared_array_record_and_transposes(tmp_path):
  """A tiny stand-in for emnist/byclass, prepared the way TFDS would."""
  from tensorflow_datasets.image_classification.mnist import EMNIST

  rng = np.random.default_rng(0)
  raw = {
      'train': rng.integers(0, 256, (5, 28, 28, 1), dtype=np.uint8),
      'test': rng.integers(0, 256, (3, 28, 28, 1), dtype=np.uint8),
  }

  class FakeEmnist(EMNIST, skip_registration=True):
    name = 'emnist'

    def _split_generators(self, dl_manager):
      return {split: self._generate_examples(images) for split, images in raw.items()}

    def _generate_examples(self, images):
      for i, image in enumerate(images):
        yield i, {'image': _png(image), 'label': i}  # label = row, to match up

  FakeEmnist(config='byclass', data_dir=tmp_path, file_format='array_record').download_and_prepare()
  data = load_emnist('tfds', data_dir=tmp_path)
  for split, images in raw.items():
    got_images, got_labels = data[split]
    assert sorted(got_labels.tolist()) == list(range(len(images)))
    np.testing.assert_array_equal(got_images, images[got_labels].transpose(0, 2, 1, 3))


def test_upright_from_raw_transposes_spatial_axes():
  raw = np.arange(2 * 3).reshape(1, 2, 3, 1).astype(np.uint8)
  upright = upright_from_raw(raw)
  assert upright.shape == (1, 3, 2, 1)
  np.testing.assert_array_equal(upright[0, :, :, 0], [[0, 3], [1, 4], [2, 5]])


def test_noise_images():
  a = noise_images(4, seed=1)
  assert a.shape == (4, 28, 28, 1) and a.dtype == np.uint8
  np.testing.assert_array_equal(a, noise_images(4, seed=1))
  assert not np.array_equal(a, noise_images(4, seed=2))
  assert noise_images(2, seed=0, shape=(5, 5, 3)).shape == (2, 5, 5, 3)


def test_settings_match_tables_1_and_2():
  expected = {
      'lowercase_exact_same': (ALL, ALL, LOWER),
      'lowercase_partly_same': (ALL, UPPER, LOWER),
      'lowercase_mutually_exclusive': (DIGITS + LOWER, UPPER, LOWER),
      'numeric_exact_same': (ALL, DIGITS, DIGITS),
      'numeric_partly_same': (ALL, UPPER + LOWER, DIGITS),
      'numeric_mutually_exclusive': (DIGITS, UPPER + LOWER, DIGITS),
      'noise': (ALL, None, ['0', '1', '2']),
  }
  assert set(SETTINGS) == set(expected)
  for name, (classifier, aux, targets) in expected.items():
    s = get_setting(name)
    assert s.name == name
    assert list(s.classifier_labels) == classifier
    assert (s.aux_labels is None) if aux is None else (list(s.aux_labels) == aux)
    assert list(s.targets) == targets
  s = get_setting('numeric_mutually_exclusive')
  assert len(s.classifier_labels) == 10 and len(s.aux_labels) == 52
  assert len(get_setting('lowercase_mutually_exclusive').classifier_labels) == 36


def test_get_setting_unknown():
  with pytest.raises(ValueError, match='numeric_exact_same'):
    get_setting('nope')


def test_pool_masks_halve_each_class():
  labels = np.array([0, 1, 0, 1, 0, 2])
  publisher = pool_masks(labels, seed=3)
  assert [int(publisher[labels == c].sum()) for c in range(3)] == [2, 1, 1]
  np.testing.assert_array_equal(publisher, pool_masks(labels, seed=3))


@pytest.mark.parametrize('name', [n for n in SETTINGS if n != 'noise'])
def test_make_splits(name, embedded, npz):
  setting = get_setting(name)
  splits = make_splits(setting, embedded, seed=0)
  train_x, train_y = embedded['train']
  test_x, test_y = embedded['test']
  names = np.array(splits.label_names)

  # Same images, labels remapped into f's classes.
  assert splits.label_names == setting.classifier_labels
  np.testing.assert_array_equal(splits.private_x, train_x[splits.private_index])
  np.testing.assert_array_equal(
      names[splits.private_y], np.array(LABEL_NAMES)[train_y[splits.private_index]]
  )
  assert splits.private_y.min() == 0
  assert splits.private_y.max() == len(setting.classifier_labels) - 1
  f_classes = [LABEL_NAMES.index(n) for n in setting.classifier_labels]
  assert np.all(np.bincount(splits.private_y) == TRAIN_PER_CLASS[f_classes] // 2)

  assert np.all(np.bincount(splits.test_y) == TEST_PER_CLASS[f_classes])
  assert len(splits.test_x) == len(splits.test_y) == TEST_PER_CLASS[f_classes].sum()
  test_rows = np.flatnonzero(np.isin(test_y, [LABEL_NAMES.index(n) for n in names]))
  np.testing.assert_array_equal(splits.test_x, test_x[test_rows])
  np.testing.assert_array_equal(names[splits.test_y], np.array(LABEL_NAMES)[test_y[test_rows]])

  np.testing.assert_array_equal(splits.aux_x, train_x[splits.aux_index])
  np.testing.assert_array_equal(splits.aux_source_labels, train_y[splits.aux_index])
  assert {LABEL_NAMES[c] for c in splits.aux_source_labels} == set(setting.aux_labels)
  assert np.all(
      np.bincount(splits.aux_source_labels)[splits.aux_source_labels]
      == TRAIN_PER_CLASS[splits.aux_source_labels] // 2
  )

  assert [splits.label_names[i] for i in splits.target_ids] == list(setting.targets)

  # Disjoint by provenance: map rows back to the official EMNIST test index.
  source = npz['src_index'][emnist_sample.split_indices(npz['y'])['train']]
  assert len(np.unique(npz['src_index'])) == len(npz['src_index'])
  assert not set(source[splits.private_index]) & set(source[splits.aux_index])


def test_publisher_pool_is_shared_by_all_settings(embedded):
  # The adversary never holds an image the publisher could have trained on,
  # whichever settings the two runs use.
  publisher = set()
  adversary = set()
  for name in SETTINGS:
    splits = make_splits(name, embedded, seed=0)
    publisher |= set(splits.private_index.tolist())
    adversary |= set(splits.aux_index.tolist()) - {-1}
  assert len(publisher) == len(adversary) == TRAIN_PER_CLASS.sum() // 2
  assert not publisher & adversary


def test_noise_setting(embedded):
  splits = make_splits('noise', embedded, seed=0)
  half = TRAIN_PER_CLASS.sum() // 2
  assert splits.aux_x.shape == (half, 28, 28, 1) and splits.aux_x.dtype == np.uint8
  assert np.all(splits.aux_source_labels == -1) and np.all(splits.aux_index == -1)
  assert splits.private_x.shape == (half, 28, 28, 1)
  assert splits.target_ids == (0, 1, 2) and splits.label_names == tuple(ALL)
  small = make_splits('noise', embedded, noise_count=7, seed=1)
  assert small.aux_x.shape == (7, 28, 28, 1)
  np.testing.assert_array_equal(small.aux_x, noise_images(7, 1))
