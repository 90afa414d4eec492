"""config.data.source='nist': NIST's gzip.zip (idx files) prepared without TensorFlow.

Small idx files are built here from real images; the download path never runs.
"""

import gzip
import json
import os
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

from c2g_jax.data import DataError
from c2g_jax.data import emnist_nist
from c2g_jax.data.emnist import load_emnist
from shared_helpers import emnist_10_per_class

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def idx(array, magic):
  dims = b''.join(int(d).to_bytes(4, 'big') for d in array.shape)
  return magic.to_bytes(4, 'big') + dims + np.ascontiguousarray(array, np.uint8).tobytes()


def splits():
  """{split: (upright images, labels)}: 7 of each class train, 3 test, rows shuffled."""
  x, y = emnist_10_per_class()
  perm = np.random.default_rng(1).permutation(len(y))
  x, y = x[perm], y[perm]
  rank = np.array([np.sum(y[:i] == y[i]) for i in range(len(y))])
  return {'train': (x[rank < 7], y[rank < 7]), 'test': (x[rank >= 7], y[rank >= 7])}


def gz_files(data):
  """{file name: gzip bytes} as NIST ships them: images stored transposed."""
  out = {}
  for split, (x, y) in data.items():
    images, labels = emnist_nist.file_names(split)
    out[images] = gzip.compress(idx(np.swapaxes(x, 1, 2), emnist_nist.IMAGES_MAGIC))
    out[labels] = gzip.compress(idx(y, emnist_nist.LABELS_MAGIC))
  return out


def write_manual(data_dir, files, as_zip):
  manual = data_dir / 'downloads' / 'manual'
  manual.mkdir(parents=True)
  if as_zip:
    with zipfile.ZipFile(manual / 'gzip.zip', 'w') as z:
      for name, blob in files.items():
        z.writestr(f'gzip/{name}', blob)
      z.writestr('gzip/emnist-digits-test-labels-idx1-ubyte.gz', b'another set, ignored')
  else:
    for name, blob in files.items():
      (manual / name).write_bytes(blob)
  return manual


@pytest.mark.parametrize('as_zip', [True, False], ids=['gzip.zip', 'four_gz'])
def test_prepares_from_manual_folder_upright_and_loads(tmp_path, as_zip):
  data = splits()
  write_manual(tmp_path, gz_files(data), as_zip)
  got = load_emnist('nist', data_dir=tmp_path)
  for split, (x, y) in data.items():
    images, labels = got[split]
    assert images.shape == (len(y), 28, 28, 1) and images.dtype == np.uint8
    np.testing.assert_array_equal(labels, y)  # in the files' order
    np.testing.assert_array_equal(images[..., 0], x)  # upright again
  assert (tmp_path / emnist_nist.NAME / '1.0.0').is_dir()


def test_prepares_without_tensorflow(tmp_path):
  write_manual(tmp_path, gz_files(splits()), as_zip=True)
  script = textwrap.dedent(f"""
      import json, sys
      from c2g_jax.data.emnist import load_emnist
      data = load_emnist('nist', data_dir={str(tmp_path)!r})
      print(json.dumps({{'tensorflow': 'tensorflow' in sys.modules,
                         'sizes': {{k: len(v[1]) for k, v in data.items()}}}}))
  """)
  out = subprocess.run(
      [sys.executable, '-c', script], capture_output=True, text=True, cwd=REPO, timeout=300
  )
  assert out.returncode == 0, out.stderr[-2000:]
  assert json.loads(out.stdout.strip().splitlines()[-1]) == {
      'tensorflow': False,
      'sizes': {'train': 62 * 7, 'test': 62 * 3},
  }


def test_parse_idx_rejects_bad_magic_truncation_and_extra_bytes():
  x = np.zeros((2, 28, 28), np.uint8)
  good = idx(x, emnist_nist.IMAGES_MAGIC)
  assert emnist_nist.parse_idx(good, 'f', emnist_nist.IMAGES_MAGIC).shape == (2, 28, 28)
  with pytest.raises(DataError, match=r'^f: magic number 2049, expected 2051'):
    emnist_nist.parse_idx(idx(x, emnist_nist.LABELS_MAGIC), 'f', emnist_nist.IMAGES_MAGIC)
  with pytest.raises(DataError, match=r'^f: truncated: the header promises \(2, 28, 28\)'):
    emnist_nist.parse_idx(good[:-5], 'f', emnist_nist.IMAGES_MAGIC)
  with pytest.raises(DataError, match=r'^f: truncated: 6 bytes'):
    emnist_nist.parse_idx(good[:6], 'f', emnist_nist.IMAGES_MAGIC)
  with pytest.raises(DataError, match=r'^f: longer than its header says'):
    emnist_nist.parse_idx(good + b'\0', 'f', emnist_nist.IMAGES_MAGIC)


def _prepare_error(tmp_path, files, as_zip=True):
  write_manual(tmp_path, files, as_zip)
  with pytest.raises(DataError) as err:
    load_emnist('nist', data_dir=tmp_path)
  message = str(err.value)
  assert '\n' not in message
  return message


def test_bad_magic_in_zip_names_the_member(tmp_path):
  files = gz_files(splits())
  name = emnist_nist.file_names('test')[1]
  files[name] = gzip.compress(idx(np.zeros(186, np.uint8), 1234))
  message = _prepare_error(tmp_path, files)
  assert f'gzip.zip:gzip/{name}: magic number 1234, expected 2049' in message


def test_truncated_gz_names_the_file(tmp_path):
  files = gz_files(splits())
  name = emnist_nist.file_names('train')[0]
  files[name] = files[name][: len(files[name]) // 2]
  message = _prepare_error(tmp_path, files, as_zip=False)
  assert str(tmp_path / 'downloads' / 'manual' / name) in message
  assert 'not a complete gzip file' in message


def test_count_mismatch_names_both_files(tmp_path):
  data = splits()
  y = data['test'][1]
  files = gz_files(data)
  name = emnist_nist.file_names('test')[1]
  files[name] = gzip.compress(idx(y[:-1], emnist_nist.LABELS_MAGIC))
  message = _prepare_error(tmp_path, files, as_zip=False)
  assert f'holds {len(y)} images but' in message and f'{len(y) - 1} labels' in message
  assert name in message


def test_zip_without_byclass_members(tmp_path):
  manual = tmp_path / 'downloads' / 'manual'
  manual.mkdir(parents=True)
  with zipfile.ZipFile(manual / 'gzip.zip', 'w') as z:
    z.writestr('gzip/emnist-digits-train-images-idx3-ubyte.gz', b'x')
  with pytest.raises(DataError, match=r'gzip\.zip: lacks emnist-byclass-train-images'):
    load_emnist('nist', data_dir=tmp_path)
