"""`python main.py` end to end on the tiny config: outputs, resume, and f via its checkpoint."""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_main(workdir, data_dir, *extra):
  cmd = [sys.executable, 'main.py',
         '--config=configs/emnist.py:numeric_mutually_exclusive,tiny',
         f'--workdir={workdir}', f'--config.data.data_dir={data_dir}', *extra]
  return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope='module')
def first_run(tmp_path_factory):
  root = tmp_path_factory.mktemp('main')
  out = run_main(root / 'run', root / 'tfds')
  assert out.returncode == 0, out.stderr[-3000:]
  return root, out


def test_main_writes_grid_metrics_results_and_checkpoints(first_run):
  root, out = first_run
  run = root / 'run'
  results = json.loads((run / 'results.json').read_text())
  assert list(results['inception_accuracy']) == [str(d) for d in range(10)]
  assert all(0.0 <= v <= 1.0 for v in results['inception_accuracy'].values())
  assert 0.0 <= results['f_test_accuracy'] <= 1.0
  assert results['steps'] == 4
  lines = [json.loads(l) for l in (run / 'metrics.jsonl').read_text().splitlines()]
  assert [l['step'] for l in lines] == [2, 4]
  # tiny: gamma +0.5 per step; the second chunk's steps 2 and 3 have 1.0 and 1.5.
  assert lines[1]['gamma'] == pytest.approx(1.25)
  from PIL import Image
  grid = Image.open(run / 'samples.png')
  # 10 target rows + 1 prior row of 28 px at scale 2.
  assert grid.height == 11 * 28 * 2
  meta_dirs = sorted(os.listdir(run / 'classifier'))
  assert meta_dirs, 'classifier checkpoint missing'
  assert 'inception accuracy' in out.stdout and str(run.resolve()) in out.stdout


def test_second_start_resumes_instead_of_retraining(first_run):
  root, _ = first_run
  out = run_main(root / 'run', root / 'tfds')
  assert out.returncode == 0, out.stderr[-3000:]
  assert 'resumed from' in out.stderr and 'at generator step 4' in out.stderr
  assert 'epoch 1/1' not in out.stderr    # f and f' were loaded, not trained again
  results = json.loads((root / 'run' / 'results.json').read_text())
  assert results['steps'] == 4


def test_config_override_reaches_training(first_run, tmp_path):
  root, _ = first_run
  # f and f' as released by the first run: only the attack needs the override, and
  # training both classifiers again would test nothing new.
  out = run_main(tmp_path / 'run', root / 'tfds', '--config.attack.steps=2',
                 f"--config.classifier.checkpoint={root / 'run' / 'classifier'}",
                 f"--config.evaluator.checkpoint={root / 'run' / 'evaluator'}")
  assert out.returncode == 0, out.stderr[-3000:]
  assert json.loads((tmp_path / 'run' / 'results.json').read_text())['steps'] == 2


def test_results_table_columns_line_up_for_long_target_names():
  from c2g_jax.train import format_results
  names = ['Brad Pitt', '3']
  r = {'setting': 's', 'steps': 4, 'f_test_accuracy': 0.0, 'evaluator_test_accuracy': 0.25,
       'samples_per_target': 16, 'inception_accuracy': dict(zip(names, [0.0, 1.0])),
       'inception_accuracy_mean': 0.5, 'f_accuracy_on_samples': dict(zip(names, [0.5, 0.25]))}
  header, ours, fs = format_results(r).splitlines()[3:6]
  for line in (ours, fs):   # each value ends where its target's name ends
    for name, value in zip(names, line.split()[1:3]):
      assert header.index(name) + len(name) == line.index(value) + len(value), (header, line)
