"""train_and_evaluate: publisher -> attacker -> evaluation, for one config.

1. Data: D_tr (the publisher's private images), D_aux (the attacker's), a test set.
2. Publisher: f and the evaluator f' are trained on D_tr and saved as Orbax
   checkpoints with JSON metadata, unless given; the attack then loads f back from
   that checkpoint, as a real adversary would receive it.
3. Attacker: PreImageGAN on D_aux with labels from f, K generator iterations per
   jitted call, checkpoints as it goes; a restarted run resumes.
4. Evaluation: sample grid, inception accuracy per target by f'.
"""

import copy
import dataclasses
import json
import math
import os
import time
from typing import Any, List, Optional, Sequence

from absl import logging
import jax
import numpy as np

from c2g_jax import attack as attack_lib
from c2g_jax import augment as augment_lib
from c2g_jax import byo
from c2g_jax import checkpoint
from c2g_jax import checks
from c2g_jax import classifier
from c2g_jax import evaluate
from c2g_jax import evaluators as evaluators_lib
from c2g_jax import guard
from c2g_jax import images
from c2g_jax import networks
from c2g_jax import paper_tables
from c2g_jax import parallel
from c2g_jax import preemption
from c2g_jax import recipes
from c2g_jax import stages
from c2g_jax import surrogate as surrogate_lib
from c2g_jax import tensorboard
from c2g_jax import workdir as workdir_lib
from c2g_jax.data.problems import Problem, load_problem

# An evaluator trained again (see publish) uses seed + SEED_STRIDE * k: clear of
# the seeds of the other evaluators (seed + 1 + i).
SEED_STRIDE = 1000
CONTROL_DIR = workdir_lib.CONTROL_DIR  # the gamma = 0 control run, inside the attack's workdir
# Errors caused by the user's input or work directory: the commands print them as
# one line and exit 2, before any training when possible.
USER_ERRORS = (
    checks.DataError,
    checkpoint.CheckpointError,
    parallel.ShardingError,
    checks.ConfigError,
    workdir_lib.WorkdirError,
    byo.ByoError,
)


def publish(
    cfg,
    problem: Problem,
    directory: str,
    seed: int,
    role: str,
    architecture: str = '',
    spec: str = '',
    beat: Optional[float] = None,
):
  """Loads a released classifier, or trains one on D_tr and releases it.

  cfg: the training settings (config.classifier or config.evaluator);
  architecture: what to train (default cfg.architecture); spec: a released
  classifier to load instead (checkpoint folder or 'module:function'); beat:
  f's balanced test accuracy (evaluators.judging_accuracy), for an evaluator:
  while the one trained is less accurate by the same measure,
  it is trained again with another seed, up to cfg.max_seeds seeds, and the
  most accurate is kept: a judge weaker than f understates the leak (on ORL a
  VGG at 0.925 read samples at 0.18 that one at 1.000 read at 0.42).
  """
  path = spec or directory
  architecture = architecture or cfg.get('architecture', '')
  value_range = networks.value_range(problem.dataset)
  if not spec and os.path.isdir(path) and checkpoint.finished_step(path) is None:
    # Our own save, interrupted by a kill: Orbax never committed it, so train again.
    logging.warning(
        '%s: %s holds no finished checkpoint (its save was interrupted): ' 'training %s again',
        role,
        path,
        role,
    )
  elif spec or os.path.isdir(path):
    # A checkpoint folder or a user's 'module:function' (see byo.py).
    module, variables, meta = byo.load_classifier(path)
    # A user's classifier, or one stored before balanced accuracies; NaN: no test images.
    for key, measure in (
        ('test_accuracy', classifier.accuracy),
        ('balanced_test_accuracy', classifier.balanced_accuracy),
    ):
      if meta.get(key) is None:
        meta[key] = (
            float('nan')
            if not len(problem.test_x)
            else measure(
                module, variables, problem.test_x, problem.test_y, tuple(meta['value_range'])
            )
        )
    logging.info(
        '%s: loaded %s (test accuracy %s, balanced %s)',
        role,
        path,
        meta.get('test_accuracy'),
        meta.get('balanced_test_accuracy'),
    )
    return module, variables, meta
  module = networks.build_classifier(
      architecture, len(problem.label_names), problem.dataset, width=cfg.width
  )
  augment = cfg.get('augment', 'none')
  max_seeds = cfg.get('max_seeds', 1) if beat is not None else 1
  balance = evaluators_lib.balance_classes(
      cfg.get('balance_classes', 'off'), problem.private_y, getattr(problem, 'target_ids', ())
  )
  # (balanced test accuracy, seed, variables, info, test accuracy) of each seed trained
  tried = []
  for k in range(max_seeds):
    this_seed = seed + SEED_STRIDE * k
    info = {}
    variables = classifier.train(
        module,
        problem.private_x,
        problem.private_y,
        value_range,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        seed=this_seed,
        log=logging.info,
        name=role,
        augment=augment_lib.preset(augment, problem.dataset),
        validation_fraction=cfg.get('validation_fraction', 0.0),
        cosine_schedule=cfg.get('cosine_schedule', False),
        info=info,
        balance_classes=balance,
    )
    plain, acc = (
        (
            classifier.accuracy(module, variables, problem.test_x, problem.test_y, value_range),
            classifier.balanced_accuracy(
                module, variables, problem.test_x, problem.test_y, value_range
            ),
        )
        if len(problem.test_x)
        else (float('nan'), float('nan'))
    )
    tried.append((acc, this_seed, variables, info, plain))
    if beat is None or math.isnan(beat) or math.isnan(acc) or acc >= beat:
      break
    if k + 1 < max_seeds:
      logging.warning(
          "%s: test accuracy %.4f is below f's %.4f, so it would understate the leak: "
          'training it again with seed %d (%d of at most %d seeds)',
          role,
          acc,
          beat,
          this_seed + SEED_STRIDE,
          k + 2,
          max_seeds,
      )
  # The most accurate seed (balanced); the first on ties.
  acc, chosen_seed, variables, info, plain = max(tried, key=lambda t: (t[0], -t[1]))
  meta = {
      **networks.release_metadata(architecture, cfg.width, problem.dataset, problem.label_names),
      'test_accuracy': plain,
      'balanced_test_accuracy': acc,
      'balanced_classes': balance,
      'train_images': int(len(problem.private_x)),
      'test_images': int(len(problem.test_x)),
      'augment': augment,
      'epochs': cfg.epochs,
      'seed': chosen_seed,
  }
  if len(tried) > 1:
    meta['seeds_tried'] = {str(t[1]): t[0] for t in tried}
  if info.get('validation_accuracy'):
    meta.update(
        validation_accuracy=max(info['validation_accuracy']),
        selected_epoch=info['selected_epoch'],
        validation_images=info['validation_images'],
    )
  checkpoint.save_classifier(path, variables, meta)
  logging.info('%s: test accuracy %.4f (balanced %.4f), saved to %s', role, plain, acc, path)
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


def build_attack(
    config, problem: Problem, f_module, f_meta, mesh, surrogate=None
) -> attack_lib.Attack:
  """The attack of config.attack; surrogate: (module, metadata) when
  config.attack.surrogate names one (surrogate.py)."""
  a = config.attack
  parallel.check_batch_size(a.batch_size, mesh)
  value_range = networks.value_range(problem.dataset)
  asked = attack_lib.Hyper.from_config(a)  # grey_output may come from the recipe
  hyper = asked.resolve_grey_output(problem.aux_x)
  if asked.grey_output == 'auto':
    grey = hyper.grey_output == 'on'
    logging.info(
        'attack.grey_output=auto: %s',
        'on (every auxiliary image is grey)' if grey else 'off (the auxiliary images have colour)',
    )
  return attack_lib.Attack(
      generator=networks.Generator(dataset=problem.dataset, width=a.generator_width),
      critic=networks.Critic(
          dataset=problem.dataset,
          width=a.critic_width,
          conv_impl=a.conv_impl,
          num_classes=len(problem.label_names) if hyper.conditional_critic else 0,
      ),
      f_apply=classifier.probs_fn(f_module, tuple(f_meta['value_range']), value_range),
      num_classes=len(problem.label_names),
      image_shape=tuple(networks.image_shape(problem.dataset)),
      value_range=value_range,
      hyper=hyper,
      batch_sharding=parallel.batch_sharding(mesh) if mesh.devices.size > 1 else None,
      surrogate_apply=(
          classifier.probs_fn(surrogate[0], tuple(surrogate[1]['value_range']), value_range)
          if hyper.surrogate
          else None
      ),
  )


def save_samples(path, attack, state, data, problem, config, key) -> None:
  cols = config.eval.grid_columns
  rows = evaluate.sample_targets(attack, state.g_params, problem.target_ids, cols, key)
  from_prior = evaluate.sample_from_prior(
      attack, state.g_params, data.aux_probs, cols, jax.random.fold_in(key, 1)
  )
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
PROGRESS_FIELDS = (
    ('critic', 'critic_loss'),
    ('W', 'wasserstein'),
    ('gp', 'gradient_penalty'),
    ('aux', 'aux_loss_real'),
    ('gen', 'generator_loss'),
    ('sim', 'similarity'),
    ('gamma', 'gamma'),
)


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
        kept = (
            f'the last good checkpoint is step {last} in {ckpts.directory}'
            if last is not None
            else 'no checkpoint had been written yet'
        )
        raise guard.DivergenceError(
            f'training diverged: {bad}; {kept}. Lower config.attack.learning_rate or '
            'gamma_max, then continue with --continue_anyway or start over with --restart'
        )
      if step // config.log_every_steps != before // config.log_every_steps or step == total:
        fields = '  '.join(
            f'{label} {means[key]:.3f}' for label, key in PROGRESS_FIELDS if key in means
        )
        logging.info(
            '%sstep %d/%d  %s  %.2f it/s  eta %s',
            f'{name} ' if name else '',
            step,
            total,
            fields,
            rate,
            _fmt_time((total - step) / max(rate, 1e-9)),
        )
      timed, stopping = parallel.agree(
          time.time() - last_ckpt_time > config.checkpoint_every_secs, stop.requested
      )
      if step // every != before // every or step == total or timed:
        ckpts.save(step, state, {'step': step})
        saved_step, last_ckpt_time = step, time.time()
      if (
          on_sample is not None
          and step != total
          and step // config.sample_every_steps != before // config.sample_every_steps
      ):
        on_sample(step, state)
      if stopping:  # agreed by every process; a signal arriving after waits a chunk
        stop.requested = stopping
        if saved_step != step:
          ckpts.save(step, state, {'step': step})
        ckpts.wait()
        raise preemption.Stopped(
            f'stopped by {stop.name} at generator step {step}/{total}; the checkpoint is '
            f'saved in {ckpts.directory}: run the same command to continue',
            stop.requested,
        )
  # Ends with the final state saved, also when there was nothing left to run.
  if saved_step != step and ckpts.latest_step() != step:
    ckpts.save(step, state, {'step': step})
  return state


@dataclasses.dataclass(frozen=True)
class ClassifierJob:
  """A classifier the run needs: f or one evaluator, trained here or given."""

  role: str  # 'f' or "f'[name]": log lines and errors
  name: str  # 'f' or the evaluator's name in reports
  cfg: Any  # training settings: config.classifier or config.evaluator
  directory: str  # where a classifier trained here is saved
  seed: int
  architecture: str  # what to train ('' for a given classifier)
  spec: str  # a given classifier: checkpoint folder or 'module:function'


def classifier_jobs(config, workdir: str) -> List[ClassifierJob]:
  """f, then the evaluators of config.evaluators in order."""
  jobs = [
      ClassifierJob(
          'f',
          'f',
          config.classifier,
          os.path.join(workdir, 'classifier'),
          config.seed,
          config.classifier.architecture,
          config.classifier.checkpoint,
      )
  ]
  for entry, name, i in evaluators_lib.plan(config.evaluators, workdir):
    here = evaluators_lib.is_trained_here(entry)
    jobs.append(
        ClassifierJob(
            evaluators_lib.role(name),
            name,
            config.evaluator,
            evaluators_lib.directory(workdir, entry),
            config.seed + 1 + i,
            entry if here else '',
            '' if here else entry,
        )
    )
  return jobs


def load_classifiers(
    problem: Problem, jobs: Sequence[ClassifierJob], f_accuracy: Optional[float] = None
) -> dict:
  """{role: (module, variables, metadata)} of the jobs, loaded or trained, and checked.

  f_accuracy: f's judging accuracy when f is not among the jobs (evaluators
  trained here are trained again while less accurate than f; see publish).
  """
  out = {}
  for job in jobs:
    module, variables, meta = publish(
        job.cfg,
        problem,
        job.directory,
        job.seed,
        job.role,
        job.architecture,
        job.spec,
        beat=None if job.role == 'f' else f_accuracy,
    )
    if job.role == 'f':
      f_accuracy = evaluators_lib.judging_accuracy(meta)
    check_classifier_fits(meta, problem, job.role)
    out[job.role] = (module, variables, meta)
  return out


# Attack keys that act only through f's term (gamma times the similarity) or the
# final selection, which the control never runs: at gamma = 0 they change no
# parameter of G or D (tests/test_attack.py checks it bit for bit), only the
# logged similarity. The control fixes them to the paper's values, so one control
# serves every recipe and skips the strong recipe's 9 views of f per step.
# critic_condition also changes the GAN at gamma = 0, but through f's labels of
# the auxiliary images: the control is G without f, so it is off there too.
CONTROL_FIXED = {
    'recipe': 'paper',
    'similarity': 'log_likelihood',
    'similarity_views': 1,
    'margin_cap': 0.0,
    'view_augment': 'auto',
    'view_blur': 0.0,
    'selection_pool': 1,
    'selection_views': 8,
    'selection_realism': 1,
    'surrogate': '',
    'critic_condition': 'off',
    'gamma_max': 10.0,
}


def control_config(config):
  """The control run's config: the same GAN with gamma held at 0, the keys that
  act only through gamma at the paper's values (CONTROL_FIXED). The recipe's keys
  that change the GAN itself (one-hot label rows) are written out, since the
  control's recipe is the paper's."""
  c = copy.deepcopy(config)
  hyper = attack_lib.Hyper.from_config(config.attack)
  recipe = attack_lib.RECIPES.get(config.attack.get('recipe', 'paper'), {})
  with c.unlocked():
    for key in recipe:
      if key not in CONTROL_FIXED:
        c.attack[key] = getattr(hyper, key)
    c.attack.gamma_start = 0.0
    c.attack.gamma_increment = 0.0
    for key, value in CONTROL_FIXED.items():
      c.attack[key] = value
    c.eval.control = False
  return c


def control_changes(stored: dict, control_cfg) -> tuple[list, list]:
  """(all, those that change the control's G and D) of workdir.config_changes
  between a stored control config and control_cfg: the keys in CONTROL_FIXED
  change nothing at gamma = 0."""
  changes = workdir_lib.config_changes(stored, control_cfg.to_dict())
  record = recipes.RECORD + '.'  # the values a recipe gave count as their keys
  return changes, [
      c for c in changes if c[0].removeprefix('attack.').removeprefix(record) not in CONTROL_FIXED
  ]


def prepare_control(control_dir: str, control_cfg, mode: str):
  """workdir.prepare for the control folder. A control trained before its config
  fixed the gamma-only keys (CONTROL_FIXED) differs from today's only in those:
  the same G and D, so it is continued, not refused."""
  stored = workdir_lib.read_config(control_dir) if os.path.isdir(control_dir) else None
  if stored is not None and mode == 'check':
    changes, that_matter = control_changes(stored, control_cfg)
    if changes and not that_matter:
      logging.info(
          'control: %s was trained with %s, keys that change nothing at gamma = 0; '
          'continuing it with the paper values',
          control_dir,
          workdir_lib.describe(changes),
      )
      mode = 'continue'
  return workdir_lib.prepare(control_dir, control_cfg.to_dict(), mode)


def run_attack(config, problem: Problem, attack, data, mesh, workdir: str, name: str = ''):
  """Trains one PreImageGAN in workdir (resuming its checkpoints); returns its state."""
  # Jitted: eagerly, each of init's dozens of random draws and zero fills compiles
  # on its own (a second or more per run start); the values are the same.
  state = parallel.replicate(
      jax.jit(attack.init)(jax.random.PRNGKey(config.seed)), parallel.replicated(mesh)
  )
  ckpts = checkpoint.AttackCheckpoints(
      os.path.join(workdir, 'checkpoints'), max_to_keep=config.checkpoints_to_keep
  )
  if ckpts.latest_step() is not None:
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state
    )
    state, _ = ckpts.restore(abstract)
    logging.info(
        '%sresumed from %s at generator step %d',
        f'{name}: ' if name else '',
        workdir,
        int(state.step),
    )
    if int(state.step) > config.attack.steps:
      logging.warning(
          'the run is already at step %d, past config.attack.steps=%d: ' 'evaluating step %d',
          int(state.step),
          config.attack.steps,
          int(state.step),
      )

  # Every metrics record also goes to TensorBoard (<workdir>/tensorboard).
  # A resumed run purges what a killed run logged past the restored step.
  # Process 0 alone writes the logs and pictures (parallel.primary_log).
  metrics_log = parallel.primary_log(
      lambda: tensorboard.Tee(
          MetricsLog(os.path.join(workdir, 'metrics.jsonl'), int(state.step)),
          os.path.join(workdir, 'tensorboard'),
          resume_step=int(state.step),
      )
  )
  sample_key = jax.random.PRNGKey(config.seed + 2)

  def on_sample(step, s):
    if not parallel.is_primary():
      return
    path = os.path.join(workdir, f'samples_step{step:07d}.png')
    save_samples(path, attack, parallel.local(s), parallel.local(data), problem, config, sample_key)
    metrics_log.image('samples', path, step)

  try:
    state = attack_loop(attack, state, data, config, ckpts, metrics_log, on_sample, name)
  finally:
    ckpts.close()
    metrics_log.close()
  if parallel.is_primary():
    save_samples(
        os.path.join(workdir, 'samples.png'),
        attack,
        parallel.local(state),
        parallel.local(data),
        problem,
        config,
        sample_key,
    )
  return state


def train_and_evaluate(config, workdir: str, on_config_change: str = 'check') -> dict:
  """Runs one experiment in workdir (continuing the run it holds, if any).

  on_config_change: what to do when workdir holds a run of another config
  (workdir.py): 'check' refuses, 'restart' moves it aside, 'continue' goes on.
  With config.eval.control, the control (the same GAN with gamma = 0) runs in
  <workdir>/control and the report measures the leak as attack minus control.
  """
  # --- start-up checks: each bad input fails here, before anything is written --
  checks.check_config(config)
  jobs = classifier_jobs(config, workdir)  # checks config.evaluators
  with_control = bool(config.eval.get('control', False))
  plan = workdir_lib.prepare(workdir, config.to_dict(), on_config_change)
  workdir = plan.workdir
  control_dir = os.path.join(workdir, CONTROL_DIR)
  control_cfg = control_config(config) if with_control else None
  # The control keeps its own config.json: a control folder of another config
  # is refused like a workdir of another config (a restart moves both aside).
  control_plan = (
      prepare_control(control_dir, control_cfg, on_config_change)
      if with_control and plan.action != 'restart'
      else None
  )
  parallel.maybe_initialize_distributed(config.multihost)
  mesh = parallel.data_mesh()
  parallel.check_batch_size(config.attack.batch_size, mesh)
  try:
    problem = parallel.primary_first(lambda: load_problem(config), 'load_problem')
  except ValueError as e:
    if isinstance(e, (checks.DataError, checks.ConfigError, byo.ByoError)):
      raise
    raise checks.ConfigError(str(e)) from None  # an unknown setting or similar name
  checks.check_problem(problem)
  checks.check_training_data(problem, jobs)
  logging.info(
      'data: %d private (D_tr), %d test, %d auxiliary (D_aux) images; '
      'f has %d classes; targets %s',
      len(problem.private_x),
      len(problem.test_x),
      len(problem.aux_x),
      len(problem.label_names),
      [problem.label_names[t] for t in problem.target_ids],
  )
  # Released classifiers the user gave are loaded and checked before the work
  # directory is touched; those to train are trained (or found) after.
  published = load_classifiers(problem, [j for j in jobs if j.spec])
  parallel.on_primary(plan.commit, 'workdir')  # config.json: process 0 writes it
  if with_control:
    parallel.on_primary(
        (control_plan or workdir_lib.prepare(control_dir, control_cfg.to_dict())).commit,
        'control workdir',
    )
  published.update(
      load_classifiers(
          problem,
          [j for j in jobs if not j.spec],
          evaluators_lib.judging_accuracy(published['f'][2]) if 'f' in published else None,
      )
  )
  f_module, f_vars, f_meta = published['f']
  judges = [(j.name, published[j.role]) for j in jobs[1:]]

  aux_probs = classifier.predict(f_module, f_vars, problem.aux_x, tuple(f_meta['value_range']))
  checks.check_probs(aux_probs, len(problem.aux_x), len(problem.label_names))

  surrogate = None  # (module, variables, metadata) of attack.surrogate's network
  if config.attack.get('surrogate', ''):
    surrogate = parallel.primary_first(
        lambda: surrogate_lib.train_or_load(
            config, problem, aux_probs, os.path.join(workdir, surrogate_lib.SURROGATE_DIR)
        ),
        'surrogate',
    )
  s_module, s_vars, s_meta = surrogate or (None, None, None)
  attack = build_attack(config, problem, f_module, f_meta, mesh, surrogate and (s_module, s_meta))
  data = parallel.replicate(
      attack_lib.AttackData(
          aux_images=problem.aux_x,
          aux_probs=aux_probs.astype(np.float32),
          f_variables=f_vars,
          surrogate_variables=s_vars,
      ),
      parallel.replicated(mesh),
  )

  # --- the attack, then the control: each resumes its newest checkpoint -------
  state = run_attack(config, problem, attack, data, mesh, workdir)
  control_state = control = None
  if with_control:
    control = build_attack(control_cfg, problem, f_module, f_meta, mesh)
    logging.info('control: the same GAN, seed and D_aux with gamma = 0, in %s', control_dir)
    control_state = run_attack(control_cfg, problem, control, data, mesh, control_dir, 'control')
  step = int(state.step)

  # --- evaluation: process 0 alone, on its copy of the states -------------------
  if not parallel.is_primary():
    return {'setting': config.setting, 'steps': step, 'process_index': jax.process_index()}
  state, control_state = parallel.local((state, control_state))
  grid_path = os.path.join(workdir, 'samples.png')
  sample_key = jax.random.PRNGKey(config.seed + 3)
  # With final selection (attack.selection_pool > 1) the verdict judges the
  # selected samples, and the report shows the raw draws beside them.
  raw_generated = None
  n = config.eval.samples_per_target
  pool = attack.hyper.selection_pool
  with stages.timed(
      f'evaluation: {n} samples per target'
      + (f" (kept of {pool * n} draws by f's confidence)" if pool > 1 else '')
      + (", and the control's" if with_control else '')
  ):
    if pool > 1:
      generated, raw_generated = evaluate.select_targets(
          attack,
          state.g_params,
          f_vars,
          problem.target_ids,
          n,
          sample_key,
          state.d_params,
          surrogate_vars=s_vars,
      )
    else:
      generated = evaluate.sample_targets(attack, state.g_params, problem.target_ids, n, sample_key)
    control_generated = (
        evaluate.sample_targets(control, control_state.g_params, problem.target_ids, n, sample_key)
        if with_control
        else None
    )
  results = {
      'setting': config.setting,
      'steps': step,
      'f_test_accuracy': f_meta.get('test_accuracy'),
      'f_balanced_test_accuracy': f_meta.get('balanced_test_accuracy'),
      'surrogate': (
          {
              k: s_meta.get(k)
              for k in ('architecture', 'test_accuracy', 'agreement_with_f_on_aux', 'epochs')
          }
          if surrogate
          else None
      ),
      'samples_per_target': config.eval.samples_per_target,
      'grid': grid_path,
      'control_grid': os.path.join(control_dir, 'samples.png') if with_control else None,
  }
  # The run report (<workdir>/report/index.html): the verdict, then every table
  # and figure. It labels each sample set once per classifier. Imported here: it
  # brings matplotlib (0.6 s), which a run stopped earlier (bad input, a signal,
  # process 1 of a multi-host job) never needs.
  from c2g_jax import report  # pylint: disable=g-import-not-at-top

  results.update(
      report.run_report(
          workdir,
          config,
          problem,
          attack,
          state.g_params,
          published['f'],
          judges,
          generated,
          results,
          grid_path,
          control_generated=control_generated,
          raw_generated=raw_generated,
      )
  )
  checkpoint.write_json(os.path.join(workdir, 'results.json'), results)
  print(format_results(results))
  print(
      f'outputs in {os.path.abspath(workdir)}: report/index.html (the verdict first), '
      'samples.png (grid), results.json, metrics.jsonl, classifier/ and evaluators/ '
      '(Orbax checkpoints)' + (', control/ (the gamma = 0 run)' if with_control else '')
  )
  return results


def format_results(results: dict) -> str:
  """What the run prints: the verdict and per-target leak first, then the evaluators."""
  leak = results.get('leak')
  names = list(results['inception_accuracy'])
  w = max([6] + [len(n) for n in names])
  lines = [
      f"setting {results['setting']} after {results['steps']} generator steps",
      f"VERDICT: {results['verdict']}" if results.get('verdict') else '',
  ]
  lines += [f'WARNING: {line}' for line in results.get('warnings', [])]
  if leak and leak['mean'].get('control') is not None:
    lines.append(
        f"per target, judged by f'[{leak['evaluator']}] (95% intervals: " 'Wilson; leak: Newcombe):'
    )
    lines.append(
        f"{'target':>{w}}  attack [95% CI]      control [95% CI]     "
        'leak [95% CI]          verdict'
    )
    for r in leak['per_target'] + [leak['mean']]:
      lines.append(
          f"{r['name']:>{w}}  {r['attack']:.3f} [{r['attack_ci'][0]:.2f}, {r['attack_ci'][1]:.2f}]"
          f"   {r['control']:.3f} [{r['control_ci'][0]:.2f}, {r['control_ci'][1]:.2f}]"
          f"   {r['leak']:+.3f} [{r['leak_ci'][0]:+.2f}, {r['leak_ci'][1]:+.2f}]"
          f"   {r['status']}"
      )
  sel = results.get('selection')
  if sel:
    lines.append(
        f"final selection: {sel['kept']} of {sel['candidates']} draws per target, by f's "
        f"confidence over {sel['views']} warps"
        + (
            f" (then the critic's: {sel['kept']} of f's {sel['realism'] * sel['kept']})"
            if sel.get('realism', 1) > 1
            else ''
        )
        + f"; f'[{results['headline_evaluator']}] mean "
        f"{results['raw_inception_accuracy_mean']:.3f} raw -> "
        f"{results['inception_accuracy_mean']:.3f} selected (the control is not selected)"
    )
  if results.get('paper'):
    lines.append(paper_tables.comparison_sentence(results['paper'], results['headline_evaluator']))
  col = lambda values: ' '.join(f'{v:>{max(5, len(n))}.2f}' for v, n in zip(values, names))
  head = ' '.join(f'{n:>{max(5, len(n))}}' for n in names)
  # On a test set with unequal class counts the judges are ranked by their
  # balanced accuracy (evaluators.judging_accuracy): print that one, as the
  # verdict names it (report.run_report decides, from the test set's counts).
  balanced = results.get('accuracy_name') == 'balanced test accuracy'
  f_balanced = results.get('f_balanced_test_accuracy')
  lines.append(
      f"f test accuracy {results['f_test_accuracy']:.4f}"
      + (f' (balanced {f_balanced:.4f})' if balanced else '')
      + '; evaluators ('
      + ('balanced ' if balanced else '')
      + "test accuracy; share of each target's samples they label as the target):"
  )
  lines.append(f"{'':<22}{head}   mean")
  larger = (results.get('larger_leak') or {}).get('evaluator')
  for name, e in results.get('evaluators', {}).items():
    acc = e['balanced_test_accuracy'] if balanced else e['test_accuracy']
    tag = f"f'[{name}] {acc:.4f}" + ('*' if name == results.get('headline_evaluator') else '')
    tag += '+' if name == larger else ''
    lines.append(f'{tag:<22}{col(e["attack"][n] for n in names)}   {e["attack_mean"]:.3f}')
    if e.get('control') is not None:
      lines.append(
          f"{'  control':<22}{col(e['control'][n] for n in names)}" f"   {e['control_mean']:.3f}"
      )
    if e.get('real') is not None:
      cell = lambda v, w, d: f'{v:>{w}.{d}f}' if v is not None else f"{'-':>{w}}"
      lines.append(
          f"{'  real test images':<22}"
          + ' '.join(cell(e['real'][n], max(5, len(n)), 2) for n in names)
          + f"   {cell(e['real_mean'], 5, 3)}"
      )
  f_mean = np.mean(list(results['f_accuracy_on_samples'].values()))
  lines.append(
      f"{'f (not independent)':<22}{col(results['f_accuracy_on_samples'][n] for n in names)}"
      f'   {f_mean:.3f}'
  )
  if results.get('evaluators'):
    lines.append(
        '* heads the verdict: the most accurate evaluator on the test set'
        + (' (balanced)' if balanced else '')
    )
  if larger:
    lines.append("+ its leak lies wholly above the headline's: decide by the larger leak")
  return '\n'.join(line for line in lines if line != '')
