"""Robustness: exact resume after SIGKILL, the divergence guard, checked start-up,
safe work directories.

The end-to-end tests run `python main.py` on the tiny config with a released f
(a random tiny classifier, used as f and f') so nothing is trained but the
attack; the subprocesses share a persistent XLA compilation cache, so only the
first compiles.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import pytest

from c2g_jax import attack as attack_lib
from c2g_jax import checkpoint
from c2g_jax import guard
from c2g_jax import networks
from c2g_jax import recipes
from c2g_jax import train
from c2g_jax import workdir as workdir_lib
from shared_helpers import RELEASED_F_META, main_in_process, metrics

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 24
# The metadata of conftest's released_f, the f (and f') of these runs.
META = RELEASED_F_META


@pytest.fixture(scope='module')
def env(tmp_path_factory, released_f):
  root = tmp_path_factory.mktemp('robust')
  shutil.copytree(released_f[0], root / 'f')  # the session's random tiny classifier
  assert released_f[2] == META
  # The session's cache (tests/conftest.py) when there is one: the tiny attack's
  # programs are then those test_main.py's runs already compiled.
  environ = dict(
      os.environ,
      JAX_PLATFORMS='cpu',
      JAX_COMPILATION_CACHE_DIR=os.environ.get('JAX_COMPILATION_CACHE_DIR')
      or str(root / 'xla_cache'),
      JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0',
      JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES='-1',
  )
  return root, environ


def main_cmd(root, workdir, *extra):
  f = str(root / 'f')
  return [
      sys.executable,
      'main.py',
      f"--config={os.path.join(REPO, 'configs', 'emnist.py')}:numeric_mutually_exclusive,tiny",
      f'--workdir={workdir}',
      f'--config.classifier.checkpoint={f}',
      f'--config.evaluators={f}',
      f'--config.attack.steps={STEPS}',
      '--config.checkpoint_every_steps=4',
      '--config.sample_every_steps=1000',
      '--config.log_every_steps=8',
      *extra,
  ]


def run_main(env, workdir, *extra, devices=None):
  root, environ = env
  if devices:
    environ = dict(
        environ,
        XLA_FLAGS=(
            environ.get('XLA_FLAGS', '') + f' --xla_force_host_platform_device_count={devices}'
        ),
    )
  return subprocess.run(
      main_cmd(root, workdir, *extra),
      cwd=REPO,
      env=environ,
      capture_output=True,
      text=True,
      timeout=600,
  )


def start_up(env, workdir, *extra):
  """The command of run_main for a run that stops at start-up (a bad input),
  run in this process: the same flag parsing and main function without a Python
  and jax start. Two start-up failures below stay real subprocesses, the whole
  command line: the unknown key, and the batch size on 2 devices."""
  root, _ = env
  return main_in_process(main_cmd(root, workdir, *extra)[2:])


def error_line(out):
  """The run's one-line error: the only stderr line starting with 'error:'."""
  lines = [l for l in out.stderr.splitlines() if l.startswith('error:')]
  assert len(lines) == 1, out.stderr[-3000:]
  return lines[0]


def finished_steps(ckpt_dir):
  if not os.path.isdir(ckpt_dir):
    return []
  return sorted(int(d) for d in os.listdir(ckpt_dir) if d.isdigit())


def saved_state(workdir, step):
  return ocp.StandardCheckpointer().restore(
      os.path.join(workdir, 'checkpoints', str(step), 'state')
  )


def assert_same_state(a, b):
  leaves_a, tree_a = jax.tree.flatten(a)
  leaves_b, tree_b = jax.tree.flatten(b)
  assert tree_a == tree_b
  for x, y in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))  # bit-identical


@pytest.fixture(scope='module')
def uninterrupted(env):
  root, _ = env
  out = run_main(env, root / 'uninterrupted')
  assert out.returncode == 0, out.stderr[-3000:]
  return root / 'uninterrupted'


# --- exact resume -----------------------------------------------------------------

# The attack's resume is checked without the control (eval.* may change between
# starts, and `uninterrupted` still ran it): the control's own kill and resume
# are test_kill_during_the_control_resumes_it's. One workdir takes SIGTERM, then
# SIGKILL, then finishes: a start fewer than a workdir for each.
NO_CONTROL = ('--config.eval.control=False',)


def test_sigterm_then_sigkill_then_the_same_command_ends_bit_identical(env, uninterrupted):
  """One workdir through the two ways a run ends early, each start the same command:
  SIGTERM (a scheduler's preemption notice) saves the chunk in flight and exits
  143; the next start resumes there and is SIGKILLed while a save is half-written;
  the third resumes from the newest finished checkpoint and ends bit-identical to
  the uninterrupted run, its metrics and samples as if never stopped."""
  root, environ = env
  workdir = root / 'interrupted'
  proc = subprocess.Popen(
      main_cmd(root, workdir, *NO_CONTROL),
      cwd=REPO,
      env=environ,
      stdout=subprocess.DEVNULL,
      stderr=subprocess.PIPE,
      text=True,
  )
  # As a scheduler would: SIGTERM once training runs (its first chunk is logged).
  log = workdir / 'metrics.jsonl'
  deadline = time.time() + 500
  while proc.poll() is None and time.time() < deadline:
    if log.exists() and log.read_text().strip():
      break
    time.sleep(0.005)
  proc.send_signal(signal.SIGTERM)
  _, stderr = proc.communicate(timeout=300)
  assert proc.returncode == 128 + signal.SIGTERM, stderr[-3000:]
  line = [l for l in stderr.splitlines() if l.startswith('stopped:')]
  assert len(line) == 1 and 'stopped by SIGTERM at generator step' in line[0], stderr[-3000:]
  stopped_at = int(line[0].split('generator step ')[1].split('/')[0])
  assert 0 < stopped_at < STEPS
  # The chunk in flight was saved, whatever the cadence: nothing is lost.
  assert finished_steps(workdir / 'checkpoints')[-1] == stopped_at
  assert not (workdir / 'results.json').exists()

  # The same command continues from stopped_at; kill it while a save is half-written
  # (Orbax's temporary folder exists), or failing that once it finished 3 checkpoints.
  with open(root / 'killed.log', 'w') as err:
    proc = subprocess.Popen(
        main_cmd(root, workdir, *NO_CONTROL),
        cwd=REPO,
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=err,
    )
  deadline = time.time() + 500
  while proc.poll() is None and time.time() < deadline:
    done = [d for d in finished_steps(workdir / 'checkpoints') if d > stopped_at]
    if len(done) >= 3 or any('tmp' in d for d in os.listdir(workdir / 'checkpoints')):
      break
    time.sleep(0.01)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert proc.returncode == -signal.SIGKILL, 'the run ended before it could be killed'
  assert f'at generator step {stopped_at}' in (root / 'killed.log').read_text()
  at_kill = finished_steps(workdir / 'checkpoints')
  assert at_kill[-1] < STEPS and not (workdir / 'results.json').exists()

  out = run_main(env, workdir, *NO_CONTROL)  # the same command again
  assert out.returncode == 0, out.stderr[-3000:]
  resumed_at = int(out.stderr.split('at generator step ')[1].split()[0])
  assert at_kill[-1] <= resumed_at < STEPS
  assert 'f: epoch' not in out.stderr  # f was loaded, nothing retrained

  b = saved_state(workdir, STEPS)
  assert_same_state(saved_state(uninterrupted, STEPS), b)
  assert int(b['step']) == STEPS
  # metrics.jsonl reads as one uninterrupted run: the stopped and killed runs' lines
  # past the restored step were dropped, so every chunk appears once with the same values.
  assert metrics(workdir) == metrics(uninterrupted)
  assert [r['step'] for r in metrics(workdir)] == list(range(2, STEPS + 1, 2))
  assert (workdir / 'samples.png').read_bytes() == (uninterrupted / 'samples.png').read_bytes()
  # Keep-last-3 over the cadence of 4 steps.
  assert finished_steps(workdir / 'checkpoints') == [16, 20, 24]


# --- the gamma = 0 control -----------------------------------------------------------


def test_control_equals_a_separate_gamma_zero_run(env, uninterrupted):
  """The audit's control is exactly what `--config.attack.gamma_increment=0` trains."""
  root, _ = env
  out = run_main(
      env, root / 'gamma0', '--config.attack.gamma_increment=0', '--config.eval.control=False'
  )
  assert out.returncode == 0, out.stderr[-3000:]
  assert_same_state(
      saved_state(root / 'gamma0', STEPS), saved_state(uninterrupted / 'control', STEPS)
  )
  # ... and differs from the attack, whose generator felt gamma.
  attack_g = jax.tree.leaves(saved_state(uninterrupted, STEPS)['g_params'])
  control_g = jax.tree.leaves(saved_state(uninterrupted / 'control', STEPS)['g_params'])
  assert any(not np.array_equal(a, c) for a, c in zip(attack_g, control_g))
  results = json.loads((uninterrupted / 'results.json').read_text())
  leak = results['leak']
  assert leak['evaluator'] == results['headline_evaluator']
  for row in leak['per_target']:
    assert row['leak'] == pytest.approx(row['attack'] - row['control'])
    assert row['leak_ci'][0] <= row['leak'] <= row['leak_ci'][1]
  # The control's shares are those f' gives the control's samples.
  assert results['control_inception_accuracy'] == {
      r['name']: r['control'] for r in leak['per_target']
  }


def test_kill_during_the_control_resumes_it(env, uninterrupted):
  root, environ = env
  workdir = root / 'killed_control'
  # The uninterrupted run's finished attack, as the killed run would have left it
  # before its control started (training the same 24 steps again would add nothing).
  shutil.copytree(uninterrupted, workdir)
  shutil.rmtree(workdir / 'control')
  shutil.rmtree(workdir / 'report')
  (workdir / 'results.json').unlink()
  proc = subprocess.Popen(
      main_cmd(root, workdir),
      cwd=REPO,
      env=environ,
      stdout=subprocess.DEVNULL,
      stderr=subprocess.DEVNULL,
  )
  control = workdir / 'control' / 'checkpoints'
  deadline = time.time() + 500
  while proc.poll() is None and time.time() < deadline:
    done = finished_steps(control)
    if done and done[-1] < STEPS:
      break
    time.sleep(0.01)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert proc.returncode == -signal.SIGKILL, 'the run ended before it could be killed'
  at_kill = finished_steps(control)[-1]
  assert finished_steps(workdir / 'checkpoints')[-1] == STEPS  # the attack had finished

  out = run_main(env, workdir)  # the same command again
  assert out.returncode == 0, out.stderr[-3000:]
  assert f'at generator step {STEPS}' in out.stderr  # the attack: nothing left to do
  resumed = int(
      out.stderr.split('control: resumed from ')[1].split('at generator step ')[1].split()[0]
  )
  assert at_kill <= resumed < STEPS
  assert_same_state(
      saved_state(uninterrupted / 'control', STEPS), saved_state(workdir / 'control', STEPS)
  )
  assert (
      json.loads((workdir / 'results.json').read_text())['leak']
      == json.loads((uninterrupted / 'results.json').read_text())['leak']
  )


def test_stop_request_records_the_signal_and_restores_the_handlers():
  from c2g_jax import preemption

  before = signal.getsignal(signal.SIGTERM)
  with preemption.StopRequest() as stop:
    assert stop.requested is None
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.01)  # the handler runs between bytecodes
    assert stop.requested == signal.SIGTERM and stop.name == 'SIGTERM'
    # A second SIGTERM would now take the previous (default) action: not caught again.
    assert signal.getsignal(signal.SIGTERM) == before
  assert signal.getsignal(signal.SIGTERM) == before


# --- the divergence guard ------------------------------------------------------------


def test_diverged_run_exits_3_and_keeps_the_last_good_checkpoint(env, uninterrupted):
  # Poison the finished run's newest state, then ask for 4 more steps (attack.steps
  # may change between starts): the first chunk produces NaN losses.
  root, _ = env
  workdir = root / 'diverged'
  shutil.copytree(uninterrupted, workdir)
  from configs import emnist

  config = emnist.get_config('numeric_mutually_exclusive,tiny')
  f_module = networks.Classifier(num_classes=10, dataset='emnist', width=0.125)
  problem = type(
      'P',
      (),
      {
          'dataset': 'emnist',
          'label_names': META['label_names'],
          'aux_x': np.zeros((1, 28, 28, 1), np.uint8),
      },
  )
  attack = train.build_attack(config, problem, f_module, META, jax.make_mesh((1,), ('data',)))
  abstract = jax.eval_shape(lambda: attack.init(jax.random.PRNGKey(0)))
  ckpts = checkpoint.AttackCheckpoints(str(workdir / 'checkpoints'))
  state, _ = ckpts.restore(abstract)
  state = state.replace(d_params=jax.tree.map(lambda x: x * np.nan, state.d_params))
  os.rename(workdir / 'checkpoints', workdir / 'good_checkpoints')
  ckpts.close()
  ckpts = checkpoint.AttackCheckpoints(str(workdir / 'checkpoints'))
  ckpts.save(STEPS, state, {'step': STEPS})
  ckpts.close()
  before = sorted(os.listdir(workdir / 'checkpoints'))

  out = run_main(env, workdir, f'--config.attack.steps={STEPS + 4}')
  assert out.returncode == 3, out.stderr[-3000:]
  line = error_line(out)
  assert line.startswith(
      f'error: training diverged: critic_loss is nan at generator step '
      f'{STEPS + 1}; the last good checkpoint is step {STEPS}'
  ), line
  assert sorted(os.listdir(workdir / 'checkpoints')) == before  # the bad state not saved
  assert not (workdir / 'results.json').exists() or (
      json.loads((workdir / 'results.json').read_text())['steps'] == STEPS
  )


class FakeAttack:
  """An 'attack' whose losses turn NaN at data['bad_step'], for the loop alone."""

  def run(self, state, data, n):
    def body(s, _):
      step = s.step + 1
      loss = jnp.where(step == data['bad_loss_step'], jnp.nan, 1.0)
      d = jax.tree.map(
          lambda w: jnp.where(step == data['bad_param_step'], jnp.inf, w + 1), s.d_params
      )
      names = (
          'critic_loss',
          'wasserstein',
          'gradient_penalty',
          'generator_loss',
          'similarity',
          'gamma',
      )
      return s.replace(step=step, d_params=d), {k: loss for k in names}

    return jax.lax.scan(body, state, None, length=n)


def fake_state():
  return attack_lib.AttackState(
      step=jnp.int32(0),
      g_params={'w': jnp.zeros(2)},
      d_params={'w': jnp.zeros(2)},
      g_opt_state=(),
      d_opt_state=(),
      rng=jax.random.PRNGKey(0),
  )


def loop_config(steps=12, per_call=3, every=4, secs=1e9):
  return ml_collections.ConfigDict(
      {
          'attack': {'steps': steps, 'iterations_per_call': per_call},
          'checkpoint_every_steps': every,
          'checkpoint_every_secs': secs,
          'log_every_steps': 100,
          'sample_every_steps': 100,
      }
  )


def run_loop(tmp_path, config, bad_loss_step=-1, bad_param_step=-1, keep=10):
  os.makedirs(tmp_path, exist_ok=True)
  ckpts = checkpoint.AttackCheckpoints(str(tmp_path / 'ckpt'), max_to_keep=keep)
  log = train.MetricsLog(str(tmp_path / 'metrics.jsonl'), 0)
  data = {'bad_loss_step': jnp.int32(bad_loss_step), 'bad_param_step': jnp.int32(bad_param_step)}
  try:
    return train.attack_loop(FakeAttack(), fake_state(), data, config, ckpts, log), ckpts
  finally:
    ckpts.close()
    log.close()


def test_guard_names_the_step_and_loss_and_saves_nothing_bad(tmp_path):
  with pytest.raises(guard.DivergenceError) as e:
    run_loop(tmp_path, loop_config(), bad_loss_step=8)
  # Chunks of 3 end at 3, 6, 9: the step-4 checkpoint lands at 6; the chunk 7..9 is bad.
  assert 'critic_loss is nan at generator step 8' in str(e.value)
  assert 'the last good checkpoint is step 6' in str(e.value)
  assert finished_steps(tmp_path / 'ckpt') == [6]


def test_guard_catches_non_finite_parameters(tmp_path):
  with pytest.raises(
      guard.DivergenceError,
      match=r"the critic's parameters \(d_params\) hold "
      'NaN or infinity after generator step 3; no checkpoint',
  ):
    run_loop(tmp_path, loop_config(), bad_param_step=2)
  assert finished_steps(tmp_path / 'ckpt') == []


def test_checkpoint_cadence_by_steps_time_and_keep_last(tmp_path):
  state, _ = run_loop(tmp_path / 'steps', loop_config(steps=10, per_call=3, every=4), keep=2)
  assert int(state.step) == 10
  # Crossing 4 at chunk end 6 and 8 at 9, and the end; the newest 2 are kept.
  assert finished_steps(tmp_path / 'steps' / 'ckpt') == [9, 10]
  run_loop(tmp_path / 'time', loop_config(steps=9, per_call=3, every=1000, secs=1e-9))
  assert finished_steps(tmp_path / 'time' / 'ckpt') == [3, 6, 9]


def test_chunks_realign_after_a_resume_from_any_step():
  assert train.chunk_length(0, 10, 4) == 4
  assert train.chunk_length(5, 20, 4) == 3  # e.g. a wall-time checkpoint at step 5
  assert train.chunk_length(8, 10, 4) == 2


def test_find_divergence_is_none_for_finite_values():
  m = {'critic_loss': np.ones(3), 'gamma': np.zeros(3)}
  assert guard.find_divergence(m, {'g_params': True, 'd_params': True}, 0) is None
  m['gamma'] = np.array([0.0, np.inf, np.nan])
  assert guard.find_divergence(m, {}, 10) == 'gamma is inf at generator step 12'


# --- the publisher side survives a kill ---------------------------------------------------


def _training_config(**extra):
  """A classifier's training settings for publish(), whose training the tests replace."""
  return ml_collections.ConfigDict(
      {
          'architecture': 'classifier',
          'width': 0.125,
          'epochs': 1,
          'batch_size': 8,
          'learning_rate': 1e-3,
          **extra,
      }
  )


def _blank_problem(test_images: int):
  """Four private images and test_images test images of a 10-class EMNIST problem."""
  return type(
      'P',
      (),
      {
          'dataset': 'emnist',
          'label_names': META['label_names'],
          'private_x': np.zeros((4, 28, 28, 1), np.uint8),
          'private_y': np.zeros(4, np.int32),
          'test_x': np.zeros((test_images, 28, 28, 1), np.uint8),
          'test_y': np.zeros(test_images, np.int32),
      },
  )


def test_half_written_classifier_in_the_workdir_is_trained_again(tmp_path, monkeypatch, released_f):
  variables = released_f[1]
  calls = []
  monkeypatch.setattr(train.classifier, 'train', lambda *a, **k: calls.append(1) or variables)
  monkeypatch.setattr(train.classifier, 'accuracy', lambda *a, **k: 0.5)
  cfg = _training_config(checkpoint='')
  problem = _blank_problem(0)
  path = tmp_path / 'classifier'
  os.makedirs(path / '0.orbax-checkpoint-tmp' / 'variables')  # killed mid-save
  _, loaded, meta = train.publish(cfg, problem, str(path), 0, 'f')
  assert calls == [1] and meta['num_classes'] == 10
  assert sorted(os.listdir(path)) == ['0']  # finished; the leftovers are gone
  train.publish(cfg, problem, str(path), 0, 'f')
  assert calls == [1]  # a finished checkpoint is loaded, not retrained


@pytest.mark.parametrize(
    'beat, accuracies, max_seeds, seeds, chosen',
    [
        (0.9, [0.8, 0.95, 0.99], 3, [5, 1005], 1005),  # stops at the first as good as f
        (0.99, [0.8, 0.85, 0.82], 3, [5, 1005, 2005], 1005),  # none is: the most accurate
        (0.99, [0.8, 0.9, 0.9], 1, [5], 5),  # max_seeds 1: trained once
        (None, [0.8, 0.9, 0.9], 3, [5], 5),  # f itself: nothing to beat
    ],
)
def test_an_evaluator_weaker_than_f_is_trained_again_and_the_best_kept(
    tmp_path, monkeypatch, released_f, beat, accuracies, max_seeds, seeds, chosen
):
  trained = []
  by_seed = dict(zip([5, 1005, 2005], accuracies))
  monkeypatch.setattr(
      train.classifier, 'train', lambda *a, seed, **k: trained.append(seed) or released_f[1]
  )
  monkeypatch.setattr(train.classifier, 'accuracy', lambda *a, **k: by_seed[trained[-1]])
  cfg = _training_config(max_seeds=max_seeds)
  _, _, meta = train.publish(cfg, _blank_problem(2), str(tmp_path / 'e'), 5, "f'[x]", beat=beat)
  assert trained == seeds
  assert meta['seed'] == chosen and meta['test_accuracy'] == by_seed[chosen]
  if len(seeds) > 1:
    assert meta['seeds_tried'] == {str(s): by_seed[s] for s in seeds}
  else:
    assert 'seeds_tried' not in meta


def test_the_retraining_rule_compares_balanced_accuracies(tmp_path, monkeypatch, released_f):
  # A judge with the higher plain accuracy but the lower balanced one is retrained.
  trained = []
  monkeypatch.setattr(
      train.classifier, 'train', lambda *a, seed, **k: trained.append(seed) or released_f[1]
  )
  monkeypatch.setattr(train.classifier, 'accuracy', lambda *a, **k: 0.95)
  balanced = {5: 0.70, 1005: 0.85}
  monkeypatch.setattr(train.classifier, 'balanced_accuracy', lambda *a, **k: balanced[trained[-1]])
  cfg = _training_config(max_seeds=3)
  _, _, meta = train.publish(cfg, _blank_problem(2), str(tmp_path / 'e'), 5, "f'[x]", beat=0.8)
  assert trained == [5, 1005]
  assert meta['test_accuracy'] == 0.95 and meta['balanced_test_accuracy'] == 0.85
  assert meta['seeds_tried'] == {'5': 0.70, '1005': 0.85}


# --- checked start-up through main.py: exit status 2, one line, nothing written ------------


def test_bad_evaluators_exit_2_before_anything_is_written(env, released_f, tmp_path):
  """An unknown evaluator name, or a released one of other classes: one line, exit 2."""
  out = start_up(env, tmp_path / 'w', '--config.evaluators=resnet,nosuch')
  assert out.returncode == 2, out.stderr[-3000:]
  line = error_line(out)
  assert "config.evaluators: 'nosuch' is not an evaluator architecture" in line
  assert not (tmp_path / 'w').exists()
  # The same variables released as a classifier of other classes (in another order).
  other = str(tmp_path / 'other_order')
  checkpoint.save_classifier(
      other, released_f[1], dict(META, label_names=META['label_names'][::-1])
  )
  out = start_up(env, tmp_path / 'w', f'--config.evaluators=resnet,{other}')
  assert out.returncode == 2, out.stderr[-3000:]
  assert "f'[other_order]'s class 0 is '9' but the experiment's is '0'" in error_line(out)
  assert not (tmp_path / 'w').exists()


def test_unknown_config_key_exits_2(env, tmp_path):
  out = run_main(env, tmp_path / 'w', '--config.attack.stepz=3')
  assert out.returncode == 2
  assert out.stderr.strip() == (
      "error: --config.attack.stepz: the config has no key 'stepz' "
      '(Did you mean "steps" instead of "stepz"?); see the config '
      'file for its keys'
  )
  assert not (tmp_path / 'w').exists()


def test_bad_recipe_exits_2_naming_the_key(env, tmp_path):
  out = start_up(env, tmp_path / 'w', '--config.attack.recipe=best')
  assert out.returncode == 2
  assert error_line(out) == (
      "error: config.attack.recipe='best' is not one of "
      "('paper', 'strong', 'faces'): set --config.attack.recipe"
  )
  assert not (tmp_path / 'w').exists()


def test_workdir_of_another_config_is_refused_and_left_alone(env, uninterrupted):
  snapshot = {
      p: os.path.getmtime(os.path.join(d, p))
      for d, _, files in os.walk(uninterrupted)
      for p in files
  }
  config_json = (uninterrupted / 'config.json').read_bytes()
  out = start_up(env, uninterrupted, '--config.attack.learning_rate=0.001')
  assert out.returncode == 2
  assert 'attack.learning_rate: 0.0002 -> 0.001' in error_line(out)
  assert '--restart' in error_line(out) and '--continue_anyway' in error_line(out)
  assert (uninterrupted / 'config.json').read_bytes() == config_json
  assert snapshot == {
      p: os.path.getmtime(os.path.join(d, p))
      for d, _, files in os.walk(uninterrupted)
      for p in files
  }
  both = start_up(env, uninterrupted, '--restart', '--continue_anyway')
  assert both.returncode == 2 and 'give one of them' in error_line(both)


def test_control_folder_of_another_config_is_refused_and_left_alone(env, uninterrupted):
  """An unfinished control from another config inside the workdir: exit 2, nothing written."""
  root, _ = env
  workdir = root / 'foreign_control'
  shutil.copytree(uninterrupted, workdir)
  (workdir / 'results.json').unlink()
  control_config = workdir / 'control' / 'config.json'
  foreign = json.loads(control_config.read_text())
  foreign['seed'] = 7
  control_config.write_text(json.dumps(foreign))
  for step in finished_steps(workdir / 'control' / 'checkpoints')[1:]:
    shutil.rmtree(workdir / 'control' / 'checkpoints' / str(step))  # unfinished
  before = {
      os.path.join(d, p): os.path.getmtime(os.path.join(d, p))
      for d, _, files in os.walk(workdir)
      for p in files
  }
  out = start_up(env, workdir)
  assert out.returncode == 2, out.stderr[-3000:]
  line = error_line(out)
  assert 'control' in line and 'holds a run with another config (seed: 7 -> 0)' in line
  assert before == {
      os.path.join(d, p): os.path.getmtime(os.path.join(d, p))
      for d, _, files in os.walk(workdir)
      for p in files
  }


def test_batch_size_not_divisible_by_devices_exits_2_before_training(env, tmp_path):
  out = run_main(env, tmp_path / 'w', '--config.attack.batch_size=3', devices=2)
  assert out.returncode == 2
  assert error_line(out) == (
      'error: config.attack.batch_size=3 is not divisible by the 2 '
      'devices: set --config.attack.batch_size to a multiple of 2'
  )
  assert not (tmp_path / 'w').exists() and 'auxiliary (D_aux) images' not in out.stderr


# --- the work directory's config check, in process --------------------------------------------


def cfg_dict(**changes):
  c = {
      'seed': 0,
      'log_every_steps': 10,
      'attack': {'steps': 10, 'learning_rate': 2e-4, 'iterations_per_call': 5},
  }
  for k, v in changes.items():
    section, _, key = k.rpartition('.')
    (c[section] if section else c)[key] = v
  return c


def test_workdir_resume_free_fields_restart_and_continue(tmp_path):
  w = str(tmp_path / 'run')
  plan = workdir_lib.prepare(w, cfg_dict())
  assert plan.action == 'new'
  plan.commit()
  open(os.path.join(w, 'metrics.jsonl'), 'w').close()
  # Logging cadence, steps and chunking may change: same run.
  assert (
      workdir_lib.prepare(
          w, cfg_dict(**{'attack.steps': 50, 'log_every_steps': 1, 'attack.iterations_per_call': 7})
      ).action
      == 'resume'
  )
  changed = cfg_dict(seed=1)
  with pytest.raises(workdir_lib.WorkdirError, match='seed: 0 -> 1'):
    workdir_lib.prepare(w, changed)
  # --continue_anyway keeps the old config beside the new one.
  workdir_lib.prepare(w, changed, 'continue').commit()
  kept = [f for f in os.listdir(w) if f.startswith('config.') and f != 'config.json']
  assert len(kept) == 1 and json.load(open(os.path.join(w, kept[0])))['seed'] == 0
  assert json.load(open(os.path.join(w, 'config.json')))['seed'] == 1
  # --restart moves the whole run aside; nothing is deleted.
  workdir_lib.prepare(w, cfg_dict(seed=2), 'restart').commit()
  moved = [d for d in os.listdir(tmp_path) if d.startswith('run.old-')]
  assert len(moved) == 1 and os.path.exists(tmp_path / moved[0] / 'metrics.jsonl')
  assert sorted(os.listdir(w)) == ['config.json']


def test_a_run_stored_before_a_key_was_added_resumes_when_the_key_keeps_the_old_behaviour(
    tmp_path,
):
  # attack.grey_output came after runs were stored; those ran with G's colours as
  # drawn, which is 'off'.
  w = str(tmp_path / 'run')
  workdir_lib.prepare(w, cfg_dict()).commit()
  assert 'grey_output' not in json.load(open(os.path.join(w, 'config.json')))['attack']
  assert workdir_lib.prepare(w, cfg_dict(**{'attack.grey_output': 'off'})).action == 'resume'
  assert workdir_lib.same_config(
      workdir_lib.read_config(w), cfg_dict(**{'attack.grey_output': 'off'})
  )
  with pytest.raises(workdir_lib.WorkdirError, match="attack.grey_output: 'off' -> 'on'"):
    workdir_lib.prepare(w, cfg_dict(**{'attack.grey_output': 'on'}))
  assert not workdir_lib.same_config(
      workdir_lib.read_config(w), cfg_dict(**{'attack.grey_output': 'on'})
  )


def test_a_run_records_what_its_recipe_gave_and_is_not_resumed_under_a_redefined_one(
    tmp_path, monkeypatch
):
  w = str(tmp_path / 'run')
  strong = cfg_dict(**{'attack.recipe': 'strong'})
  workdir_lib.prepare(w, strong).commit()
  stored = json.load(open(os.path.join(w, 'config.json')))['attack']['recipe_values']
  hyper = attack_lib.Hyper.from_config(strong['attack'])
  assert stored == {k: getattr(hyper, k) for k in recipes.PAPER_VALUES}
  assert stored['onehot_share'] == 0.25 and stored['similarity_views'] == 9
  assert workdir_lib.prepare(w, strong).action == 'resume'
  # 'strong' redefined after the run started: refused, though the config asks
  # for the same recipe by name.
  monkeypatch.setitem(recipes.RECIPES, 'strong', {**recipes.RECIPES['strong'], 'onehot_share': 0.5})
  with pytest.raises(workdir_lib.WorkdirError, match='recipe_values.onehot_share: 0.25 -> 0.5'):
    workdir_lib.prepare(w, strong)


def test_a_run_stored_before_the_record_is_read_with_the_recipes_it_ran_with(tmp_path):
  # Until 70e816d 'strong' had no one-hot rows; a run stored then must not gain
  # them on resume. The refusal names the flags that continue it as it ran, and
  # those flags give the values it ran with.
  w = tmp_path / 'run'
  w.mkdir()
  old = cfg_dict(**{'attack.recipe': 'strong'})
  (w / 'config.json').write_text(json.dumps(old))
  with pytest.raises(workdir_lib.WorkdirError) as e:
    workdir_lib.prepare(str(w), old)
  message = str(e.value)
  assert 'recipe_values.onehot_share: 0.0 -> 0.25' in message and '\n' not in message
  flags = message.split('add --continue_anyway ')[1].split(')')[0].split()
  assert flags == [
      '--config.attack.recipe=paper',
      '--config.attack.similarity_views=9',
      '--config.attack.similarity=max_margin',
      '--config.attack.selection_pool=4',
  ]
  as_it_ran = cfg_dict(  # what those flags set
      **{
          'attack.recipe': 'paper',
          'attack.similarity_views': 9,
          'attack.similarity': 'max_margin',
          'attack.selection_pool': 4,
      }
  )
  plan = workdir_lib.prepare(str(w), as_it_ran, 'continue')
  assert not [k for k, _, _ in plan.changes if 'recipe_values' in k]
  plan.commit()
  assert workdir_lib.prepare(str(w), as_it_ran).action == 'resume'
  hyper = attack_lib.Hyper.from_config(as_it_ran['attack'])
  assert (hyper.onehot_share, hyper.similarity_views, hyper.similarity) == (0.0, 9, 'max_margin')


def test_the_paper_values_of_the_recipes_are_the_hyperparameters_defaults():
  paper = attack_lib.Hyper()
  assert recipes.PAPER_VALUES == {k: getattr(paper, k) for k in recipes.PAPER_VALUES}
  for table in (recipes.RECIPES, recipes.BEFORE_RECORD):
    for recipe in table.values():
      assert set(recipe) <= set(recipes.PAPER_VALUES)
  # An explicit value wins over the recipe; a key at the paper's value takes it.
  cfg = {'recipe': 'strong', 'similarity_views': 4}
  assert recipes.resolve(cfg) == {
      'similarity_views': 4,
      'similarity': 'max_margin',
      'onehot_share': 0.25,
      'selection_pool': 4,
      'view_blur': 0.0,
      'grey_output': 'off',
  }
  faces = recipes.resolve({'recipe': 'faces', 'view_blur': 1.0})
  assert (faces['view_blur'], faces['grey_output'], faces['similarity_views']) == (1.0, 'auto', 9)


def test_a_run_recorded_before_the_faces_recipe_resumes_as_it_ran(tmp_path):
  # Until the 'faces' recipe the record held four keys; view_blur and grey_output
  # were then the config's own, so they are read from the stored config, not
  # taken for a change of what the recipe gives (which would refuse every run).
  for extra in ({}, {'attack.view_blur': 2.0, 'attack.grey_output': 'auto'}):
    w = tmp_path / f'run{len(extra)}'
    w.mkdir()
    cfg = cfg_dict(**{'attack.recipe': 'strong', **extra})
    old = json.loads(json.dumps(cfg))
    old['attack']['recipe_values'] = {
        'similarity_views': 9,
        'similarity': 'max_margin',
        'onehot_share': 0.25,
        'selection_pool': 4,
    }
    (w / 'config.json').write_text(json.dumps(old))
    assert workdir_lib.prepare(str(w), cfg).action == 'resume'
  # Asked to blur more, the stored run's own blur is the old value of both keys.
  more = cfg_dict(
      **{'attack.recipe': 'strong', 'attack.view_blur': 3.0, 'attack.grey_output': 'auto'}
  )
  assert workdir_lib.config_changes(old, more) == [
      ('attack.recipe_values.view_blur', 2.0, 3.0),
      ('attack.view_blur', 2.0, 3.0),
  ]


def test_workdir_that_is_not_a_run_is_never_used(tmp_path):
  (tmp_path / 'notes.txt').write_text('mine')
  for mode in workdir_lib.MODES:
    with pytest.raises(workdir_lib.WorkdirError, match='holds no config.json'):
      workdir_lib.prepare(str(tmp_path), cfg_dict(), mode)
  assert os.listdir(tmp_path) == ['notes.txt']
  with pytest.raises(workdir_lib.WorkdirError, match='is a file'):
    workdir_lib.prepare(str(tmp_path / 'notes.txt'), cfg_dict())


def test_rate_meter_leaves_the_compile_out_of_the_steady_rate():
  """Progress lines: after the first chunk the rate and ETA ignore its compile time."""
  from c2g_jax.train import RateMeter

  meter = RateMeter()
  meter.start_chunk(0.0)
  assert meter.end_chunk(100, 100, 20.0) == pytest.approx(5.0)  # 20 s: mostly compile
  meter.start_chunk(20.0)
  assert meter.end_chunk(200, 100, 21.0) == pytest.approx(100.0)
  meter.start_chunk(21.0)
  assert meter.end_chunk(300, 100, 23.0) == pytest.approx(200 / 3.0)  # steps 100-300 in 3 s


def test_the_view_blur_acts_through_f_so_the_control_drops_it():
  from configs import emnist as emnist_config

  config = emnist_config.get_config('numeric_mutually_exclusive,tiny')
  config.attack.view_blur = 2.0
  assert train.control_config(config).attack.view_blur == 0.0
  assert attack_lib.Hyper.from_config(config.attack).view_blur == 2.0


def test_the_faces_recipe_blurs_f_s_views_greys_g_and_its_control_keeps_the_grey():
  from configs import orl as orl_config

  config = orl_config.get_config('cpu')
  assert config.attack.recipe == 'faces'  # ORL's default
  hyper = attack_lib.Hyper.from_config(config.attack)
  assert (hyper.view_blur, hyper.grey_output) == (2.0, 'auto')
  assert (hyper.similarity_views, hyper.similarity, hyper.onehot_share, hyper.selection_pool) == (
      9,
      'max_margin',
      0.25,
      4,
  )
  rng = np.random.default_rng(0)
  grey_faces = np.repeat(rng.uniform(-1, 1, (3, 8, 8, 1)), 3, axis=-1).astype(np.float32)
  colour_faces = rng.uniform(-1, 1, (3, 8, 8, 3)).astype(np.float32)
  assert hyper.resolve_grey_output(grey_faces).grey_output == 'on'
  assert hyper.resolve_grey_output(colour_faces).grey_output == 'off'
  config.attack.view_blur = 1.0  # a value given wins over the recipe's
  assert attack_lib.Hyper.from_config(config.attack).view_blur == 1.0
  # The control: gamma 0 and no blur (it acts only through f), but grey output
  # changes the GAN, so the control keeps it.
  control = attack_lib.Hyper.from_config(train.control_config(orl_config.get_config('cpu')).attack)
  assert (control.view_blur, control.grey_output, control.uses_classifier) == (0.0, 'auto', False)
  assert (control.similarity_views, control.selection_pool, control.onehot_share) == (1, 1, 0.25)
  # The paper's recipe on faces is the paper's loss, with neither.
  config.attack.view_blur = 0.0
  config.attack.recipe = 'paper'
  paper = attack_lib.Hyper.from_config(config.attack)
  assert (paper.view_blur, paper.grey_output, paper.similarity_views) == (0.0, 'off', 1)
  assert orl_config.get_config('tiny').attack.recipe == 'paper'


def test_a_control_from_before_its_recipe_keys_were_fixed_is_continued(tmp_path):
  """A control trained by an older version stored the run's recipe keys (views of
  f, max margin, selection); at gamma = 0 they change nothing, so it is continued.
  Any other change is refused as before."""
  from configs import emnist as emnist_config

  config = emnist_config.get_config('numeric_mutually_exclusive,tiny')
  config.attack.recipe = 'strong'
  control = train.control_config(config)
  config.attack.recipe = 'paper'
  paper_control = train.control_config(config)
  # The recipes' controls differ only in the one-hot rows, which change the GAN.
  assert workdir_lib.config_changes(paper_control.to_dict(), control.to_dict()) == [
      ('attack.onehot_share', 0.0, 0.25),
      ('attack.recipe_values.onehot_share', 0.0, 0.25),
  ]
  assert control.attack.recipe == 'paper' and control.attack.gamma_increment == 0.0
  hyper = attack_lib.Hyper.from_config(control.attack)
  assert (hyper.onehot_rows, hyper.similarity_views, hyper.selection_pool) == (2, 1, 1)  # 2 of 8
  assert not hyper.uses_classifier
  old = json.loads(json.dumps(control.to_dict()))
  old['attack'].update(recipe='strong', similarity_views=9, similarity='max_margin')
  folder = tmp_path / 'control'
  folder.mkdir()
  (folder / 'config.json').write_text(json.dumps(old))
  plan = train.prepare_control(str(folder), control, 'check')
  assert plan.action == 'continue'
  assert [k for k, _, _ in plan.changes] == [
      'attack.recipe',
      'attack.recipe_values.selection_pool',  # the old strong set it; the control's is 1
      'attack.recipe_values.similarity',
      'attack.recipe_values.similarity_views',
      'attack.similarity',
      'attack.similarity_views',
  ]
  old['attack']['learning_rate'] = 1e-3
  (folder / 'config.json').write_text(json.dumps(old))
  with pytest.raises(workdir_lib.WorkdirError, match='attack.learning_rate'):
    train.prepare_control(str(folder), control, 'check')
  assert json.loads((folder / 'config.json').read_text()) == old  # nothing written


def test_a_run_with_a_surrogate_trains_it_once_reports_it_and_resumes(env):
  # main.py end to end with attack.surrogate: the surrogate is trained on D_aux
  # (its metadata counts the auxiliary images, not D_tr), saved, named in
  # results.json, and the same command again loads it and gives the same figures.
  root, _ = env
  workdir = root / 'surrogate'
  out = run_main(env, workdir, '--config.attack.surrogate=classifier')
  assert out.returncode == 0, out.stderr[-3000:]
  first = json.loads((workdir / 'results.json').read_text())
  meta = checkpoint.load_classifier_metadata(str(workdir / 'surrogate'))
  assert meta['architecture'] == 'classifier'
  assert first['surrogate']['architecture'] == 'classifier'
  assert first['surrogate']['agreement_with_f_on_aux'] == meta['agreement_with_f_on_aux']
  page = (workdir / 'report' / 'index.html').read_text()
  assert 'surrogate of f (classifier' in page  # the report's classifiers table names it
  config = ml_collections.ConfigDict(json.loads((workdir / 'config.json').read_text()))
  assert meta['train_images'] == len(train.load_problem(config).aux_x)
  control = json.loads((workdir / 'control' / 'config.json').read_text())
  assert control['attack']['surrogate'] == ''  # the control never uses it
  again = run_main(env, workdir, '--config.attack.surrogate=classifier')
  assert again.returncode == 0, again.stderr[-3000:]
  assert 'surrogate: loaded' in again.stderr
  second = json.loads((workdir / 'results.json').read_text())
  assert second['inception_accuracy'] == first['inception_accuracy']
