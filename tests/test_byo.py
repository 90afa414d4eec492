"""Bring your own classifier, images and targets: loading, checks, one tiny audit."""

import importlib.util
import os
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest

from c2g_jax import byo
from c2g_jax import checkpoint
from c2g_jax import classifier
from c2g_jax import networks
from c2g_jax.data import DataError
from c2g_jax.data import folder
from c2g_jax.data import problems

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LABELS = ['cat', 'dog', 'fox']

# A user's classifier module: a linear model on 28x28x1 images in [0, 1].
USER_MODULE = textwrap.dedent("""
    import jax.numpy as jnp
    import numpy as np

    W = np.random.default_rng(0).normal(size=(28 * 28, 3)).astype(np.float32) * 0.1
    META = {'label_names': ['cat', 'dog', 'fox'], 'input_shape': [28, 28, 1],
            'value_range': [0.0, 1.0]}

    def apply(params, x):
      return x.reshape(x.shape[0], -1) @ params['w']

    def released():
      return apply, {'w': jnp.asarray(W)}, dict(META)

    def released_probs():
      import jax
      return (lambda p, x: jax.nn.softmax(apply(p, x))), {'w': jnp.asarray(W)}, \\
          dict(META, output='probs')

    def other_order():     # same classes, another order: not usable as f'
      return apply, {'w': jnp.asarray(W)}, dict(META, label_names=['dog', 'cat', 'fox'])

    def four_names():      # says 4 classes, returns 3
      return apply, {'w': jnp.asarray(W)}, dict(META, label_names=['a', 'b', 'c', 'd'])

    def channels_first():  # declares channels-last, computes channels-first
      return (lambda p, x: x.reshape(x.shape[0], 1, 28, 28)[:, :, :, :27].reshape(
          x.shape[0], -1) @ p['w']), {'w': jnp.asarray(W)}, dict(META)

    def odd_shape():
      return apply, {'w': jnp.asarray(W)}, dict(META, input_shape=[32, 32, 3])

    def bad_range():
      return apply, {'w': jnp.asarray(W)}, dict(META, value_range=[1, 0])

    def no_names():
      return apply, {'w': jnp.asarray(W)}, {'input_shape': [28, 28, 1], 'value_range': [0, 1]}

    def not_a_triple():
      return apply
""")


@pytest.fixture(scope='module')
def user_module(tmp_path_factory):
  """Importable as byo_user_model; returns the module for direct calls."""
  d = tmp_path_factory.mktemp('userpkg')
  (d / 'byo_user_model.py').write_text(USER_MODULE)
  import sys

  sys.path.insert(0, str(d))
  import byo_user_model

  yield byo_user_model
  sys.path.remove(str(d))


def write_images(root, n, size=(30, 20), mode='RGB', fmt='png', seed=0):
  rng = np.random.default_rng(seed)
  os.makedirs(root, exist_ok=True)
  for i in range(n):
    shape = (size[1], size[0]) + ((3,) if mode == 'RGB' else ())
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(
        os.path.join(root, f'{i}.{fmt}')
    )


def one_line_error(exc_type, fn, *args, match=None):
  with pytest.raises(exc_type, match=match) as e:
    fn(*args)
  assert '\n' not in str(e.value), str(e.value)
  return str(e.value)


# --- loading a classifier ------------------------------------------------------------


def test_function_spec_gives_a_module_like_classifier(user_module):
  module, params, meta = byo.load_classifier('byo_user_model:released')
  assert meta['label_names'] == LABELS and meta['num_classes'] == 3
  assert meta['input_shape'] == [28, 28, 1] and meta['value_range'] == [0.0, 1.0]
  x = np.random.default_rng(1).integers(0, 256, (5, 28, 28, 1), dtype=np.uint8)
  probs = classifier.predict(module, params, x, (0.0, 1.0))
  expected = jax.nn.softmax((x.reshape(5, -1) / 255.0) @ user_module.W)
  np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-6)
  # A classifier returning probabilities gives the same probabilities.
  module_p, params_p, _ = byo.load_classifier('byo_user_model:released_probs')
  np.testing.assert_allclose(
      classifier.predict(module_p, params_p, x, (0.0, 1.0)), expected, rtol=1e-4, atol=1e-6
  )
  # The attack sees it through probs_fn, rescaling the generator's range.
  f_apply = classifier.probs_fn(module, (0.0, 1.0), (-1.0, 1.0))
  x_gen = jnp.asarray(x / 127.5 - 1.0, jnp.float32)
  np.testing.assert_allclose(f_apply(params, x_gen), expected, rtol=1e-4, atol=1e-6)


def test_orbax_checkpoint_of_a_registered_module(tmp_path):
  module = networks.Classifier(num_classes=3, dataset='emnist', width=0.0625)
  variables = jax.jit(lambda: module.init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1))))()
  meta = {
      'architecture': 'classifier',
      'dataset': 'emnist',
      'width': 0.0625,
      'num_classes': 3,
      'label_names': LABELS,
      'input_shape': [28, 28, 1],
      'value_range': [0.0, 1.0],
  }
  checkpoint.save_classifier(str(tmp_path / 'f'), variables, meta)
  loaded, loaded_vars, loaded_meta = byo.load_classifier(str(tmp_path / 'f'))
  assert (type(loaded), loaded.num_classes, loaded.width) == (networks.Classifier, 3, 0.0625)
  for a, b in zip(jax.tree.leaves(loaded_vars), jax.tree.leaves(variables)):
    np.testing.assert_array_equal(a, b)
  assert loaded_meta['label_names'] == LABELS


@pytest.mark.parametrize(
    'spec, match',
    [
        ('byo_user_model:odd_shape', None),  # checked by family_for_shape below
        ('byo_user_model:bad_range', 'lo < hi'),
        ('byo_user_model:no_names', "lacks \\['label_names'\\]"),
        ('byo_user_model:not_a_triple', 'must return'),
        ('byo_user_model:nope', 'has no function nope'),
        ('no_such_module_xyz:released', 'cannot import no_such_module_xyz'),
        ('/no/such/dir', 'neither a checkpoint folder'),
    ],
)
def test_bad_classifier_specs_are_one_line_errors(user_module, spec, match):
  if match is None:
    _, _, meta = byo.load_classifier(spec)
    one_line_error(
        byo.ByoError, byo.family_for_shape, meta['input_shape'], match='generators make .*resize'
    )
  else:
    one_line_error(byo.ByoError, byo.load_classifier, spec, match=match)


def test_probe_catches_output_and_layout_mismatches(user_module):
  x = np.zeros((3, 28, 28, 1), np.uint8)
  module, params, meta = byo.load_classifier('byo_user_model:four_names')
  one_line_error(
      byo.ByoError,
      byo.probe,
      module,
      params,
      meta,
      x,
      'f',
      match=r'returns shape \(3,\) .* 4 names',
  )
  module, params, meta = byo.load_classifier('byo_user_model:channels_first')
  one_line_error(
      byo.ByoError, byo.probe, module, params, meta, x, 'f', match='fails on a batch of shape'
  )
  module, params, meta = byo.load_classifier('byo_user_model:released')
  assert byo.probe(module, params, meta, x, 'f').shape == (3, 3)


def test_check_fits_classes_shape_and_order(user_module):
  _, _, meta = byo.load_classifier('byo_user_model:released')
  byo.check_fits(meta, LABELS, (28, 28, 1), 'f')
  one_line_error(
      byo.ByoError,
      byo.check_fits,
      meta,
      LABELS + ['owl'],
      (28, 28, 1),
      'f',
      match='has 3 classes but the experiment has 4',
  )
  one_line_error(
      byo.ByoError, byo.check_fits, meta, LABELS, (64, 64, 3), 'f', match='takes inputs of shape'
  )
  _, _, other = byo.load_classifier('byo_user_model:other_order')
  one_line_error(
      byo.ByoError,
      byo.check_fits,
      other,
      LABELS,
      (28, 28, 1),
      "f'",
      match="class 0 is 'dog' but the experiment's is 'cat'",
  )


def test_resolve_targets_by_name_or_index():
  assert byo.resolve_targets('', LABELS) == [0, 1, 2]
  assert byo.resolve_targets('fox, 0', LABELS) == [2, 0]
  assert byo.resolve_targets(['dog', 2], LABELS) == [1, 2]
  # A class named like a number wins over the index.
  assert byo.resolve_targets('1', ['5', '1', '0']) == [1]
  one_line_error(
      byo.ByoError, byo.resolve_targets, 'wolf', LABELS, match="'wolf' is not a class of f.*0..2"
  )
  one_line_error(byo.ByoError, byo.resolve_targets, '3', LABELS, match='not a class')
  one_line_error(byo.ByoError, byo.resolve_targets, 'cat,0', LABELS, match='twice')


# --- folders of images -------------------------------------------------------------------


def test_folder_is_recursive_any_format_converted_to_shape(tmp_path):
  root = tmp_path / 'aux'
  write_images(str(root / 'a'), 2, (30, 20), 'RGB', 'png')
  write_images(str(root / 'a' / 'deeper'), 2, (100, 50), 'L', 'jpg')
  write_images(str(root / 'b'), 1, (8, 8), 'RGB', 'bmp')
  Image.new('RGBA', (10, 10), (0, 0, 0, 0)).save(root / 'transparent.png')
  (root / 'broken.png').write_bytes(b'nope')
  (root / 'notes.txt').write_text('not an image')
  log = []
  rgb = folder.load_folder(str(root), (64, 64, 3), log=log.append)
  assert rgb.shape == (6, 64, 64, 3) and rgb.dtype == np.uint8
  assert '1 unreadable' in log[0]
  # Sorted, a folder's own files before its sub-folders': transparent.png comes first.
  assert np.all(rgb[0] == 255)  # transparent -> white
  grey = folder.load_folder(str(root / 'a' / 'deeper'), (28, 28, 1), log=log.append)
  assert grey.shape == (2, 28, 28, 1)
  # An RGB image converted to one channel is Pillow's luminance.
  one = folder.load_folder(str(root / 'b'), (8, 8, 1), log=log.append)
  expected = np.asarray(Image.open(root / 'b' / '0.bmp').convert('L'))
  np.testing.assert_array_equal(one[0, ..., 0], expected)


def test_empty_missing_or_unreadable_folder_is_one_line_error(tmp_path):
  (tmp_path / 'empty' / 'sub').mkdir(parents=True)
  one_line_error(
      DataError,
      folder.load_folder,
      str(tmp_path / 'empty'),
      (64, 64, 3),
      match='holds no image files',
  )
  one_line_error(
      DataError, folder.load_folder, str(tmp_path / 'missing'), (64, 64, 3), match='is not a folder'
  )
  one_line_error(DataError, folder.load_folder, '', (64, 64, 3), match='is empty')
  (tmp_path / 'bad').mkdir()
  (tmp_path / 'bad' / 'x.jpg').write_bytes(b'junk')
  one_line_error(
      DataError,
      folder.load_folder,
      str(tmp_path / 'bad'),
      (64, 64, 3),
      match='none of its 1 image files',
  )


def test_labelled_folder(tmp_path):
  write_images(str(tmp_path / 'cat'), 2)
  write_images(str(tmp_path / 'fox'), 3)
  x, y = folder.load_labelled_folder(str(tmp_path), (28, 28, 1), LABELS, log=lambda _: None)
  assert x.shape == (5, 28, 28, 1) and y.tolist() == [0, 0, 2, 2, 2]
  write_images(str(tmp_path / 'wolf'), 1)
  one_line_error(
      DataError,
      folder.load_labelled_folder,
      str(tmp_path),
      (28, 28, 1),
      LABELS,
      match=r"\['wolf'\] are not classes of f",
  )


# --- the custom problem: every check before training -----------------------------------


def custom_config(aux_dir, private_dir='', spec='byo_user_model:released', evaluator=''):
  spec_ = importlib.util.spec_from_file_location(
      'cfg_custom', os.path.join(REPO, 'configs', 'custom.py')
  )
  module = importlib.util.module_from_spec(spec_)
  spec_.loader.exec_module(module)
  c = module.get_config('tiny')
  c.classifier.checkpoint = spec
  if evaluator:
    c.evaluators = evaluator
  c.data.aux_dir = aux_dir
  c.data.private_dir = private_dir
  return c


@pytest.fixture(scope='module')
def custom_dirs(tmp_path_factory):
  root = tmp_path_factory.mktemp('custom')
  write_images(str(root / 'aux'), 12, (40, 40))
  for i, name in enumerate(LABELS):
    write_images(str(root / 'private' / name), 5, (28, 28), 'L', seed=i + 1)
  return str(root / 'aux'), str(root / 'private')


def test_custom_problem(user_module, custom_dirs):
  aux, private = custom_dirs
  c = custom_config(aux, private)
  c.targets = 'dog'
  p = problems.load_problem(c)
  assert p.dataset == 'emnist' and p.label_names == LABELS and p.target_ids == [1]
  assert p.aux_x.shape == (12, 28, 28, 1)
  assert len(p.private_x) + len(p.test_x) == 15 and len(p.test_x) == 3  # 1 per class


@pytest.mark.parametrize(
    'change, match',
    [
        (dict(private_dir=''), 'nothing to train the independent evaluators on'),
        (dict(spec=''), 'classifier.checkpoint is empty'),
        (dict(spec='byo_user_model:four_names'), '4 names'),
        (dict(evaluator='byo_user_model:other_order'), "class 0 is 'dog'"),
        (dict(aux_dir='/no/such/folder'), 'data.aux_dir=/no/such/folder is not a folder'),
        (dict(targets='wolf'), "'wolf' is not a class of f"),
    ],
)
def test_custom_mismatches_stop_before_training(user_module, custom_dirs, change, match):
  aux, private = custom_dirs
  args = dict(aux_dir=aux, private_dir=private)
  targets = change.pop('targets', '')
  args.update(change)
  c = custom_config(**args)
  c.targets = targets
  one_line_error(ValueError, problems.load_problem, c, match=match)


def test_custom_audit_end_to_end(user_module, custom_dirs, tmp_path):
  """The user's f and f' (no training of either), their folder as D_aux."""
  from c2g_jax import train

  aux, private = custom_dirs
  c = custom_config(aux, private, evaluator='byo_user_model:released_probs')
  c.eval.control = False  # the control's own test is in test_robustness
  c.attack.conv_impl = 'xla'
  c.sample_every_steps = 1000
  c.targets = 'cat,fox'
  results = train.train_and_evaluate(c, str(tmp_path / 'run'))
  assert sorted(results['inception_accuracy']) == ['cat', 'fox']
  # The same linear model as f and f': both scored on the user's 3 test images.
  assert results['f_test_accuracy'] == results['evaluator_test_accuracy']
  assert os.path.isfile(tmp_path / 'run' / 'samples.png')
