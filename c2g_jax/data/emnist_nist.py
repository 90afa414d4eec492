"""The full EMNIST ByClass from NIST's own distribution, prepared without TensorFlow.

TFDS's stock `emnist/byclass` needs TensorFlow to prepare. This builder
(`emnist_byclass_nist`, config.data.source='nist') reads NIST's `gzip.zip`
(https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip, 536 MB), whose
`gzip/emnist-byclass-{train,test}-{images-idx3,labels-idx1}-ubyte.gz` hold the
697,932 train and 116,323 test images, parses the idx files with numpy, makes
the images upright (NIST stores them transposed) and writes array_record with a
plain uint8 Tensor feature, so neither preparing nor reading needs TensorFlow.

Where the files come from, in order:
  1. the manual folder, <data_dir>/downloads/manual/ (TFDS's default), holding
     either gzip.zip or the four .gz files (at its top or under gzip/);
  2. otherwise TFDS's download manager fetches gzip.zip (online users).
"""

from __future__ import annotations

import gzip
import os
import zipfile
import zlib

import numpy as np
import tensorflow_datasets as tfds

from c2g_jax.data import DataError
from c2g_jax.data.emnist import IMAGE_SHAPE, LABEL_NAMES, upright_from_raw

NAME = 'emnist_byclass_nist'
URL = 'https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip'
ZIP_NAME = 'gzip.zip'
SPLITS = ('train', 'test')
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049  # idx: 0x08 (uint8), then 3 or 1 dims


def file_names(split: str) -> tuple[str, str]:
  """(images, labels) file names of one split inside gzip.zip's gzip/ folder."""
  return (
      f'emnist-byclass-{split}-images-idx3-ubyte.gz',
      f'emnist-byclass-{split}-labels-idx1-ubyte.gz',
  )


def parse_idx(data: bytes, name: str, magic: int) -> np.ndarray:
  """The uint8 array of an idx file: big-endian magic (2051 images, 2049 labels),
  then one big-endian uint32 per dimension, then the bytes. `name` is for errors."""
  ndim = 3 if magic == IMAGES_MAGIC else 1
  header = 4 + 4 * ndim
  what = 'images (idx3)' if ndim == 3 else 'labels (idx1)'
  if len(data) < header:
    raise DataError(
        f'{name}: truncated: {len(data)} bytes, shorter than the {header}-byte idx '
        f'header of {what}; download gzip.zip again'
    )
  found = int.from_bytes(data[:4], 'big')
  if found != magic:
    raise DataError(
        f'{name}: magic number {found}, expected {magic} for EMNIST {what}; '
        'not an EMNIST idx file, or the wrong one of the four'
    )
  dims = tuple(int(d) for d in np.frombuffer(data, '>u4', ndim, 4))
  need = int(np.prod(dims))
  if len(data) - header != need:
    state = 'truncated' if len(data) - header < need else 'longer than its header says'
    raise DataError(
        f'{name}: {state}: the header promises {dims} = {need} bytes, the file '
        f'holds {len(data) - header}; download gzip.zip again'
    )
  if ndim == 3 and dims[1:] != IMAGE_SHAPE[:2]:
    raise DataError(f'{name}: images of {dims[1]}x{dims[2]}, expected 28x28')
  return np.frombuffer(data, np.uint8, need, header).reshape(dims)


def _gunzip(data: bytes, name: str) -> bytes:
  try:
    return gzip.decompress(data)
  except (OSError, EOFError, zlib.error) as e:
    raise DataError(
        f'{name}: not a complete gzip file ({type(e).__name__}: {e}); ' 'download gzip.zip again'
    ) from None


def _read_path(path: str) -> bytes:
  with open(path, 'rb') as f:
    return f.read()


def find_files(folder: str) -> dict[str, tuple[str, str]] | str | None:
  """What a manual folder holds: the path of gzip.zip, or {split: (images, labels)}
  paths of the four .gz files (at the top or under gzip/), or None."""
  for where in (folder, os.path.join(folder, 'gzip')):
    paths = {s: tuple(os.path.join(where, n) for n in file_names(s)) for s in SPLITS}
    if all(os.path.isfile(p) for pair in paths.values() for p in pair):
      return paths
  zip_path = os.path.join(folder, ZIP_NAME)
  return zip_path if os.path.isfile(zip_path) else None


def read_split(source, split: str) -> tuple[np.ndarray, np.ndarray]:
  """(upright images (N, 28, 28, 1) uint8, labels (N,) int64) of one split, from
  gzip.zip's path or a find_files dict."""
  images_name, labels_name = file_names(split)
  if isinstance(source, dict):
    images_path, labels_path = source[split]
    raw = {
        images_name: (_read_path(images_path), images_path),
        labels_name: (_read_path(labels_path), labels_path),
    }
  else:
    raw = _read_zip(str(source), (images_name, labels_name))
  images = parse_idx(_gunzip(*raw[images_name]), raw[images_name][1], IMAGES_MAGIC)
  labels = parse_idx(_gunzip(*raw[labels_name]), raw[labels_name][1], LABELS_MAGIC)
  if len(images) != len(labels):
    raise DataError(
        f'{raw[images_name][1]} holds {len(images)} images but '
        f'{raw[labels_name][1]} {len(labels)} labels; download gzip.zip again'
    )
  if len(labels) and labels.max() >= len(LABEL_NAMES):
    raise DataError(
        f'{raw[labels_name][1]}: label {int(labels.max())} outside ByClass 0..61; '
        'is this the byclass file?'
    )
  return upright_from_raw(images[..., None]), labels.astype(np.int64)


def _read_zip(path: str, names) -> dict[str, tuple[bytes, str]]:
  """{name: (bytes, 'gzip.zip:member')} for members whose base name is in names."""
  try:
    with zipfile.ZipFile(path) as z:
      members = {os.path.basename(m): m for m in z.namelist()}
      missing = [n for n in names if n not in members]
      if missing:
        raise DataError(f"{path}: lacks {missing[0]}; expected NIST's EMNIST gzip.zip " f'({URL})')
      return {n: (z.read(members[n]), f'{path}:{members[n]}') for n in names}
  except (zipfile.BadZipFile, OSError, EOFError) as e:
    raise DataError(
        f'{path}: not a readable zip ({type(e).__name__}); download gzip.zip ' f'again from {URL}'
    ) from None


class EmnistByclassNist(tfds.core.GeneratorBasedBuilder):
  """EMNIST ByClass (62 classes, upright) from NIST's gzip.zip, without TensorFlow."""

  name = NAME
  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
  Optional: without it the builder downloads {URL}.
  Put NIST's EMNIST gzip.zip, or the four files
    emnist-byclass-train-images-idx3-ubyte.gz  emnist-byclass-train-labels-idx1-ubyte.gz
    emnist-byclass-test-images-idx3-ubyte.gz   emnist-byclass-test-labels-idx1-ubyte.gz
  (found in the zip's gzip/ folder), in the manual folder, by default
  <data_dir>/downloads/manual/.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=(
            'EMNIST ByClass (digits, uppercase, lowercase; 62 classes) read from '
            "NIST's own gzip.zip; images upright, white on black."
        ),
        features=tfds.features.FeaturesDict(
            {
                'image': tfds.features.Tensor(shape=IMAGE_SHAPE, dtype=np.uint8),
                'label': tfds.features.ClassLabel(names=LABEL_NAMES),
            }
        ),
        supervised_keys=('image', 'label'),
        homepage='https://www.nist.gov/itl/products-and-services/emnist-dataset',
        citation=(
            'Cohen, Afshar, Tapson, van Schaik (2017). EMNIST: an extension of MNIST '
            'to handwritten letters. arXiv:1702.05373.'
        ),
        disable_shuffling=True,  # records in the files' order
    )

  def _split_generators(self, dl_manager):
    source = None
    try:
      source = find_files(os.fspath(dl_manager.manual_dir))
    except AssertionError:  # TFDS: no manual folder, or an empty one
      pass
    if source is None:
      try:
        source = dl_manager.download(URL)
      except Exception as e:  # offline, or NIST unreachable: say what to do instead
        raise DataError(
            f'could not download {URL} ({type(e).__name__}); download it '
            'elsewhere and put it in the manual folder '
            '(<data_dir>/downloads/manual/gzip.zip)'
        ) from None
    return {split: self._generate_examples(source, split) for split in SPLITS}

  def _generate_examples(self, source, split):
    images, labels = read_split(source, split)
    for key, (image, label) in enumerate(zip(images, labels)):
      yield key, {'image': image, 'label': int(label)}


def load_nist(data_dir: str) -> dict:
  """{'train': (images, labels), 'test': ...} of the prepared builder, preparing it
  first when needed (from the manual folder, else by download)."""
  from c2g_jax.data.emnist import _read_all  # one reader for every TFDS source

  builder = EmnistByclassNist(data_dir=data_dir, file_format='array_record')
  if not builder.is_prepared():
    builder.download_and_prepare()
  sources = builder.as_data_source()
  return {split: _read_all(sources[split]) for split in SPLITS}
