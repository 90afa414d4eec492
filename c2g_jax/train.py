"""train_and_evaluate: publisher -> attacker -> evaluation, for one config.

1. Data: D_tr (the publisher's private images), D_aux (the attacker's), a test set.
2. Publisher: f and the evaluator f' are trained on D_tr and saved as Orbax
   checkpoints with JSON metadata, unless given; the attack then loads f back from
   that checkpoint, as a real adversary would receive it.
3. Attacker: PreImageGAN on D_aux with labels from f, K generator iterations per
   jitted call, checkpoints as it goes; a restarted run resumes.
4. Evaluation: sample grid, inception accuracy per target by f'.
"""
import json
import os
import time

from absl import logging
import jax
import numpy as np

from c2g_jax import attack as attack_lib
from c2g_jax import byo
from c2g_jax import checkpoint
from c2g_jax import checks
from c2g_jax import classifier
from c2g_jax import evaluate
from c2g_jax import guard
from c2g_jax import images
from c2g_jax import networks
from c2g_jax import parallel
from c2g_jax import preemption
from c2g_jax import report
from c2g_jax import tensorboard
from c2g_jax import workdir as workdir_lib
from c2g_jax.data.problems import Problem, load_problem

# Errors caused by the user's input or work directory: the commands print them as
# one line and exit 2, before any training when possible.
USER_ERRORS = (checks.DataError, checkpoint.CheckpointError, parallel.ShardingError,
               checks.ConfigError, workdir_lib.WorkdirError, byo.ByoError)


def publish(cfg, problem: Problem, directory: str, seed: int, role: str):
  """Loads a released classifier, or trains one on D_tr and releases it."""
  path = cfg.checkpoint or directory
  value_range = networks.value_range(problem.dataset)
  if not cfg.checkpoint and os.path.isdir(path) and checkpoint.finished_step(path) is None:
    # Our own save, interrupted by a kill: Orbax never committed it, so train again.
    logging.warning('%s: %s holds no finished checkpoint (its save was interrupted): '
                    'training %s again', role, path, role)
  elif cfg.checkpoint or os.path.isdir(path):
    # A checkpoint folder or a user's 'module:function' (see byo.py).
    module, variables, meta = byo.load_classifier(path)
    if meta.get('test_accuracy') is None:  # a user's classifier; NaN: no test images
      meta['test_accuracy'] = float('nan') if not len(problem.test_x) else classifier.accuracy(
          module, variables, problem.test_x, problem.test_y, tuple(meta['value_range']))
    logging.info('%s: loaded %s (test accuracy %s)', role, path, meta.get('test_accuracy'))
    return module, variables, meta
  module = networks.build_classifier(cfg.architecture, len(problem.label_names),
                                     problem.dataset, width=cfg.width)
  variables = classifier.train(
      module, problem.private_x, problem.private_y, value_range, epochs=cfg.epochs,
      batch_size=cfg.batch_size, learning_rate=cfg.learning_rate, seed=seed,
      log=logging.info, name=role)
  acc = classifier.accuracy(module, variables, problem.test_x, problem.test_y, value_range)
  meta = {
      'architecture': cfg.architecture, 'dataset': problem.dataset, 'width': cfg.width,
      'num_classes': len(problem.label_names), 'label_names': problem.label_names,
      'input_shape': list(networks.image_shape(problem.dataset)),
      'value_range': list(value_range), 'test_accuracy': acc,
      'train_images': int(len(problem.private_x)), 'test_images': int(len(problem.test_x)),
  }
  checkpoint.save_classifier(path, variables, meta)
  logging.info('%s: test accuracy %.4f, saved to %s', role, acc, path)
  # Load back what was written: the attack only ever sees the released checkpoint.
  return checkpoint.load_classifier(path)


def check_classifier_fits(meta: dict, problem: Problem, role: str) -> None:
  # Classes (count, names, order), input shape and value range; one-line errors.
  byo.check_fits(meta, problem.label_names, networks.image_shape(problem.dataset), role)


def _fmt_time(seconds: float) -> str:
  seconds = int(seconds)
  return f'{seconds // 3600}h{seconds % 3600 // 60:02d}m{seconds % 60:02d}s'


class MetricsLog:
  """Metrics as JSON lines, appended (a resumed run continues the same file).

  On resume, lines past the restored step (written after the last checkpoint by
  the run that was killed) and a half-written last line are dropped, so the file
  reads as if the run had never stopped.
  """

  def __init__(self, path: str, resume_step: int):
    kept = []
    if os.path.exists(path):
      with open(path) as f:
        for line in f:
          try:
            record = json.loads(line)
          except json.JSONDecodeError:
            continue
          if isinstance(record, dict) and record.get('step', 0) <= resume_step:
            kept.append(line if line.endswith('\n') else line + '\n')
      with open(path + '.tmp', 'w') as f:
        f.writelines(kept)
      os.replace(path + '.tmp', path)
    self._f = open(path, 'a')

  def write(self, record: dict) -> None:
    self._f.write(json.dumps(record) + '\n')
    self._f.flush()

  def close(self) -> None:
    self._f.close()


def build_attack(config, problem: Problem, f_module, f_meta, mesh) -> attack_lib.Attack:
  a = config.attack
  parallel.check_batch_size(a.batch_size, mesh)
  value_range = networks.value_range(problem.dataset)
  return attack_lib.Attack(
      generator=networks.Generator(dataset=problem.dataset, width=a.generator_width),
      critic=networks.Critic(dataset=problem.dataset, width=a.critic_width,
                             conv_impl=a.conv_impl),
      f_apply=classifier.probs_fn(f_module, tuple(f_meta['value_range']), value_range),
      num_classes=len(problem.label_names),
      image_shape=tuple(networks.image_shape(problem.dataset)),
      value_range=value_range,
      hyper=attack_lib.Hyper.from_config(a),
      batch_sharding=parallel.batch_sharding(mesh) if mesh.devices.size > 1 else None)


def save_samples(path, attack, state, data, problem, config, key) -> None:
  cols = config.eval.grid_columns
  rows = evaluate.sample_targets(attack, state.g_params, problem.target_ids, cols, key)
  from_prior = evaluate.sample_from_prior(attack, state.g_params, data.aux_probs, cols,
                                          jax.random.fold_in(key, 1))
  labels = [problem.label_names[t] for t in problem.target_ids] + ['prior']
  images.save_grid(path, np.concatenate([rows, from_prior[None]]), attack.value_range, labels)


class RateMeter:
  """Generator iterations per second for the progress lines and their ETA.

  Counts from the end of the first chunk, whose time is mostly the compile:
  averaged in, it made the early ETAs several times too long (an H200 run printed
  7 it/s, ETA 47 min, at step 100 while running at 95 it/s). The first chunk
  alone reports its own, compile-inclusive rate.
  """

  def __init__(self):
    self._t0 = self._step0 = self._chunk_start = None

  def start_chunk(self, now: float) -> None:
    self._chunk_start = now

  def end_chunk(self, step: int, n: int, now: float) -> float:
    if self._t0 is None:
      self._t0, self._step0 = now, step
      return n / max(now - self._chunk_start, 1e-9)
    return (step - self._step0) / max(now - self._t0, 1e-9)


def chunk_length(step: int, total: int, per_call: int) -> int:
  """Generator steps in the next jitted call: chunks end on multiples of per_call.

  A run resumed from a step that is not a multiple (a wall-time checkpoint
  taken under another iterations_per_call) realigns with one short chunk, so at
  most two lengths (and two compilations) occur. Results do not depend on it.
  """
  return min(per_call - step % per_call, total - step)


# Progress-line fields, in order; a model logs those of its metrics it has.
PROGRESS_FIELDS = (('critic', 'critic_loss'), ('W', 'wasserstein'), ('gp', 'gradient_penalty'),
                   ('aux', 'aux_loss_real'), ('gen', 'generator_loss'), ('sim', 'similarity'),
                   ('gamma', 'gamma'))


def attack_loop(attack, state, data, config, ckpts, metrics_log, on_sample=None, name=''):
  """Runs the attack from state.step to config.attack.steps; returns the final state.

  The one training loop: PreImageGAN and the ACGAN baseline (any model with
  `run(state, data, n) -> (state, metrics)` over an AttackState) go through it.

  Checkpoints when a chunk crosses a multiple of checkpoint_every_steps, when
  checkpoint_every_secs have passed since the last one, and at the end. After each
  chunk the divergence guard checks the losses and parameters; a non-finite one
  raises DivergenceError without saving, so the newest checkpoint stays good.
  SIGTERM or Ctrl-C ends the chunk in flight, saves it and raises preemption.Stopped.
  """
  run = jax.jit(guard.checked(attack.run), static_argnums=2, donate_argnums=0)
  total = config.attack.steps
  per_call = config.attack.iterations_per_call
  every = config.checkpoint_every_steps
  step = int(state.step)
  last_ckpt_time = time.time()
  saved_step = None
  rate_meter = RateMeter()
  with preemption.StopRequest() as stop:
    while step < total:
      n = chunk_length(step, total, per_call)
      rate_meter.start_chunk(time.time())
      state, metrics, finite = run(state, data, n)
      metrics, finite = jax.device_get((metrics, finite))
      before, step = step, step + n
      means = {k: float(np.mean(v)) for k, v in metrics.items()}
      rate = rate_meter.end_chunk(step, n, time.time())
      metrics_log.write({'step': step, 'iterations_per_sec': rate, **means})
      bad = guard.find_divergence(metrics, finite, before)
      if bad is not None:
        ckpts.wait()  # saves of earlier, good states finish; this one is not saved
        last = ckpts.latest_step()
        kept = (f'the last good checkpoint is step {last} in {ckpts.directory}' if last
                is not None else 'no checkpoint had been written yet')
        raise guard.DivergenceError(
            f'training diverged: {bad}; {kept}. Lower config.attack.learning_rate or '
            'gamma_max, then continue with --continue_anyway or start over with --restart')
      if step // config.log_every_steps != before // config.log_every_steps or step == total:
        fields = '  '.join(f'{label} {means[key]:.3f}' for label, key in PROGRESS_FIELDS
                           if key in means)
        logging.info('%sstep %d/%d  %s  %.2f it/s  eta %s', f'{name} ' if name else '', step,
                     total, fields, rate, _fmt_time((total - step) / max(rate, 1e-9)))
      if (step // every != before // every or step == total
          or time.time() - last_ckpt_time > config.checkpoint_every_secs):
        ckpts.save(step, state, {'step': step})
        saved_step, last_ckpt_time = step, time.time()
      if (on_sample is not None and step != total
          and step // config.sample_every_steps != before // config.sample_every_steps):
        on_sample(step, state)
      if stop.requested:
        if saved_step != step:
          ckpts.save(step, state, {'step': step})
        ckpts.wait()
        raise preemption.Stopped(
            f'stopped by {stop.name} at generator step {step}/{total}; the checkpoint is '
            f'saved in {ckpts.directory}: run the same command to continue', stop.requested)
  # Ends with the final state saved, also when there was nothing left to run.
  if saved_step != step and ckpts.latest_step() != step:
    ckpts.save(step, state, {'step': step})
  return state


def load_classifiers(config, problem: Problem, workdir: str, roles):
  """(module, variables, metadata) of f and/or f', loaded or trained, and checked."""
  out = {}
  for role in roles:
    cfg, sub, seed = {'f': (config.classifier, 'classifier', config.seed),
                      "f'": (config.evaluator, 'evaluator', config.seed + 1)}[role]
    module, variables, meta = publish(cfg, problem, os.path.join(workdir, sub), seed, role)
    check_classifier_fits(meta, problem, role)
    out[role] = (module, variables, meta)
  return out


def train_and_evaluate(config, workdir: str, on_config_change: str = 'check') -> dict:
  """Runs one experiment in workdir (continuing the run it holds, if any).

  on_config_change: what to do when workdir holds a run of another config
  (workdir.py): 'check' refuses, 'restart' moves it aside, 'continue' goes on.
  """
  # --- start-up checks: each bad input fails here, before anything is written --
  checks.check_config(config)
  plan = workdir_lib.prepare(workdir, config.to_dict(), on_config_change)
  workdir = plan.workdir
  parallel.maybe_initialize_distributed(config.multihost)
  mesh = parallel.data_mesh()
  parallel.check_batch_size(config.attack.batch_size, mesh)
  try:
    problem = load_problem(config)
  except ValueError as e:
    if isinstance(e, (checks.DataError, checks.ConfigError, byo.ByoError)):
      raise
    raise checks.ConfigError(str(e)) from None  # an unknown setting or similar name
  checks.check_problem(problem)
  checks.check_training_data(problem, config)
  logging.info('data: %d private (D_tr), %d test, %d auxiliary (D_aux) images; '
               'f has %d classes; targets %s', len(problem.private_x), len(problem.test_x),
               len(problem.aux_x), len(problem.label_names),
               [problem.label_names[t] for t in problem.target_ids])
  # Released classifiers the user gave are loaded and checked before the work
  # directory is touched; those to train are trained (or found) after.
  given = [r for r, c in (('f', config.classifier), ("f'", config.evaluator)) if c.checkpoint]
  published = load_classifiers(config, problem, workdir, given)
  plan.commit()
  published.update(load_classifiers(config, problem, workdir,
                                    [r for r in ('f', "f'") if r not in published]))
  f_module, f_vars, f_meta = published['f']
  e_meta = published["f'"][2]

  aux_probs = classifier.predict(f_module, f_vars, problem.aux_x, tuple(f_meta['value_range']))
  checks.check_probs(aux_probs, len(problem.aux_x), len(problem.label_names))

  attack = build_attack(config, problem, f_module, f_meta, mesh)
  replicated = parallel.replicated(mesh)
  data = jax.device_put(attack_lib.AttackData(
      aux_images=problem.aux_x, aux_probs=aux_probs.astype(np.float32),
      f_variables=f_vars), replicated)
  # Jitted: eagerly, each of init's dozens of random draws and zero fills compiles
  # on its own (a second or more per run start); the values are the same.
  state = jax.device_put(jax.jit(attack.init)(jax.random.PRNGKey(config.seed)), replicated)

  # --- the attack: resume from the newest finished checkpoint, if any ---------
  ckpts = checkpoint.AttackCheckpoints(os.path.join(workdir, 'checkpoints'),
                                       max_to_keep=config.checkpoints_to_keep)
  if ckpts.latest_step() is not None:
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)
    state, _ = ckpts.restore(abstract)
    logging.info('resumed from %s at generator step %d', workdir, int(state.step))
    if int(state.step) > config.attack.steps:
      logging.warning('the run is already at step %d, past config.attack.steps=%d: '
                      'evaluating step %d', int(state.step), config.attack.steps,
                      int(state.step))

  # Every metrics record also goes to TensorBoard (<workdir>/tensorboard).
  metrics_log = tensorboard.Tee(
      MetricsLog(os.path.join(workdir, 'metrics.jsonl'), int(state.step)),
      os.path.join(workdir, 'tensorboard'))
  sample_key = jax.random.PRNGKey(config.seed + 2)

  def on_sample(step, s):
    path = os.path.join(workdir, f'samples_step{step:07d}.png')
    save_samples(path, attack, s, data, problem, config, sample_key)
    metrics_log.image('samples', path, step)
  try:
    state = attack_loop(attack, state, data, config, ckpts, metrics_log, on_sample)
    step = int(state.step)
  finally:
    ckpts.close()
    metrics_log.close()

  # --- evaluation -------------------------------------------------------------
  grid_path = os.path.join(workdir, 'samples.png')
  save_samples(grid_path, attack, state, data, problem, config, sample_key)
  generated = evaluate.sample_targets(attack, state.g_params, problem.target_ids,
                                      config.eval.samples_per_target,
                                      jax.random.PRNGKey(config.seed + 3))
  results = {
      'setting': config.setting, 'steps': step,
      'f_test_accuracy': f_meta.get('test_accuracy'),
      'evaluator_test_accuracy': e_meta.get('test_accuracy'),
      'samples_per_target': config.eval.samples_per_target,
      'grid': grid_path,
  }
  # The run report (<workdir>/report/index.html): every table and figure. It
  # labels the samples with f' and f once; inception accuracy is its f' acc@1.
  results.update(report.run_report(workdir, config, problem, attack, state.g_params,
                                   published['f'], published["f'"], generated, results,
                                   grid_path))
  results.update(report.inception_fields(results))
  checkpoint.write_json(os.path.join(workdir, 'results.json'), results)
  print(format_results(results))
  print(f'outputs in {os.path.abspath(workdir)}: samples.png (grid), metrics.jsonl, '
        'results.json, classifier/ and evaluator/ (Orbax checkpoints)')
  return results


def format_results(results: dict) -> str:
  names = list(results['inception_accuracy'])
  w = [max(5, len(n)) for n in names]   # FaceScrub targets are full names
  row = lambda values: ' '.join(f'{v:{wi}.2f}' for v, wi in zip(values, w))
  lines = [
      f"setting {results['setting']} after {results['steps']} generator steps",
      f"f test accuracy {results['f_test_accuracy']:.4f}   "
      f"f' test accuracy {results['evaluator_test_accuracy']:.4f}",
      f"inception accuracy (share of {results['samples_per_target']} samples of "
      "G(z, onehot(t)) that f' labels t):",
      'target  ' + ' '.join(f'{n:>{wi}}' for n, wi in zip(names, w)) + '   mean',
      "f'      " + row(results['inception_accuracy'][n] for n in names)
      + f"   {results['inception_accuracy_mean']:.3f}",
      'f       ' + row(results['f_accuracy_on_samples'][n] for n in names)
      + f"   {np.mean(list(results['f_accuracy_on_samples'].values())):.3f}"
      '   (f itself: not independent, optimistic)',
  ]
  return '\n'.join(lines)
