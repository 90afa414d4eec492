"""config.data.source=PATH: EMNIST from a user's .npz, its split and its errors."""

import os
import subprocess
import sys

import numpy as np
import pytest

from c2g_jax.data import DataError
from c2g_jax.data import emnist_file
from c2g_jax.data.emnist import load_emnist
from c2g_jax.data.problems import load_problem
from configs import emnist as emnist_config
from shared_helpers import emnist_10_per_class

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def good_file(tmp_path):
  x, y = emnist_10_per_class()
  path = tmp_path / 'mine.npz'
  np.savez(path, x=x, y=y, mapping=np.arange(62))
  return str(path), x, y


def test_split_rule_is_a_seeded_sixth_per_class():
  y = np.repeat(np.arange(3), [12, 6, 7])
  rows = emnist_file.split_rows(y)
  assert np.bincount(y[rows['test']]).tolist() == [2, 1, 1]  # round(12/6), 6/6, round(7/6)
  assert sorted(np.concatenate([rows['train'], rows['test']]).tolist()) == list(range(len(y)))
  again = emnist_file.split_rows(y)
  np.testing.assert_array_equal(rows['test'], again['test'])
  other = emnist_file.split_rows(y, seed=1)
  assert not np.array_equal(rows['test'], other['test'])


def test_file_source_loads_upright_images_split_per_class(good_file):
  path, x, y = good_file
  data = load_emnist(path)
  (tx, ty), (_, sy) = data['train'], data['test']
  assert tx.shape == (len(ty), 28, 28, 1) and tx.dtype == np.uint8 and ty.dtype == np.int32
  assert len(ty) + len(sy) == len(y)
  assert np.bincount(sy, minlength=62).tolist() == [2] * 62  # round(10 / 6)
  rows = emnist_file.split_rows(y)
  np.testing.assert_array_equal(tx[..., 0], x[rows['train']])  # not transposed
  np.testing.assert_array_equal(sy, y[rows['test']])


def test_file_source_through_config_load_problem(good_file):
  path, x, y = good_file
  config = emnist_config.get_config('numeric_mutually_exclusive,tiny')
  config.data.source = path
  problem = load_problem(config)
  assert problem.label_names == [str(d) for d in range(10)]
  assert set(problem.private_y.tolist()) == set(range(10))
  # D_tr: the publisher's half of the 'train' rows of the digits (4 of 8 each);
  # test: the 'test' rows (2 of 10 each); D_aux: letters only.
  assert np.bincount(problem.private_y).tolist() == [4] * 10
  assert np.bincount(problem.test_y).tolist() == [2] * 10
  digit_images = {x[i].tobytes() for i in np.flatnonzero(y < 10)}
  assert not any(img[..., 0].tobytes() in digit_images for img in problem.aux_x)
  assert len(problem.aux_x) > 0


def test_channel_axis_accepted(tmp_path):
  x, y = emnist_10_per_class()
  path = tmp_path / 'c.npz'
  np.savez(path, x=x[..., None], y=y)
  assert load_emnist(str(path))['train'][0].shape[1:] == (28, 28, 1)


def _bad_cases(tmp_path):
  x, y = emnist_10_per_class()
  cases = {}

  def save(name, **arrays):
    p = tmp_path / f'{name}.npz'
    np.savez(p, **arrays)
    cases[name] = (str(p), None)

  cases['missing'] = (str(tmp_path / 'nowhere.npz'), 'no such file')
  (tmp_path / 'folder.npz').mkdir()
  cases['folder'] = (str(tmp_path / 'folder.npz'), 'a folder, not a file')
  text = tmp_path / 'text.npz'
  text.write_text('not an archive')
  cases['not_npz'] = (str(text), 'not a readable .npz')
  save('no_x', y=y)
  save('no_y', x=x)
  save('shape', x=x[:, :27], y=y)
  save('dtype', x=x.astype(np.float32), y=y)
  save('label', x=x, y=np.where(y == 61, 62, y))
  save('length', x=x, y=y[:-1])
  expected = {
      'no_x': 'lacks x',
      'no_y': 'lacks y',
      'shape': 'shape',
      'dtype': 'dtype float32',
      'label': '0..62',
      'length': 'must match',
  }
  return {k: (p, m or expected[k]) for k, (p, m) in cases.items()}


@pytest.mark.parametrize(
    'case', ['missing', 'folder', 'not_npz', 'no_x', 'no_y', 'shape', 'dtype', 'label', 'length']
)
def test_bad_file_one_line_naming_it(tmp_path, case):
  path, what = _bad_cases(tmp_path)[case]
  with pytest.raises(DataError) as err:
    load_emnist(path)
  message = str(err.value)
  assert '\n' not in message and path in message and what in message


def test_unknown_name_is_not_read_as_a_file():
  with pytest.raises(DataError, match="'mnist'.*npz"):
    load_emnist('mnist')


def test_main_with_bad_file_exits_2_with_one_line(tmp_path):
  bad = tmp_path / 'bad.npz'
  np.savez(bad, x=np.zeros((3, 28, 28), np.float32), y=np.zeros(3, np.uint8))
  out = subprocess.run(
      [
          sys.executable,
          'main.py',
          '--config=configs/emnist.py:numeric_mutually_exclusive,tiny',
          f'--workdir={tmp_path / "run"}',
          f'--config.data.source={bad}',
      ],
      cwd=REPO,
      capture_output=True,
      text=True,
      timeout=300,
  )
  assert out.returncode == 2, out.stderr[-2000:]
  # The log shows the config first; the error is one 'error:' line, no traceback.
  lines = [l for l in out.stderr.splitlines() if l.startswith('error:')]
  assert len(lines) == 1 and str(bad) in lines[0] and 'dtype float32' in lines[0], out.stderr
  assert 'Traceback' not in out.stderr
