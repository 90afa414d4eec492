"""EMNIST ByClass images and labels as numpy arrays, read without TensorFlow.

Sources:
  'embedded'  the sample shipped with the package (see data/README.md),
              prepared on first use into TFDS array_record files by the
              `emnist_sample` builder;
  'tfds'      the full `emnist/byclass`, which must already be prepared as
              array_record (preparing it needs TensorFlow and internet);
  'nist'      the full ByClass from NIST's own gzip.zip, prepared by this
              project's `emnist_byclass_nist` builder without TensorFlow
              (emnist_nist.py);
  a path      an .npz of upright x (N, 28, 28) uint8 and y (N,) labels,
              split by emnist_file.split_rows (emnist_file.py).

Images come back uint8 (N, 28, 28, 1), white on black and upright; labels int32
in ByClass order (LABEL_NAMES).
"""

from __future__ import annotations

import functools
import os

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core import constants as tfds_constants

from c2g_jax.data import DataError
from c2g_jax.data.emnist_labels import IMAGE_SHAPE, LABEL_NAMES, rank_within_class  # noqa: F401
from c2g_jax.data.emnist_sample import EmnistSample

SOURCES = ('embedded', 'tfds', 'nist')

_SPLITS = ('train', 'test')
# Records per __getitems__ call: amortises the array_record read per call.
_CHUNK = 4096


def load_emnist(source: str = 'embedded', data_dir: str | os.PathLike | None = None) -> dict:
  """{'train': (images, labels), 'test': (images, labels)} as numpy arrays.

  images: uint8 (N, 28, 28, 1), upright; labels: int32 (N,), index into
  LABEL_NAMES. `data_dir` defaults to TFDS's ($TFDS_DATA_DIR, else
  ~/tensorflow_datasets). Arrays are cached per process and read-only.
  """
  if source not in SOURCES:
    from c2g_jax.data import emnist_file

    if not emnist_file.looks_like_path(source):
      raise DataError(
          f'unknown EMNIST source {source!r}; choose one of {SOURCES} '
          'or give the path of an .npz file (c2g_jax/data/README.md)'
      )
    # Not cached: the file may change between calls; reading it takes a second.
    return emnist_file.load_file(os.path.abspath(os.path.expanduser(source)))
  explicit = data_dir is not None
  # Read the env at call time: tfds freezes its default at import.
  data_dir = os.path.abspath(
      os.path.expanduser(data_dir) if explicit else tfds_constants.get_default_data_dir()
  )
  cached = _load_cached(source, data_dir, explicit)
  return dict(cached)


@functools.lru_cache(maxsize=2)
def _load_cached(source: str, data_dir: str, explicit: bool) -> dict:
  if source == 'embedded':
    data = _load_embedded(data_dir)
  elif source == 'nist':
    from c2g_jax.data import emnist_nist

    data = emnist_nist.load_nist(data_dir)
  else:
    data = _load_tfds(data_dir, explicit)
  for images, labels in data.values():
    images.setflags(write=False)
    labels.setflags(write=False)
  return data


def _load_embedded(data_dir: str) -> dict:
  builder = EmnistSample(data_dir=data_dir, file_format='array_record')
  if not builder.is_prepared():
    builder.download_and_prepare()
  sources = builder.as_data_source()
  return {split: _read_all(sources[split]) for split in _SPLITS}


def _prepare_command(data_dir: str, explicit: bool) -> str:
  where = f', data_dir={data_dir!r}' if explicit else ''
  return (
      'python -c "import tensorflow_datasets as tfds; '
      f"tfds.builder('emnist/byclass', file_format='array_record'{where})"
      '.download_and_prepare()"'
  )


def _load_tfds(data_dir: str, explicit: bool) -> dict:
  builder = tfds.builder('emnist/byclass', data_dir=data_dir)
  problem = None
  if not builder.is_prepared():
    problem = f'emnist/byclass is not prepared under {data_dir};'
  else:
    try:
      sources = builder.as_data_source(file_format='array_record')
      missing = [
          str(path)
          for split in _SPLITS
          for path in builder.info.splits[split].filepaths
          if not path.exists()
      ]
      if missing:
        problem = f'emnist/byclass array_record files are missing ({missing[0]}, ...)'
    except (NotImplementedError, ValueError, KeyError, OSError) as e:
      problem = f'emnist/byclass is not readable as array_record ({type(e).__name__})'
    if problem:
      # tfds would reuse the unusable folder instead of preparing again.
      problem += f'; remove {builder.data_path}, then'
  if problem:
    raise DataError(
        f'{problem} prepare it once, online, with TensorFlow installed (only this '
        f'step needs it): {_prepare_command(data_dir, explicit)}'
    )
  return {split: _read_all(sources[split], transpose=True) for split in _SPLITS}


def upright_from_raw(images: np.ndarray) -> np.ndarray:
  """Swaps the two spatial axes of (..., H, W, C) images.

  Raw EMNIST (and so TFDS's emnist) stores every image transposed.
  """
  return np.ascontiguousarray(np.swapaxes(images, -3, -2))


def _read_all(source, transpose: bool = False) -> tuple[np.ndarray, np.ndarray]:
  """All records of a TFDS data source, fetched in chunks of indices.

  transpose: make raw EMNIST images upright chunk by chunk, which avoids a
  second full-size copy.
  """
  n = len(source)
  images = np.empty((n, *IMAGE_SHAPE), np.uint8)
  labels = np.empty((n,), np.int32)
  for start in range(0, n, _CHUNK):
    stop = min(start + _CHUNK, n)
    records = source.__getitems__(list(range(start, stop)))
    chunk = np.stack([r['image'] for r in records]).reshape(-1, *IMAGE_SHAPE)
    images[start:stop] = upright_from_raw(chunk) if transpose else chunk
    labels[start:stop] = [r['label'] for r in records]
  return images, labels


def noise_images(n: int, seed: int, shape: tuple[int, ...] = IMAGE_SHAPE) -> np.ndarray:
  """n uint8 images of i.i.d. uniform pixels: the auxiliary data of Appendix A."""
  return np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)
