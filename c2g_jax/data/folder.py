"""Any folder of images as data: D_aux for a user's own audit, or labelled images.

Folders are searched recursively; every file with an extension Pillow knows is
opened, converted to the classifier's channels (grey 'L' for 1, 'RGB' for 3)
and resized to its height and width. Images stay uint8 in [0, 255]; the
attack maps them to the classifier's value range when it reads them.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from c2g_jax.data import DataError
from c2g_jax.data.facescrub import image_extensions

_MODES = {1: 'L', 3: 'RGB'}


def image_files(root: str) -> list[str]:
  """Every file under root (recursively) whose extension Pillow reads, sorted."""
  exts = image_extensions()
  out = []
  for dirpath, dirnames, filenames in os.walk(root):
    dirnames.sort()
    out += [
        os.path.join(dirpath, f)
        for f in sorted(filenames)
        if not f.startswith('.') and os.path.splitext(f)[1].lower() in exts
    ]
  return out


def to_array(img: Image.Image, shape) -> np.ndarray:
  """A Pillow image as uint8 (H, W, C) of the given shape."""
  h, w, c = shape
  if c not in _MODES:
    raise DataError(f'images with {c} channels are not supported: use 1 (grey) or 3 (RGB)')
  if img.mode in ('RGBA', 'LA', 'PA') or (img.mode == 'P' and 'transparency' in img.info):
    # Transparent pixels become white rather than whatever colour they hide.
    rgba = img.convert('RGBA')
    img = Image.new('RGBA', rgba.size, (255, 255, 255, 255))
    img.alpha_composite(rgba)
  img = img.convert(_MODES[c]).resize((w, h), Image.BICUBIC)
  return np.asarray(img, np.uint8).reshape(h, w, c)


def load_folder(root: str, shape, what: str = 'data.aux_dir', log=print) -> np.ndarray:
  """All readable images under root as uint8 (N, H, W, C); unreadable files are
  skipped and counted. An empty or wholly unreadable folder is an error."""
  if not root:
    raise DataError(f'{what} is empty: set it to a folder of images')
  root = os.path.abspath(os.path.expanduser(root))
  if not os.path.isdir(root):
    raise DataError(f'{what}={root} is not a folder: set it to a folder of images')
  files = image_files(root)
  if not files:
    raise DataError(
        f'{what}={root} holds no image files (searched recursively for '
        f'extensions Pillow reads): put images there or choose another folder'
    )
  images, bad = [], 0
  for path in files:
    try:
      with Image.open(path) as img:
        images.append(to_array(img, shape))
    except (OSError, ValueError, Image.DecompressionBombError):
      bad += 1
  if not images:
    raise DataError(
        f'{what}={root}: none of its {len(files)} image files could be read '
        'by Pillow: check that they are valid images'
    )
  log(
      f'{what}: {len(images)} images from {root}'
      + (f' ({bad} unreadable files skipped)' if bad else '')
      + f', converted to {tuple(shape)}'
  )
  return np.stack(images)


def load_labelled_folder(root: str, shape, label_names, what: str = 'data.private_dir', log=print):
  """Images in one sub-folder per class, named like the class (`_` reads as a space).

  Returns (images uint8, labels int32 indices into label_names). A sub-folder
  that is not one of label_names is an error.
  """
  if not root or not os.path.isdir(root):
    raise DataError(
        f'{what}={root!r} is not a folder: set it to a folder with one '
        'sub-folder of images per class of f'
    )
  index = {str(n): i for i, n in enumerate(label_names)}
  index.update({str(n).replace(' ', '_'): i for i, n in enumerate(label_names)})
  subdirs = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
  unknown = [d for d in subdirs if d not in index]
  if unknown or not subdirs:
    shown = ', '.join(list(map(str, label_names))[:10])
    raise DataError(
        f'{what}={root}: sub-folders {unknown or "(none)"} are not classes of f; '
        f"name each sub-folder after one of f's classes ({shown}, ...)"
    )
  xs, ys = [], []
  for d in subdirs:
    x = load_folder(os.path.join(root, d), shape, f'{what}/{d}', log=lambda _: None)
    xs.append(x)
    ys.append(np.full(len(x), index[d], np.int32))
  x, y = np.concatenate(xs), np.concatenate(ys)
  log(f'{what}: {len(x)} labelled images of {len(subdirs)} classes from {root}')
  return x, y
