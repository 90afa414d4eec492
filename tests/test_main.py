"""`python main.py` end to end on the tiny config: outputs, resume, and f via its checkpoint."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from shared_helpers import printout_numbers

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_main(workdir, data_dir, *extra):
  cmd = [
      sys.executable,
      'main.py',
      '--config=configs/emnist.py:numeric_mutually_exclusive,tiny',
      f'--workdir={workdir}',
      f'--config.data.data_dir={data_dir}',
      *extra,
  ]
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
  assert str(run.resolve()) in out.stdout
  # The audit: two evaluators trained on D_tr, the gamma = 0 control, the verdict first.
  printed = out.stdout.splitlines()
  first = next(i for i, line in enumerate(printed) if line.startswith('setting '))
  assert printed[first + 1] == 'VERDICT: ' + results['verdict']
  assert set(results['evaluators']) == {'vgg', 'classifier'}
  for e in results['evaluators'].values():
    assert 0.0 <= e['test_accuracy'] <= 1.0 and e['validation_accuracy'] is not None
    # Equal class counts: the balanced accuracy is the plain one, and the verdict says so.
    assert e['balanced_test_accuracy'] == e['test_accuracy']
    assert list(e['control']) == list(e['attack']) == [str(d) for d in range(10)]
  assert results['f_balanced_test_accuracy'] == results['f_test_accuracy']
  assert 'balanced test accuracy' not in results['verdict']
  head = results['headline_evaluator']
  assert results['evaluator_test_accuracy'] == max(
      e['test_accuracy'] for e in results['evaluators'].values()
  )
  assert results['evaluators'][head]['test_accuracy'] == results['evaluator_test_accuracy']
  assert [r['name'] for r in results['leak']['per_target']] == [str(d) for d in range(10)]
  assert len(results['target_verdicts']) == 10
  # Evaluators weaker than f are named, in results.json and in the log.
  for name, e in results['evaluators'].items():
    assert e['weaker_than_f'] == (e['test_accuracy'] < results['f_test_accuracy'])
    assert (f"f'[{name}]: the evaluator is weaker" in out.stderr) == e['weaker_than_f']
  # The work after training says what it is doing and what each part took.
  import re

  for stage in (
      "evaluation: 16 samples per target, and the control's",
      "report: f'[vgg] labels the samples and the real test images",
      "report: f'[classifier] labels the samples and the real test images",
      f"report: FID, KNN, precision, recall and coverage in f'[{head}]'s features",
      'report: grids, charts, Figure 6 and the interpolations',
  ):
    assert f'{stage} ...' in out.stderr
    assert re.search(re.escape(stage) + r': \d+\.\d s', out.stderr), stage
  # The paper's Table 4 row for this setting, beside the run's shares over the same digits.
  paper = results['paper']
  assert (paper['table'], paper['paper_mean'], paper['targets']) == (
      'Table 4',
      0.757,
      [str(d) for d in range(10)],
  )
  assert paper['attack_mean'] == pytest.approx(results['inception_accuracy_mean'])
  assert paper['control_mean'] == pytest.approx(results['control_inception_accuracy_mean'])
  line = next(l for l in printed if l.startswith('The paper (Table 4'))
  assert f"judged by f'[{head}]: {paper['attack_mean']:.3f}" in line
  assert 'The paper (Table 4' in (run / 'report' / 'index.html').read_text()
  assert (run / 'control' / 'samples.png').exists()
  assert (run / 'report' / 'leak.png').exists() and (
      run / 'report' / 'control_samples.png'
  ).exists()


def test_second_start_resumes_instead_of_retraining(first_run):
  root, _ = first_run
  out = run_main(root / 'run', root / 'tfds')
  assert out.returncode == 0, out.stderr[-3000:]
  assert 'resumed from' in out.stderr and 'at generator step 4' in out.stderr
  assert 'epoch 1/' not in out.stderr  # f and the evaluators were loaded, not trained again
  assert 'control: resumed from' in out.stderr
  results = json.loads((root / 'run' / 'results.json').read_text())
  assert results['steps'] == 4


def test_config_override_reaches_training(first_run, tmp_path):
  root, _ = first_run
  # f and f' as released by the first run, and no control: only the attack needs the
  # override, and training the classifiers or the control again would test nothing new.
  # The default recipe ('strong': views, max margin, the final selection) end to end;
  # the tiny size keeps the paper's for the other tests.
  out = run_main(
      tmp_path / 'run',
      root / 'tfds',
      '--config.attack.steps=2',
      '--config.attack.recipe=strong',
      '--config.eval.control=False',
      f"--config.classifier.checkpoint={root / 'run' / 'classifier'}",
      '--config.evaluators='
      + ','.join(str(root / 'run' / 'evaluators' / name) for name in ('vgg', 'classifier')),
  )
  assert out.returncode == 0, out.stderr[-3000:]
  results = json.loads((tmp_path / 'run' / 'results.json').read_text())
  assert results['steps'] == 2
  # Selection: 16 kept of 64 per target; the raw draws judged beside the kept.
  assert results['selection'] == {
      'pool': 4,
      'views': 8,
      'realism': 1,
      'kept': 16,
      'candidates': 64,
  }
  head = results['headline_evaluator']
  assert results['raw_inception_accuracy_mean'] == pytest.approx(
      np.mean(list(results['raw_inception_accuracy'].values()))
  )
  assert results['evaluators'][head]['attack_raw_mean'] == results['raw_inception_accuracy_mean']
  assert results['inception_accuracy_mean'] == results['leak']['mean']['attack']
  line = next(l for l in out.stdout.splitlines() if l.startswith('final selection: 16 of 64'))
  assert f"{results['raw_inception_accuracy_mean']:.3f} raw -> " in line
  report_dir = tmp_path / 'run' / 'report'
  assert (report_dir / 'samples_raw.png').exists() and (
      report_dir / 'samples_selected.png'
  ).exists()
  page = (report_dir / 'index.html').read_text()
  assert 'attack, raw draws' in page and 'Final selection: of 64 draws per target' in page


def test_a_projection_critic_trains_selects_and_resumes_end_to_end(first_run, tmp_path):
  # critic_condition=projection through main.py: the critic built with f's label
  # count, its realism stage in the selection, and its checkpoint restored.
  root, _ = first_run
  args = (
      '--config.attack.steps=2',
      '--config.attack.critic_condition=projection',
      '--config.attack.selection_pool=2',
      '--config.attack.selection_realism=2',
      '--config.eval.control=False',
      f"--config.classifier.checkpoint={root / 'run' / 'classifier'}",
      f"--config.evaluators={root / 'run' / 'evaluators' / 'classifier'}",
  )
  out = run_main(tmp_path / 'run', root / 'tfds', *args)
  assert out.returncode == 0, out.stderr[-3000:]
  stored = json.loads((tmp_path / 'run' / 'config.json').read_text())
  assert stored['attack']['critic_condition'] == 'projection'
  results = json.loads((tmp_path / 'run' / 'results.json').read_text())
  assert results['steps'] == 2 and results['selection']['realism'] == 2
  again = run_main(tmp_path / 'run', root / 'tfds', *args)
  assert again.returncode == 0, again.stderr[-3000:]
  assert 'resumed from' in again.stderr and 'at generator step 2' in again.stderr


def test_results_table_columns_line_up_for_long_target_names():
  from c2g_jax import audit
  from c2g_jax import report
  from c2g_jax.train import format_results

  names = ['Brad Pitt', '3']
  probs = lambda labels: np.eye(2)[np.asarray(labels)]
  judged = audit.judge(
      names,
      [0, 1],
      {'vgg': probs([[0, 0, 1, 1], [1, 1, 1, 1]])},
      {'vgg': probs([[1, 1, 1, 1], [0, 0, 1, 1]])},
      {'vgg': 0.75},
      0.5,
      'vgg',
      real_shares={'vgg': [0.75, None]},  # no real test images of '3'
  )
  numbers = printout_numbers(names, [0.5, 1.0], [0.5, 0.25])
  r = {
      'setting': 's',
      'steps': 4,
      'f_test_accuracy': 0.5,
      'samples_per_target': 4,
      **report.summary(
          numbers,
          'page',
          dict(
              judged,
              evaluators={
                  k: dict(v, validation_accuracy=None, architecture='vgg')
                  for k, v in judged['evaluators'].items()
              },
          ),
      ),
  }
  text = format_results(r)
  lines = text.splitlines()
  assert lines[1] == 'VERDICT: ' + judged['verdict']
  # The per-target leak rows come before the evaluators' table.
  brad = [l for l in lines if l.strip().startswith('Brad Pitt  ')][0]
  assert '0.500 [' in brad and '+0.500 [' in brad
  header = [l for l in lines if l.rstrip().endswith('mean') and 'Brad Pitt' in l][0]
  ours = [l for l in lines if l.startswith("f'[vgg] 0.7500*")][0]
  control = [l for l in lines if l.startswith('  control')][0]
  real = [l for l in lines if l.startswith('  real test images')][0]
  assert real.endswith('   0.750')  # the mean over the targets that have real images
  assert not any(l.startswith('+ ') for l in lines)
  # A judge whose leak lies wholly above the headline's is marked, and the mark explained.
  marked = format_results(dict(r, headline_evaluator='other', larger_leak={'evaluator': 'vgg'}))
  assert any(l.startswith("f'[vgg] 0.7500+ ") for l in marked.splitlines())
  assert marked.splitlines()[-1] == (
      "+ its leak lies wholly above the headline's: decide by the larger leak"
  )
  sel = {'pool': 4, 'views': 8, 'kept': 4, 'candidates': 16, 'realism': 2}
  selected = format_results(dict(r, selection=sel, raw_inception_accuracy_mean=0.5))
  assert (
      "final selection: 4 of 16 draws per target, by f's confidence over 8 warps (then the "
      "critic's: 4 of f's 8); f'[vgg] mean 0.500 raw -> 0.750 selected"
  ) in selected
  no_images = dict(r['evaluators']['vgg'], real={n: None for n in names}, real_mean=None)
  text = format_results(dict(r, evaluators={'vgg': no_images}))
  (row,) = [l for l in text.splitlines() if l.startswith('  real test images')]
  assert row.split()[3:] == ['-', '-', '-']  # no real images of either target, no mean
  for line, values in (
      (ours, ['0.50', '1.00']),
      (control, ['0.00', '0.50']),
      (real, ['0.75', '-']),
  ):
    for name, value in zip(names, values):  # each value ends where its target's name ends
      assert header.index(name) + len(name) == line.index(value) + len(value), (header, line)


def test_matplotlib_is_imported_only_for_the_report():
  # main.py's start (and so every run that stops early: bad input, a signal,
  # process 1 of a multi-host job) does without matplotlib's 0.6 s import.
  script = 'import sys, main; print("matplotlib" in sys.modules, "c2g_jax.report" in sys.modules)'
  out = subprocess.run([sys.executable, '-c', script], cwd=REPO, capture_output=True, text=True)
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.split() == ['False', 'False']
