"""EMNIST ByClass arrays from a user's .npz file (config.data.source=PATH).

The format is the one of the packaged sample and of ../shared/data/emnist/*.npz:
  x  (N, 28, 28) or (N, 28, 28, 1) uint8, white strokes on black, UPRIGHT;
  y  (N,) integer labels 0..61 in ByClass order (0-9, A-Z, a-z);
  other keys (mapping, src_index) are allowed and ignored.
The file is split once, by `split_rows`: per class a fixed seeded permutation,
round(n / 6) images to 'test', the rest to 'train' (EMNIST's own train/test
ratio is about 6:1).
"""

from __future__ import annotations

import os
import zipfile

import numpy as np

from c2g_jax.data import DataError

NUM_CLASSES = 62
TEST_FRACTION = 1 / 6
SPLIT_SEED = 0
_FORMAT = (
    'x (N, 28, 28) uint8 upright images and y (N,) labels 0..61; ' 'see c2g_jax/data/README.md'
)


def looks_like_path(source: str) -> bool:
  """A source that is not a built-in name is read as a file when it names one."""
  return isinstance(source, str) and (
      source.endswith('.npz') or os.sep in source or os.path.exists(source)
  )


def split_rows(
    labels: np.ndarray, seed: int = SPLIT_SEED, test_fraction: float = TEST_FRACTION
) -> dict[str, np.ndarray]:
  """Rows of each split: per class, a fixed permutation (seed) of that class's
  rows; its first round(n * test_fraction) go to 'test', the rest to 'train'.
  Both lists are sorted by row, so classes stay interleaved as in the file."""
  labels = np.asarray(labels)
  rng = np.random.default_rng(seed)
  test = []
  for c in np.unique(labels):
    rows = np.flatnonzero(labels == c)
    rows = rows[rng.permutation(len(rows))]
    test.append(rows[: int(round(len(rows) * test_fraction))])
  in_test = np.zeros(len(labels), bool)
  if test:
    in_test[np.concatenate(test)] = True
  return {'train': np.flatnonzero(~in_test), 'test': np.flatnonzero(in_test)}


def read_npz(path: str) -> tuple[np.ndarray, np.ndarray]:
  """(x (N, 28, 28, 1) uint8, y (N,) int32) of a file, checked; DataError otherwise."""
  where = f'data.source={path}'
  if not os.path.isfile(path):
    what = 'a folder, not a file' if os.path.isdir(path) else 'no such file'
    raise DataError(
        f'{where}: {what}; give an .npz with {_FORMAT}, ' "or 'embedded', 'tfds' or 'nist'"
    )
  try:
    with np.load(path, allow_pickle=False) as npz:
      keys = set(npz.files)
      missing = [k for k in ('x', 'y') if k not in keys]
      if missing:
        raise DataError(
            f'{where}: the file lacks {" and ".join(missing)} (it holds '
            f'{sorted(keys)}); it needs {_FORMAT}'
        )
      x, y = npz['x'], npz['y']
  except DataError:
    raise
  except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
    raise DataError(
        f'{where}: not a readable .npz ({type(e).__name__}); it needs ' f'{_FORMAT}'
    ) from None
  if x.ndim == 4 and x.shape[-1] == 1:
    x = x[..., 0]
  if x.ndim != 3 or x.shape[1:] != (28, 28):
    raise DataError(f'{where}: x has shape {x.shape}, expected (N, 28, 28) or (N, 28, 28, 1)')
  if x.dtype != np.uint8:
    raise DataError(f'{where}: x has dtype {x.dtype}, expected uint8 pixels 0..255')
  if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
    raise DataError(
        f'{where}: y has shape {y.shape} and dtype {y.dtype}, expected (N,) ' 'integer labels 0..61'
    )
  if len(y) != len(x):
    raise DataError(f'{where}: x holds {len(x)} images but y {len(y)} labels; they must match')
  if len(y) == 0:
    raise DataError(f'{where}: the file holds no images')
  if y.min() < 0 or y.max() >= NUM_CLASSES:
    raise DataError(
        f'{where}: labels span {int(y.min())}..{int(y.max())}, outside 0..61 '
        '(ByClass order: 0-9, A-Z, a-z)'
    )
  return np.ascontiguousarray(x[..., None]), y.astype(np.int32)


def load_file(path: str) -> dict:
  """{'train': (images, labels), 'test': (images, labels)} of a checked file."""
  x, y = read_npz(path)
  return {split: (x[rows], y[rows]) for split, rows in split_rows(y).items()}
