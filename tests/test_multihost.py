"""Multi-host through jax.distributed: two processes of main.py on localhost CPU.

Each process has one CPU device; with gloo collectives they form one 2-device
global mesh (--config.multihost=True --coordinator=127.0.0.1:PORT
--num_processes=2 --process_id=I). Checked here:
  * the attack ends with the parameters of one process over 2 local devices
    (bit-identical) and of one process on 1 device (float tolerance);
  * only process 0 writes the run's files (config.json, metrics, TensorBoard,
    samples, results, the report); both save and restore the Orbax checkpoints;
  * SIGTERM to one process stops both at the same step; SIGKILL of one process,
    then the same two commands again, resumes from the last checkpoint; the run
    so ended is the one compared with one process above (one workdir goes
    through all three launches: an uninterrupted pair would check nothing more).

Every subprocess has a timeout and is killed in a `finally`, so a hung
collective cannot hang the test. The runs share the session's persistent XLA
cache (tests/conftest.py; the single-process runs find test_main.py's programs
there), but jax writes entries from process 0 only and process 1's key for the
global program differs, so process 1 compiles the attack at every launch: nearly
all of the file's time is XLA compilation (2 single-process runs, 3 two-process
launches).
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from configs import emnist as emnist_config
from shared_helpers import metrics

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 12
LEARNING_RATE = emnist_config.get_config('numeric_mutually_exclusive,tiny').attack.learning_rate
# Seconds for one launch: a hang guard, not a timing. Compilation on 2 busy cores
# dominates; 240 ran out beside a grid run.
TIMEOUT = 480


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


@pytest.fixture(scope='module')
def env(tmp_path_factory, released_f):
  root = tmp_path_factory.mktemp('multihost')
  shutil.copytree(released_f[0], root / 'f')  # the session's random tiny classifier
  # The session's XLA cache (tests/conftest.py) when there is one: the single-process
  # runs' programs are then mostly those test_main.py's runs already compiled.
  environ = dict(
      os.environ,
      JAX_PLATFORMS='cpu',
      # A TFDS data dir of its own, empty: the pair's first start prepares the
      # embedded sample, both processes at once unless process 0 goes first.
      TFDS_DATA_DIR=str(root / 'tensorflow_datasets'),
      PYTHONUNBUFFERED='1',
      JAX_COMPILATION_CACHE_DIR=os.environ.get('JAX_COMPILATION_CACHE_DIR')
      or str(root / 'xla_cache'),
      JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0',
      JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES='-1',
  )
  environ['XLA_FLAGS'] = ' '.join(
      f for f in environ.get('XLA_FLAGS', '').split() if 'device_count' not in f
  )
  return root, environ


def main_cmd(root, workdir, *extra):
  f = str(root / 'f')
  return [
      sys.executable,
      'main.py',
      '--config=configs/emnist.py:numeric_mutually_exclusive,tiny',
      f'--workdir={workdir}',
      f'--config.classifier.checkpoint={f}',
      f'--config.evaluators={f}',
      f'--config.attack.steps={STEPS}',
      '--config.checkpoint_every_steps=2',
      # A grid at every chunk: the SIGTERMed launch writes step 2's before it stops
      # (a checkpoint past 0 is what the signal waits for), whenever it comes.
      '--config.sample_every_steps=2',
      '--config.log_every_steps=6',
      '--config.eval.control=False',
      *extra,
  ]


def pair_cmds(root, workdir, port):
  return [
      main_cmd(
          root,
          workdir,
          '--config.multihost=True',
          f'--coordinator=127.0.0.1:{port}',
          '--num_processes=2',
          f'--process_id={i}',
      )
      for i in range(2)
  ]


# The pair runs below the test's own priority: `interrupt` must see a checkpoint
# inside the run and signal before the run ends, and on starved cores (the suite
# beside a long job) a poller at the pair's priority once woke only after the
# last checkpoint. nice applies to every thread XLA starts in the process.
NICE = ['nice', '-n', '10'] if shutil.which('nice') else []


def start(cmds, environ, logdir, tag):
  procs = []
  for i, cmd in enumerate(cmds):
    log = open(os.path.join(logdir, f'{tag}.p{i}.log'), 'w')
    procs.append(
        subprocess.Popen(NICE + cmd, cwd=REPO, env=environ, stdout=log, stderr=subprocess.STDOUT)
    )
    log.close()
  return procs


def kill(procs):
  for p in procs:
    if p.poll() is None:
      p.kill()
  for p in procs:
    p.wait()


def logs(logdir, tag, n=2):
  out = []
  for i in range(n):
    with open(os.path.join(logdir, f'{tag}.p{i}.log')) as f:
      out.append(f.read())
  return out


def run_pair(env, workdir, tag):
  """Both processes to the end (or TIMEOUT); returns their logs."""
  root, environ = env
  procs = start(pair_cmds(root, workdir, free_port()), environ, root, tag)
  try:
    deadline = time.time() + TIMEOUT
    for p in procs:
      p.wait(timeout=max(1, deadline - time.time()))
  finally:
    kill(procs)
  out = logs(root, tag)
  for p, text in zip(procs, out):
    assert p.returncode == 0, text[-3000:]
  return out, [p.pid for p in procs]


def run_single(env, workdir, devices):
  root, environ = env
  environ = dict(
      environ, XLA_FLAGS=environ['XLA_FLAGS'] + f' --xla_force_host_platform_device_count={devices}'
  )
  out = subprocess.run(
      main_cmd(root, workdir),
      cwd=REPO,
      env=environ,
      capture_output=True,
      text=True,
      timeout=TIMEOUT,
  )
  assert out.returncode == 0, out.stderr[-3000:]
  return workdir


def finished_steps(ckpt_dir):
  if not os.path.isdir(ckpt_dir):
    return []
  return sorted(int(d) for d in os.listdir(ckpt_dir) if d.isdigit())


def final_leaves(workdir):
  # Saved over 2 processes' devices: restore onto this process's one device.
  path = os.path.join(workdir, 'checkpoints', str(STEPS), 'state')
  ckptr = ocp.StandardCheckpointer()
  tree = ckptr.metadata(path).item_metadata
  tree = getattr(tree, 'tree', tree)
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  state = ckptr.restore(
      path, jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), tree)
  )
  assert int(state['step']) == STEPS
  # {path: array}, e.g. "['d_opt_state'][0]['mu']['Conv_0']['bias']".
  return {
      jax.tree_util.keystr(p): np.asarray(x) for p, x in jax.tree_util.tree_leaves_with_path(state)
  }


def interrupt(env, workdir, tag, after, signum):
  """Starts the pair, sends signum to process 1 once a checkpoint past step
  `after` is finished, and waits for both (SIGKILL: process 0, left waiting on
  its peer, is killed as a scheduler restarting the job would)."""
  root, environ = env
  procs = start(pair_cmds(root, workdir, free_port()), environ, root, tag)
  try:
    deadline = time.time() + TIMEOUT
    while all(p.poll() is None for p in procs) and time.time() < deadline:
      done = finished_steps(workdir / 'checkpoints')
      if done and after < done[-1] < STEPS:
        break
      time.sleep(0.01)
    procs[1].send_signal(signum)
    procs[1].wait(timeout=max(1, deadline - time.time()))
    if signum == signal.SIGKILL:
      time.sleep(0.5)
    else:
      procs[0].wait(timeout=max(1, deadline - time.time()))
  finally:
    kill(procs)
  return [p.returncode for p in procs], logs(root, tag)


@pytest.fixture(scope='module')
def pair(env):
  """One workdir through the two ways a multi-host run ends early, then to its end,
  each launch the same two commands: SIGTERM to process 1, SIGKILL of process 1,
  then a launch that finishes. Returns the workdir and, per launch, (exit codes,
  the two logs, the finished checkpoints after it).

  The tests read the finished run from here rather than from a separate
  uninterrupted pair: it must end bit-identical to one process on the same
  2-device mesh, as an uninterrupted pair must, so a fourth launch would check
  nothing these three do not."""
  root, _ = env
  workdir = root / 'pair'
  launches = {}

  def left(codes, out):
    return codes, out, finished_steps(workdir / 'checkpoints'), (workdir / 'results.json').exists()

  launches['preempted'] = left(*interrupt(env, workdir, 'preempted', 0, signal.SIGTERM))
  stopped = (launches['preempted'][2] or [0])[-1]
  launches['killed'] = left(*interrupt(env, workdir, 'killed', stopped, signal.SIGKILL))
  launches['resumed'] = left([0, 0], run_pair(env, workdir, 'resumed')[0])  # the same commands
  return workdir, launches


def test_two_processes_match_one_process(env, pair):
  root, _ = env
  workdir, _ = pair
  leaves = final_leaves(workdir)
  # One process, the same 2-device mesh: bit-identical. The programs are the
  # same SPMD partition; the gradient all-reduce over 2 devices adds two
  # partial sums, and a + b == b + a exactly, so gloo's and the in-process
  # reduction agree to the bit.
  leaves2 = final_leaves(run_single(env, root / 'single2', devices=2))
  assert list(leaves2) == list(leaves)
  for name, a in leaves.items():
    np.testing.assert_array_equal(a, leaves2[name], err_msg=name)
  # One device: the batch's reductions run as one sum instead of two halves
  # added, so rounding differs in the last bits and Adam carries it on: through
  # the penalty's double backward the critic's gradient moments ended up to
  # 0.16 % of their leaf's largest value apart, its parameters up to 2.4e-5
  # (2026-12-03, the tests' XLA flags). So each is compared in its own scale:
  # a parameter within half of one Adam step (the critic took 24 of up to about
  # lr each), a moment within 1 % of its leaf's largest value, integers exactly.
  # Two generator steps more move the parameters by several Adam steps and the
  # moments by 22 % of their scale (the median leaf), as another batch would.
  leaves1 = final_leaves(run_single(env, root / 'single1', devices=1))
  assert list(leaves1) == list(leaves)
  for name, a in leaves.items():
    b = leaves1[name]
    if not np.issubdtype(a.dtype, np.floating):
      np.testing.assert_array_equal(a, b, err_msg=name)
    elif name.startswith(("['g_params']", "['d_params']")):
      np.testing.assert_allclose(a, b, rtol=0, atol=LEARNING_RATE / 2, err_msg=name)
    else:
      np.testing.assert_allclose(a, b, rtol=0, atol=1e-2 * np.abs(b).max(), err_msg=name)
  # metrics.jsonl reads as one uninterrupted run: the stopped and killed launches'
  # lines past the restored step were dropped; every chunk once, the same values.
  assert metrics(workdir) == metrics(root / 'single2')
  assert [r['step'] for r in metrics(workdir)] == list(range(2, STEPS + 1, 2))


def test_only_process_0_writes_the_runs_files(pair):
  workdir, launches = pair
  for name in (
      'config.json',
      'metrics.jsonl',
      'results.json',
      'samples.png',
      'samples_step0000002.png',
      'report/index.html',
  ):
    assert (workdir / name).exists(), name
  # One writer: a TensorBoard events file for each of process 0's launches and
  # one for the report (process 1 writing too would add one per launch).
  events = os.listdir(workdir / 'tensorboard')
  assert len(events) == len(launches) + 1, events
  # Process 0 evaluated and reported; process 1 stopped after the attack.
  _, (log0, log1), _, _ = launches['resumed']
  assert 'report: ' in log0 and 'VERDICT: ' in log0
  assert 'report: ' not in log1 and 'VERDICT: ' not in log1
  assert f'step {STEPS}/{STEPS}' in log1  # but it trained alongside
  # Both took part in the Orbax saves: the checkpoints exist (and restore:
  # test_two_processes_match_one_process reads the last one back).
  assert finished_steps(workdir / 'checkpoints')[-1] == STEPS


def test_sigterm_or_sigkill_of_one_process_then_the_same_commands_resume(pair):
  """SIGTERM reaching one host (a scheduler's preemption notice): both processes
  save the same chunk and stop, as they agree on it after each chunk. SIGKILL of
  one host: the same two commands resume from the newest checkpoint. The run's
  end is bit-identical to one process's (test_two_processes_match_one_process)."""
  workdir, launches = pair
  codes, (log0, log1), saved, finished = launches['preempted']
  assert codes == [128 + signal.SIGTERM] * 2, (log0[-2000:], log1[-2000:])
  stopped = [int(l.split('at generator step ')[1].split('/')[0]) for l in (log0, log1)]
  assert stopped[0] == stopped[1] < STEPS
  assert saved[-1] == stopped[0] and not finished  # the chunk in flight was saved

  codes, (log0, log1), at_kill, finished = launches['killed']
  assert codes[1] == -signal.SIGKILL, 'process 1 ended before it could be killed'
  for log in (log0, log1):
    assert f'resumed from {workdir} at generator step {stopped[0]}' in log
  assert stopped[0] < at_kill[-1] < STEPS and not finished

  _, (log0, log1), _, finished = launches['resumed']
  for log in (log0, log1):
    resumed_at = int(log.split('at generator step ')[1].split()[0])
    assert at_kill[-1] <= resumed_at < STEPS
  assert finished


def test_coordinator_flags_without_multihost_are_refused(env, tmp_path):
  root, environ = env
  out = subprocess.run(
      main_cmd(
          root, tmp_path / 'w', '--coordinator=127.0.0.1:1', '--num_processes=2', '--process_id=0'
      ),
      cwd=REPO,
      env=environ,
      capture_output=True,
      text=True,
      timeout=120,
  )
  assert out.returncode == 2, out.stderr[-2000:]
  errors = [l for l in out.stderr.splitlines() if l.startswith('error:')]
  assert len(errors) == 1 and '--config.multihost=True' in errors[0], out.stderr[-2000:]
  assert not (tmp_path / 'w').exists()
