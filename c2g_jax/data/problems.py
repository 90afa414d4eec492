"""A Problem: the images and labels of one experiment, whatever the dataset.

The trainer only sees a Problem: D_tr (the publisher's private images and labels),
a test set of the same classes, D_aux (the attacker's images, labels never used),
f's label names and the target classes.

config.dataset chooses where they come from:
  emnist     the paper's EMNIST label settings (configs/emnist.py);
  facescrub  the user's FaceScrub copy, the paper's mutually exclusive split
             (configs/facescrub.py);
  orl        the AT&T/ORL faces (40 people) as a small real face experiment:
             f on 20 people, D_aux the other 20 (configs/orl.py);
  custom     the user's own classifier and a folder of images (configs/custom.py).
"""

import dataclasses
import os
from typing import Optional, Tuple

import numpy as np
from PIL import Image

from c2g_jax.data import DataError
from c2g_jax.data import emnist
from c2g_jax.data import settings

ORL_PATH = os.path.join(
    os.path.dirname(os.path.abspath(__file__)),
    '..',
    '..',
    '..',
    'shared',
    'data',
    'orl_faces',
    'orl_faces_112x92.npz',
)


@dataclasses.dataclass
class Problem:
  """The images and labels of one experiment, as uint8 arrays.

  dataset names the network family (networks.DATASETS) the images fit.
  """

  dataset: str
  private_x: np.ndarray
  private_y: np.ndarray
  test_x: np.ndarray
  test_y: np.ndarray
  aux_x: np.ndarray
  label_names: list
  target_ids: list
  # Real images of every class there is, f's or not, for the false-recognition
  # table: (images, labels, class names). None: the test images of f's classes.
  reference: Optional[Tuple[np.ndarray, np.ndarray, list]] = None


def load_problem(config) -> Problem:
  loaders = {'emnist': _emnist, 'facescrub': _facescrub, 'orl': _orl, 'custom': _custom}
  if config.dataset not in loaders:
    raise DataError(
        f'config.dataset={config.dataset!r} is not known: use one of ' f'{tuple(loaders)}'
    )
  return loaders[config.dataset](config)


def _emnist(config) -> Problem:
  data = emnist.load_emnist(config.data.source, config.data.data_dir or None)
  s = settings.make_splits(
      settings.get_setting(config.setting),
      data,
      noise_count=config.data.noise_count or None,
      seed=config.seed,
  )
  # The held-out split of all 62 classes, so letters show up in a digit
  # classifier's false recognitions too.
  test_x, test_y = data['test']
  return Problem(
      'emnist',
      s.private_x,
      s.private_y,
      s.test_x,
      s.test_y,
      s.aux_x,
      list(s.label_names),
      [int(t) for t in s.target_ids],
      reference=(test_x, np.asarray(test_y), list(emnist.LABEL_NAMES)),
  )


def _targets(config, label_names):
  from c2g_jax import byo  # imported here: byo imports jax

  return byo.resolve_targets(config.get('targets', ''), label_names)


def _from_split(dataset, images, split, config) -> Problem:
  return Problem(
      dataset,
      images[split.private_idx],
      split.private_y,
      images[split.test_idx],
      split.test_y,
      images[split.aux_idx],
      list(split.label_names),
      _targets(config, split.label_names),
  )


def _facescrub(config) -> Problem:
  from c2g_jax.data import facescrub

  d = config.data
  data = facescrub.load_facescrub(d.manual_dir, d.data_dir or None, d.layout)
  if d.targets_file:  # the user's own split: exactly the listed people
    listed, auxiliary = facescrub.read_target_file(d.targets_file)
  else:
    listed, auxiliary = facescrub.packaged_targets()
  names = facescrub.choose_targets(
      data.persons, listed, d.num_targets, auxiliary=auxiliary, fill=not d.targets_file
  )
  split = facescrub.split_images(data.persons, names, d.test_fraction, config.seed)
  print(
      f'FaceScrub split: f on {len(names)} people ({len(split.private_idx)} training, '
      f'{len(split.test_idx)} test images); D_aux {len(split.aux_idx)} images of '
      f'{len(set(data.persons)) - len(names)} other people',
      flush=True,
  )
  return _from_split('facescrub', data.images, split, config)


def load_orl(path: str = ''):
  """ORL faces resized to 64x64 and repeated to RGB: (images, person names 's1'..'s40')."""
  path = path or ORL_PATH
  if not os.path.isfile(path):
    raise DataError(
        f'ORL faces not found at {os.path.abspath(path)}: set data.orl_path to '
        'orl_faces_112x92.npz (in ../shared/data/orl_faces beside the repository)'
    )
  with np.load(path) as npz:
    x, y = npz['x'], npz['y']
  faces = np.stack([np.asarray(Image.fromarray(img).resize((64, 64), Image.BICUBIC)) for img in x])
  persons = np.array([f's{int(p) + 1}' for p in y], dtype=object)
  return np.repeat(faces[..., None], 3, axis=-1), persons


def _orl(config) -> Problem:
  from c2g_jax.data import facescrub

  d = config.data
  images, persons = load_orl(d.orl_path)
  people = sorted(set(persons), key=lambda p: int(p[1:]))
  if not 2 <= d.num_targets < len(people):
    raise DataError(
        f'data.num_targets={d.num_targets}: ORL has {len(people)} people; '
        f'choose 2..{len(people) - 1}'
    )
  names = people[: d.num_targets]
  split = facescrub.split_images(persons, names, d.test_fraction, config.seed)
  return _from_split('facescrub', images, split, config)


def _custom(config) -> Problem:
  """The user's classifier f (and optionally f'), D_aux from a folder; all checked here."""
  from c2g_jax import byo
  from c2g_jax.data import facescrub
  from c2g_jax.data import folder

  spec = config.classifier.checkpoint
  if not spec:
    raise DataError(
        'config.classifier.checkpoint is empty: give the classifier to audit, a '
        "checkpoint folder or 'package.module:function'"
    )
  module, variables, meta = byo.load_classifier(spec)
  dataset = byo.family_for_shape(meta['input_shape'])
  shape, names = tuple(meta['input_shape']), list(meta['label_names'])
  aux = folder.load_folder(config.data.aux_dir, shape, 'data.aux_dir')
  byo.probe(module, variables, meta, aux, 'f')
  targets = byo.resolve_targets(config.get('targets', ''), names)
  from c2g_jax import evaluators

  given = [e for e in evaluators.entries(config.evaluators) if not evaluators.is_trained_here(e)]
  for entry in given:
    e_module, e_vars, e_meta = byo.load_classifier(entry)
    role = evaluators.role(evaluators.name_of(entry))
    byo.check_fits(e_meta, names, shape, role)
    byo.probe(e_module, e_vars, e_meta, aux, role)
  if len(given) < len(evaluators.entries(config.evaluators)) and not config.data.private_dir:
    raise DataError(
        'nothing to train the independent evaluators on: set data.private_dir '
        '(labelled images, a sub-folder per class), or give only released '
        'evaluators in config.evaluators (checkpoint folders or module:function)'
    )
  empty_x, empty_y = np.zeros((0, *shape), np.uint8), np.zeros((0,), np.int32)
  private_x, private_y, test_x, test_y = empty_x, empty_y, empty_x, empty_y
  if config.data.private_dir:
    x, y = folder.load_labelled_folder(config.data.private_dir, shape, names)
    split = facescrub.split_images(
        np.array(names, object)[y], names, config.data.test_fraction, config.seed
    )
    private_x, private_y = x[split.private_idx], split.private_y
    test_x, test_y = x[split.test_idx], split.test_y
  return Problem(dataset, private_x, private_y, test_x, test_y, aux, names, targets)
