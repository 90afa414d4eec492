"""The ACGAN baseline trains through the shared loop: resume and divergence guard."""

import json
import os
import shutil

import jax
import numpy as np
import pytest

from c2g_jax import acgan
from c2g_jax import guard
from configs import emnist as emnist_config


def tiny_setup(steps=4):
  config = emnist_config.get_config('numeric_mutually_exclusive,tiny')
  config.attack.steps = steps
  config.attack.iterations_per_call = 2
  config.checkpoint_every_steps = 2
  rng = np.random.default_rng(0)
  problem = type(
      'P',
      (),
      {
          'dataset': 'emnist',
          'label_names': ['0', '1', '2'],
          'private_x': rng.integers(0, 256, (24, 28, 28, 1), dtype=np.uint8),
          'private_y': np.repeat(np.arange(3), 8).astype(np.int32),
      },
  )
  return config, problem


def steps_logged(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [json.loads(line)['step'] for line in f]


def test_resumed_acgan_matches_an_uninterrupted_one_and_logs_each_step_once(tmp_path):
  config, problem = tiny_setup()
  whole = str(tmp_path / 'whole')
  _, state_whole = acgan.train(config, problem, whole)
  assert steps_logged(whole) == [2, 4]

  # Kill after the step-4 record was written but before its checkpoint landed.
  resumed = str(tmp_path / 'resumed')
  shutil.copytree(whole, resumed)
  shutil.rmtree(os.path.join(resumed, 'checkpoints', '4'))
  _, state_resumed = acgan.train(config, problem, resumed)
  assert steps_logged(resumed) == [2, 4]
  for a, b in zip(jax.tree.leaves(state_whole), jax.tree.leaves(state_resumed)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_diverging_acgan_stops_with_the_guard_and_saves_nothing_bad(tmp_path):
  config, problem = tiny_setup()
  config.attack.learning_rate = float('inf')
  with pytest.raises(guard.DivergenceError, match='training diverged: .* at generator step 1'):
    acgan.train(config, problem, str(tmp_path / 'run'))
  assert not os.listdir(tmp_path / 'run' / 'checkpoints')
