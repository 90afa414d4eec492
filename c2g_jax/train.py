"""train_and_evaluate: publisher -> attacker -> evaluation, for one config.

1. Data: D_tr (the publisher's private images), D_aux (the attacker's), a test set.
2. Publisher: f and the evaluator f' are trained on D_tr and saved as Orbax
   checkpoints with JSON metadata, unless given; the attack then loads f back from
   that checkpoint, as a real adversary would receive it.
3. Attacker: PreImageGAN on D_aux with labels from f, K generator iterations per
   jitted call, checkpoints as it goes; a restarted run resumes.
4. Evaluation: sample grid, inception accuracy per target by f'.
"""
import dataclasses
import json
import os
import time
from typing import Any

from absl import logging
import jax
import numpy as np

from c2g_jax import attack as attack_lib
from c2g_jax import checkpoint
from c2g_jax import classifier
from c2g_jax import evaluate
from c2g_jax import images
from c2g_jax import networks
from c2g_jax import parallel
from c2g_jax.data import emnist
from c2g_jax.data import settings


@dataclasses.dataclass
class Problem:
  """The images and labels of one experiment, as uint8 arrays."""
  dataset: str
  private_x: np.ndarray
  private_y: np.ndarray
  test_x: np.ndarray
  test_y: np.ndarray
  aux_x: np.ndarray
  label_names: list
  target_ids: list


def load_problem(config) -> Problem:
  if config.dataset != 'emnist':
    raise ValueError(f'config.dataset={config.dataset!r} is not known: use emnist')
  data = emnist.load_emnist(config.data.source, config.data.data_dir or None)
  s = settings.make_splits(settings.get_setting(config.setting), data,
                           noise_count=config.data.noise_count or None, seed=config.seed)
  return Problem('emnist', s.private_x, s.private_y, s.test_x, s.test_y, s.aux_x,
                 list(s.label_names), [int(t) for t in s.target_ids])


def publish(cfg, problem: Problem, directory: str, seed: int, role: str):
  """Loads a released classifier, or trains one on D_tr and releases it."""
  path = cfg.checkpoint or directory
  value_range = networks.value_range(problem.dataset)
  if cfg.checkpoint or os.path.isdir(path):
    module, variables, meta = checkpoint.load_classifier(path)
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
  if int(meta['num_classes']) != len(problem.label_names):
    raise ValueError(f'{role} has {meta["num_classes"]} classes but the setting has '
                     f'{len(problem.label_names)}: use a checkpoint trained on '
                     f'{problem.label_names}')
  shape = tuple(networks.image_shape(problem.dataset))
  if tuple(meta['input_shape']) != shape:
    raise ValueError(f'{role} takes inputs of shape {tuple(meta["input_shape"])} but the '
                     f'images are {shape}: use a classifier for {problem.dataset}')


def _fmt_time(seconds: float) -> str:
  seconds = int(seconds)
  return f'{seconds // 3600}h{seconds % 3600 // 60:02d}m{seconds % 60:02d}s'


class MetricsLog:
  """Metrics as JSON lines, appended (a resumed run continues the same file)."""

  def __init__(self, path: str):
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


def train_and_evaluate(config, workdir: str) -> dict:
  parallel.maybe_initialize_distributed(config.multihost)
  os.makedirs(workdir, exist_ok=True)
  checkpoint.write_json(os.path.join(workdir, 'config.json'), config.to_dict())
  problem = load_problem(config)
  logging.info('data: %d private (D_tr), %d test, %d auxiliary (D_aux) images; '
               'f has %d classes; targets %s', len(problem.private_x), len(problem.test_x),
               len(problem.aux_x), len(problem.label_names),
               [problem.label_names[t] for t in problem.target_ids])

  f_module, f_vars, f_meta = publish(config.classifier, problem,
                                     os.path.join(workdir, 'classifier'), config.seed, 'f')
  check_classifier_fits(f_meta, problem, 'f')
  e_module, e_vars, e_meta = publish(config.evaluator, problem,
                                     os.path.join(workdir, 'evaluator'), config.seed + 1, "f'")
  check_classifier_fits(e_meta, problem, "f'")

  value_range = networks.value_range(problem.dataset)
  aux_probs = classifier.predict(f_module, f_vars, problem.aux_x, tuple(f_meta['value_range']))

  mesh = parallel.data_mesh()
  attack = build_attack(config, problem, f_module, f_meta, mesh)
  replicated = parallel.replicated(mesh)
  data = jax.device_put(attack_lib.AttackData(
      aux_images=problem.aux_x, aux_probs=aux_probs.astype(np.float32),
      f_variables=f_vars), replicated)
  state = jax.device_put(attack.init(jax.random.PRNGKey(config.seed)), replicated)

  ckpts = checkpoint.AttackCheckpoints(os.path.join(workdir, 'checkpoints'),
                                       max_to_keep=config.checkpoints_to_keep)
  if ckpts.latest_step() is not None:
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)
    state, _ = ckpts.restore(abstract)
    logging.info('resumed from %s at generator step %d', workdir, int(state.step))

  run = jax.jit(attack.run, static_argnums=2, donate_argnums=0)
  metrics_log = MetricsLog(os.path.join(workdir, 'metrics.jsonl'))
  total = config.attack.steps
  per_call = max(1, config.attack.iterations_per_call)
  step = int(state.step)
  t_start, steps_at_start, last_ckpt_time = time.time(), step, time.time()
  sample_key = jax.random.PRNGKey(config.seed + 2)
  while step < total:
    n = min(per_call, total - step)
    state, metrics = run(state, data, n)
    step += n
    means = {k: float(np.mean(v)) for k, v in jax.device_get(metrics).items()}
    elapsed = time.time() - t_start
    rate = (step - steps_at_start) / max(elapsed, 1e-9)
    metrics_log.write({'step': step, 'iterations_per_sec': rate, **means})
    if step % config.log_every_steps < n or step == total:
      logging.info('step %d/%d  critic %.3f  W %.3f  gp %.3f  gen %.3f  sim %.3f  '
                   'gamma %.3f  %.2f it/s  eta %s', step, total, means['critic_loss'],
                   means['wasserstein'], means['gradient_penalty'],
                   means['generator_loss'], means['similarity'], means['gamma'], rate,
                   _fmt_time((total - step) / max(rate, 1e-9)))
    if (step % config.checkpoint_every_steps < n or step == total
        or time.time() - last_ckpt_time > config.checkpoint_every_secs):
      ckpts.save(step, state, {'step': step})
      last_ckpt_time = time.time()
    if step % config.sample_every_steps < n and step != total:
      save_samples(os.path.join(workdir, f'samples_step{step:07d}.png'), attack, state,
                   data, problem, config, sample_key)
  if ckpts.latest_step() != step:
    ckpts.save(step, state, {'step': step})
  ckpts.close()
  metrics_log.close()

  # --- evaluation -------------------------------------------------------------
  grid_path = os.path.join(workdir, 'samples.png')
  save_samples(grid_path, attack, state, data, problem, config, sample_key)
  generated = evaluate.sample_targets(attack, state.g_params, problem.target_ids,
                                      config.eval.samples_per_target,
                                      jax.random.PRNGKey(config.seed + 3))
  e_apply = classifier.probs_fn(e_module, tuple(e_meta['value_range']), value_range)
  f_apply = classifier.probs_fn(f_module, tuple(f_meta['value_range']), value_range)
  by_eval = evaluate.inception_accuracy(
      evaluate.predict_labels(e_apply, e_vars, generated), problem.target_ids)
  by_f = evaluate.inception_accuracy(
      evaluate.predict_labels(f_apply, f_vars, generated), problem.target_ids)
  names = [problem.label_names[t] for t in problem.target_ids]
  results = {
      'setting': config.setting, 'steps': step,
      'f_test_accuracy': f_meta.get('test_accuracy'),
      'evaluator_test_accuracy': e_meta.get('test_accuracy'),
      'inception_accuracy': dict(zip(names, map(float, by_eval))),
      'inception_accuracy_mean': float(np.mean(by_eval)),
      'f_accuracy_on_samples': dict(zip(names, map(float, by_f))),
      'samples_per_target': config.eval.samples_per_target,
      'grid': grid_path,
  }
  checkpoint.write_json(os.path.join(workdir, 'results.json'), results)
  print(format_results(results))
  print(f'outputs in {os.path.abspath(workdir)}: samples.png (grid), metrics.jsonl, '
        'results.json, classifier/ and evaluator/ (Orbax checkpoints)')
  return results


def format_results(results: dict) -> str:
  names = list(results['inception_accuracy'])
  lines = [
      f"setting {results['setting']} after {results['steps']} generator steps",
      f"f test accuracy {results['f_test_accuracy']:.4f}   "
      f"f' test accuracy {results['evaluator_test_accuracy']:.4f}",
      f"inception accuracy (share of {results['samples_per_target']} samples of "
      "G(z, onehot(t)) that f' labels t):",
      'target  ' + ' '.join(f'{n:>5}' for n in names) + '   mean',
      "f'      " + ' '.join(f"{results['inception_accuracy'][n]:5.2f}" for n in names)
      + f"   {results['inception_accuracy_mean']:.3f}",
      'f       ' + ' '.join(f"{results['f_accuracy_on_samples'][n]:5.2f}" for n in names)
      + f"   {np.mean(list(results['f_accuracy_on_samples'].values())):.3f}"
      '   (f itself: not independent, optimistic)',
  ]
  return '\n'.join(lines)
