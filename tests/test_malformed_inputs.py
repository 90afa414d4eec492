"""Malformed inputs each get their intended one-line error.

Classifier checkpoints (missing, half-written, truncated or zero-length files,
garbage metadata, metadata that does not fit the arrays, NaN weights), attack
checkpoints, image and label arrays (wrong dtypes and shapes, NaN images,
zero-length sets), the work directory's config.json and config values.
"""

import gc
import glob
import json
import os
import shutil

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from c2g_jax import attack as attack_lib
from c2g_jax import byo
from c2g_jax import checkpoint
from c2g_jax import checks
from c2g_jax import networks
from c2g_jax import workdir as workdir_lib
from c2g_jax.data import DataError
from c2g_jax.data.problems import Problem
from shared_helpers import RELEASED_F_META

CheckpointError = checkpoint.CheckpointError
# Failed restores leave tensorstore objects for the garbage collector to report.
pytestmark = pytest.mark.filterwarnings('ignore::pytest.PytestUnraisableExceptionWarning')


@pytest.fixture(scope='module', autouse=True)
def _collect_failed_restores():
  """Collects those objects before the module's last test ends, under the filter
  above, rather than whenever a later module's test happens to run the collector."""
  yield
  gc.collect()


META = RELEASED_F_META


def tiny_variables(num_classes=10, seed=0):
  module = networks.Classifier(num_classes=num_classes, dataset='emnist', width=0.125)
  return module.init(jax.random.PRNGKey(seed), jnp.zeros((1, 28, 28, 1)), train=False)


@pytest.fixture(scope='module')
def good_classifier(released_f):
  """The session's released tiny classifier (conftest.py); damaged() works on copies."""
  path, _, meta = released_f
  assert meta == META
  return path


def damaged(good, tmp_path, damage):
  path = str(tmp_path / 'f')
  shutil.copytree(good, path)
  damage(path)
  return path


def largest_array_file(path):
  files = [
      f
      for f in glob.glob(os.path.join(path, '0', 'variables', '**'), recursive=True)
      if os.path.isfile(f)
  ]
  return max(files, key=os.path.getsize)


def write(path, data: bytes):
  with open(path, 'wb') as f:
    f.write(data)


def set_meta(**changes):
  def damage(path):
    meta = dict(META, **changes)
    for k in [k for k, v in changes.items() if v is None]:
      del meta[k]
    write(os.path.join(path, '0', 'metadata', 'metadata'), json.dumps(meta).encode())

  return damage


def test_good_classifier_loads(good_classifier):
  module, variables, meta = checkpoint.load_classifier(good_classifier)
  assert meta == META
  np.testing.assert_array_equal(
      variables['params']['Dense_0']['bias'], tiny_variables()['params']['Dense_0']['bias']
  )


CLASSIFIER_CASES = {
    'zero-length metadata file': (
        lambda p: write(os.path.join(p, '0', 'metadata', 'metadata'), b''),
        'cannot read the metadata',
    ),
    'garbage bytes as metadata': (
        lambda p: write(os.path.join(p, '0', 'metadata', 'metadata'), bytes(range(256)) * 3),
        'cannot read the metadata',
    ),
    'metadata is a JSON list': (
        lambda p: write(os.path.join(p, '0', 'metadata', 'metadata'), b'[1, 2, 3]'),
        'is a JSON list, not an object',
    ),
    'metadata lacks value_range': (set_meta(value_range=None), "lacks ['value_range']"),
    'num_classes is a string': (
        set_meta(num_classes='ten'),
        "num_classes must be an integer >= 2, got 'ten'",
    ),
    'label_names shorter than num_classes': (
        set_meta(label_names=['0', '1']),
        'label_names must be a list of num_classes=10',
    ),
    'input_shape without channels': (
        set_meta(input_shape=[28, 28]),
        'input_shape must be [H, W, C]',
    ),
    'value_range reversed': (
        set_meta(value_range=[1.0, 0.0]),
        'value_range must be [lo, hi] with finite lo < hi',
    ),
    'value_range NaN': (set_meta(value_range=[float('nan'), 1.0]), 'value_range must be [lo, hi]'),
    'unknown architecture': (
        set_meta(architecture='mlp'),
        "architecture 'mlp' is not one of",
    ),
    'metadata says 62 classes, arrays have 10': (
        set_meta(num_classes=62, label_names=[str(i) for i in range(62)]),
        'cannot restore the classifier',
    ),
    'array file truncated to half': (
        lambda p: open(largest_array_file(p), 'r+b').truncate(
            os.path.getsize(largest_array_file(p)) // 2
        ),
        'cannot restore the classifier',
    ),
    'zero-length array file': (
        lambda p: write(largest_array_file(p), b''),
        'cannot restore the classifier',
    ),
    'zero-length array index (manifest)': (
        lambda p: write(os.path.join(p, '0', 'variables', 'manifest.ocdbt'), b''),
        'cannot restore the classifier',
    ),
    'garbage tree metadata': (
        lambda p: write(os.path.join(p, '0', 'variables', '_METADATA'), b'{not json'),
        'cannot restore the classifier',
    ),
    'half-written save only (temporary folder)': (
        lambda p: (
            shutil.rmtree(os.path.join(p, '0')),
            os.makedirs(os.path.join(p, '0.orbax-checkpoint-tmp', 'variables')),
        ),
        'holds no finished checkpoint',
    ),
    'empty folder': (lambda p: shutil.rmtree(os.path.join(p, '0')), 'holds no finished checkpoint'),
}


@pytest.mark.parametrize('case', list(CLASSIFIER_CASES))
def test_damaged_classifier_checkpoint(good_classifier, tmp_path, case):
  damage, message = CLASSIFIER_CASES[case]
  path = damaged(good_classifier, tmp_path, damage)
  with pytest.raises(
      CheckpointError,
      match=message.replace('[', r'\[').replace(']', r'\]').replace('(', r'\(').replace(')', r'\)'),
  ) as e:
    checkpoint.load_classifier(path)
  assert '\n' not in str(e.value) and path in str(e.value)


def test_missing_classifier_and_byo_keeps_the_message(tmp_path, good_classifier):
  with pytest.raises(CheckpointError, match='no classifier checkpoint at'):
    checkpoint.load_classifier(str(tmp_path / 'nothing'))
  path = damaged(
      good_classifier, tmp_path, lambda p: write(os.path.join(p, '0', 'metadata', 'metadata'), b'')
  )
  with pytest.raises(byo.ByoError, match='cannot read the metadata'):
    byo.load_classifier(path)


def test_nan_weights_are_refused(tmp_path):
  variables = tiny_variables()
  variables = jax.tree.map(lambda x: x, variables)
  variables['params']['Dense_0']['bias'] = variables['params']['Dense_0']['bias'].at[3].set(jnp.nan)
  checkpoint.save_classifier(str(tmp_path / 'f'), variables, META)
  with pytest.raises(CheckpointError, match='has NaN or infinite weights'):
    checkpoint.load_classifier(str(tmp_path / 'f'))


# --- attack checkpoints ------------------------------------------------------------


def tiny_state(step):
  return attack_lib.AttackState(
      step=jnp.int32(step),
      g_params={'w': jnp.arange(3.0) + step},
      d_params={'w': jnp.ones(2)},
      g_opt_state=(),
      d_opt_state=(),
      rng=jax.random.PRNGKey(0),
  )


def saved_attack_run(path, steps=(2, 4)):
  ckpts = checkpoint.AttackCheckpoints(path)
  for s in steps:
    ckpts.save(s, tiny_state(s), {'step': s})
  ckpts.close()


def test_half_written_attack_checkpoint_is_never_restored(tmp_path):
  path = str(tmp_path / 'ckpt')
  saved_attack_run(path)
  # A kill during the save of step 6 leaves Orbax's temporary folder.
  tmp = os.path.join(path, '6.orbax-checkpoint-tmp')
  shutil.copytree(os.path.join(path, '4'), tmp)
  ckpts = checkpoint.AttackCheckpoints(path)
  assert ckpts.latest_step() == 4
  state, info = ckpts.restore(jax.eval_shape(lambda: tiny_state(0)))
  assert int(state.step) == 4 and info == {'step': 4}
  ckpts.save(6, tiny_state(6), {'step': 6})  # the resumed run saves step 6 again
  ckpts.close()
  assert not os.path.exists(tmp)  # the interrupted save's leftovers are cleaned up
  assert checkpoint.AttackCheckpoints(path).all_steps() == [2, 4, 6]


ATTACK_CASES = {
    'zero-length info': (
        lambda p: write(os.path.join(p, '4', 'info', 'metadata'), b''),
        'cannot restore the attack checkpoint',
    ),
    'garbage info': (
        lambda p: write(os.path.join(p, '4', 'info', 'metadata'), b'\xff\x00'),
        'cannot restore the attack checkpoint',
    ),
    'info of another step': (
        lambda p: write(os.path.join(p, '4', 'info', 'metadata'), b'{"step": 9}'),
        'is inconsistent',
    ),
    'zero-length state arrays': (
        lambda p: [
            write(f, b'')
            for f in glob.glob(os.path.join(p, '4', 'state', '**', 'd', '*'), recursive=True)
        ],
        'cannot restore the attack checkpoint',
    ),
}


@pytest.mark.parametrize('case', list(ATTACK_CASES))
def test_damaged_attack_checkpoint_names_the_step_to_fall_back_to(tmp_path, case):
  damage, message = ATTACK_CASES[case]
  path = str(tmp_path / 'ckpt')
  saved_attack_run(path)
  damage(path)
  ckpts = checkpoint.AttackCheckpoints(path)
  with pytest.raises(CheckpointError, match=message) as e:
    ckpts.restore(jax.eval_shape(lambda: tiny_state(0)))
  ckpts.close()
  if 'inconsistent' not in message:
    assert 'to resume from step 2' in str(e.value)
  assert '--restart' in str(e.value) and '\n' not in str(e.value)


# --- arrays --------------------------------------------------------------------------


def problem(**changes):
  rng = np.random.default_rng(0)
  base = dict(
      dataset='emnist',
      private_x=rng.integers(0, 256, (6, 28, 28, 1), dtype=np.uint8),
      private_y=np.arange(6, dtype=np.int32) % 3,
      test_x=rng.integers(0, 256, (3, 28, 28, 1), dtype=np.uint8),
      test_y=np.arange(3, dtype=np.int32),
      aux_x=rng.integers(0, 256, (5, 28, 28, 1), dtype=np.uint8),
      label_names=['a', 'b', 'c'],
      target_ids=[0, 2],
  )
  base.update(changes)
  return Problem(**base)


def nan_images():
  x = np.full((5, 28, 28, 1), 0.5, np.float32)
  x[3, 4, 4, 0] = np.nan
  return x


ARRAY_CASES = {
    'float images in [0, 1]': (
        dict(aux_x=np.full((5, 28, 28, 1), 0.5, np.float32)),
        'D_aux) have dtype float32; pixels must be uint8',
    ),
    'NaN images': (dict(aux_x=nan_images()), 'NaN or infinite pixels (first in image 3)'),
    'int64 images': (dict(private_x=np.zeros((6, 28, 28, 1), np.int64)), 'D_tr) have dtype int64'),
    'images without a channel axis': (
        dict(aux_x=np.zeros((5, 28, 28), np.uint8)),
        'have shape (5, 28, 28), expected (N, 28, 28, 1)',
    ),
    'RGB images for a grey classifier': (
        dict(aux_x=np.zeros((5, 28, 28, 3), np.uint8)),
        'expected (N, 28, 28, 1)',
    ),
    'truncated images (27 columns)': (
        dict(test_x=np.zeros((3, 28, 27, 1), np.uint8)),
        'test images have shape (3, 28, 27, 1)',
    ),
    'zero-length D_aux': (dict(aux_x=np.zeros((0, 28, 28, 1), np.uint8)), 'hold no images'),
    'images as a list': (
        dict(aux_x=[[0]]),
        'must be a numpy array of uint8 (N, 28, 28, 1) ' 'images, got a list',
    ),
    'float labels': (dict(private_y=np.zeros(6, np.float32)), 'labels must be integers'),
    'one label short': (
        dict(private_y=np.zeros(5, np.int32)),
        'have shape (5,) but there are 6 images',
    ),
    'label out of range': (dict(test_y=np.array([0, 1, 7], np.int32)), 'outside the 3 classes'),
    'target f does not have': (dict(target_ids=[0, 5]), 'target 5 is not a class of f'),
    'no targets': (dict(target_ids=[]), 'no target classes'),
    'one class only': (dict(label_names=['a']), 'at least 2 distinct names'),
}


@pytest.mark.parametrize('case', list(ARRAY_CASES))
def test_bad_arrays(case):
  changes, message = ARRAY_CASES[case]
  with pytest.raises(DataError) as e:
    checks.check_problem(problem(**changes))
  assert message in str(e.value) and '\n' not in str(e.value)


def test_good_arrays_and_empty_training_set_pass():
  checks.check_problem(problem())
  checks.check_problem(
      problem(private_x=np.zeros((0, 28, 28, 1), np.uint8), private_y=np.zeros(0, np.int32))
  )


def test_non_finite_predictions_of_f():
  probs = np.full((5, 3), 1 / 3, np.float32)
  checks.check_probs(probs, 5, 3)
  probs[1, 0] = np.nan
  with pytest.raises(DataError, match='NaN or infinite probabilities on 1 of the D_aux'):
    checks.check_probs(probs, 5, 3)
  with pytest.raises(DataError, match=r'have shape \(5, 3\), expected \(5, 4\)'):
    checks.check_probs(probs, 5, 4)


# --- config values and the work directory's config.json --------------------------------


def config(**attack):
  c = ml_collections.ConfigDict(
      {
          'seed': 0,
          'checkpoints_to_keep': 3,
          'attack': {'batch_size': 8, 'learning_rate': 2e-4, 'b1': 0.5, 'steps': 10},
      }
  )
  c.attack.update(attack)
  return c


@pytest.mark.parametrize(
    'field,value,message',
    [
        ('batch_size', 0, 'config.attack.batch_size=0 must be an integer >= 1'),
        ('learning_rate', float('nan'), 'config.attack.learning_rate=nan must be a finite number'),
        ('learning_rate', -1.0, 'config.attack.learning_rate=-1.0 must be a finite number > 0'),
        ('b1', 1.0, 'config.attack.b1=1.0 must be a finite number in [0, 1)'),
        ('steps', -5, 'config.attack.steps=-5 must be an integer >= 0'),
        ('similarity_views', 0, 'config.attack.similarity_views=0 must be an integer >= 1'),
        ('similarity_views', 2.5, 'config.attack.similarity_views=2.5 must be an integer >= 1'),
        ('selection_pool', 0, 'config.attack.selection_pool=0 must be an integer >= 1'),
        ('selection_realism', 0, 'config.attack.selection_realism=0 must be an integer >= 1'),
        (
            'diversity_weight',
            -0.5,
            'config.attack.diversity_weight=-0.5 must be a finite number >= 0',
        ),
        ('margin_cap', -1.0, 'config.attack.margin_cap=-1.0 must be a finite number >= 0'),
        ('view_blur', 9.0, 'config.attack.view_blur=9.0 must be a finite number in [0, 4]'),
        ('selection_views', True, 'config.attack.selection_views=True must be an integer >= 1'),
        ('view_augment', 'rotate', "config.attack.view_augment='rotate' is not one of ("),
        ('similarity', 'cosine', "config.attack.similarity='cosine' is not one of ("),
        (
            'recipe',
            'best',
            "config.attack.recipe='best' is not one of ('paper', 'strong', 'faces')",
        ),
        (
            'conv_impl',
            'lax',
            "config.attack.conv_impl='lax' is not one of ('auto', 'xla', 'im2col')",
        ),
        (
            'compute_dtype',
            'float16',
            "config.attack.compute_dtype='float16' is not one of ('float32', 'bfloat16')",
        ),
    ],
)
def test_bad_config_values(field, value, message):
  checks.check_config(config())
  with pytest.raises(checks.ConfigError) as e:
    checks.check_config(config(**{field: value}))
  assert str(e.value).startswith(message)


@pytest.mark.parametrize('key', sorted(attack_lib.CHOICES))
def test_every_named_choice_refuses_an_unknown_name(key):
  # attack.CHOICES is the one table both Hyper and check_config read.
  with pytest.raises(ValueError, match=f'set config.attack.{key}$'):
    attack_lib.Hyper(**{key: 'no-such-name'})
  with pytest.raises(checks.ConfigError) as e:
    checks.check_config(config(**{key: 'no-such-name'}))
  assert str(e.value).startswith(f"config.attack.{key}='no-such-name' is not one of (")
  assert repr(attack_lib.CHOICES[key][0]) in str(e.value)  # the names it takes are listed


def test_margin_cap_without_max_margin_fails_before_training():
  checks.check_config(config(recipe='strong', margin_cap=2.0))  # strong: max_margin
  with pytest.raises(checks.ConfigError) as e:
    checks.check_config(config(recipe='paper', margin_cap=2.0))
  assert str(e.value).startswith("margin_cap=2.0 caps the max_margin similarity, not 'log_")


def test_realism_stage_larger_than_the_pool_fails_before_training():
  checks.check_config(config(recipe='strong', selection_realism=4))  # strong: pool 4
  with pytest.raises(checks.ConfigError) as e:
    checks.check_config(config(recipe='paper', selection_realism=2))  # paper: pool 1
  assert str(e.value).startswith('selection_realism=2 exceeds selection_pool=1')


def test_bad_evaluator_seed_count():
  c = config()
  c.evaluator = {'max_seeds': 0}
  with pytest.raises(checks.ConfigError) as e:
    checks.check_config(c)
  assert str(e.value).startswith('config.evaluator.max_seeds=0 must be an integer >= 1')


@pytest.mark.parametrize(
    'content,message',
    [
        (b'', 'is not readable JSON'),
        (b'{"attack": ', 'is not readable JSON'),
        (bytes(range(128, 256)), 'is not readable JSON'),
        (b'[1, 2]', 'holds a list, not a config'),
    ],
)
def test_garbage_config_json_in_the_workdir(tmp_path, content, message):
  write(str(tmp_path / 'config.json'), content)
  with pytest.raises(workdir_lib.WorkdirError, match=message) as e:
    workdir_lib.prepare(str(tmp_path), config().to_dict())
  assert '--restart' in str(e.value)
  assert (tmp_path / 'config.json').read_bytes() == content  # untouched
