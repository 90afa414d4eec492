"""The ACGAN baseline (Odena et al. 2016) trained on the private data D_tr.

It is what an attacker could reach *with* the private images and their labels,
so it bounds PreImageGAN's inception accuracy from above (the paper's Tables 3
and 4). To keep the comparison fair it shares everything with the attack but
the data: the same Generator, a critic with the same trunk and sizes plus an
auxiliary classification head, WGAN-GP with the same hyperparameters, the same
pure-step / jitted-chunk training loop, and the same evaluation.

Losses, with CE the softmax cross-entropy of the auxiliary head:
  critic:    E[D(G(z,c))] - E[D(x)] + gp_weight * GP + aux_weight * (CE(x, c_x) + CE(G(z,c), c))
  generator: -E[D(G(z,c))] + aux_weight * CE(G(z,c), c)
with c drawn from D_tr's label frequencies and G conditioned on onehot(c).
"""

import dataclasses
import os
from typing import Any

from absl import logging
import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from c2g_jax import attack as attack_lib
from c2g_jax import checkpoint
from c2g_jax import evaluate
from c2g_jax import images
from c2g_jax import losses
from c2g_jax import networks
from c2g_jax import prior
from c2g_jax import tensorboard
from c2g_jax import train as train_lib
from c2g_jax.conv import Conv

PyTree = Any
# Odena et al. weight the two terms equally.
AUX_WEIGHT = 1.0


class ACCritic(nn.Module):
  """networks.Critic's trunk with two heads: the WGAN score and d class logits.

  The layer table mirrors networks.Critic (a test checks the kernels match), and
  both heads are one Dense with 1 + d outputs on the shared trunk.
  """

  num_classes: int
  dataset: str = 'emnist'
  width: float = 1.0
  conv_impl: str = 'auto'

  @nn.compact
  def __call__(self, x: jax.Array):
    if self.dataset == 'emnist':
      layers = ((3, 1, 64), (4, 2, 128), (3, 1, 128), (4, 2, 256), (3, 1, 256))
    else:
      layers = (
          (3, 1, 32),
          (4, 2, 64),
          (3, 1, 64),
          (4, 2, 128),
          (3, 1, 128),
          (4, 2, 256),
          (3, 1, 256),
          (4, 2, 512),
          (3, 1, 512),
      )
    for kernel_size, stride, channels in layers:
      x = Conv(
          networks.scaled(channels, self.width), kernel_size, stride=stride, impl=self.conv_impl
      )(x)
      x = nn.leaky_relu(x, negative_slope=0.2)
    x = x.reshape(x.shape[0], -1)
    out = nn.Dense(1 + self.num_classes)(x)
    return out[:, 0], out[:, 1:]


def aux_loss(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Mean softmax cross-entropy of the auxiliary head."""
  return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))


@flax.struct.dataclass
class ACGANData:
  images: jax.Array  # (N, H, W, C) uint8: D_tr
  labels: jax.Array  # (N,) int32 class indices (f's label order)


@dataclasses.dataclass(frozen=True, eq=False)
class ACGAN:
  """Static description; its state is an attack.AttackState, its step is pure."""

  generator: nn.Module
  critic: ACCritic
  num_classes: int
  image_shape: tuple
  value_range: tuple
  hyper: attack_lib.Hyper = attack_lib.Hyper()
  aux_weight: float = AUX_WEIGHT

  def optimizer(self) -> optax.GradientTransformation:
    h = self.hyper
    return optax.adam(h.learning_rate, b1=h.b1, b2=h.b2)

  def init(self, key: jax.Array) -> attack_lib.AttackState:
    k_g, k_d, k_rng = jax.random.split(key, 3)
    g_params = self.generator.init(
        k_g, jnp.zeros((1, self.hyper.z_dim)), jnp.zeros((1, self.num_classes))
    )['params']
    d_params = self.critic.init(k_d, jnp.zeros((1,) + tuple(self.image_shape)))['params']
    tx = self.optimizer()
    return attack_lib.AttackState(
        step=jnp.zeros((), jnp.int32),
        g_params=g_params,
        d_params=d_params,
        g_opt_state=tx.init(g_params),
        d_opt_state=tx.init(d_params),
        rng=k_rng,
    )

  def generate(self, g_params: PyTree, z: jax.Array, y: jax.Array) -> jax.Array:
    return self.generator.apply({'params': g_params}, z, y)

  def _sample(self, key: jax.Array, data: ACGANData):
    """A real batch with its labels, and z with fake labels of the same frequencies."""
    k_real, k_fake, k_z = jax.random.split(key, 3)
    b = self.hyper.batch_size
    idx = jax.random.randint(k_real, (b,), 0, data.labels.shape[0])
    real = images.to_float(data.images[idx], self.value_range)
    fake_labels = data.labels[jax.random.randint(k_fake, (b,), 0, data.labels.shape[0])]
    z = prior.sample_z(k_z, b, self.hyper.z_dim)
    return real, data.labels[idx], z, fake_labels

  def critic_update(self, state, key, data: ACGANData):
    h = self.hyper
    k_batch, k_eps = jax.random.split(key)
    real, real_labels, z, fake_labels = self._sample(k_batch, data)
    fake = jax.lax.stop_gradient(
        self.generate(state.g_params, z, prior.onehot_labels(fake_labels, self.num_classes))
    )
    eps = jax.random.uniform(k_eps, (h.batch_size,))

    def loss_fn(d_params):
      apply = lambda x: self.critic.apply({'params': d_params}, x)
      scores, logits = apply(jnp.concatenate([real, fake]))
      d_real, d_fake = jnp.split(scores, 2)
      logits_real, logits_fake = jnp.split(logits, 2)
      wdist = losses.critic_loss(d_real, d_fake)
      gp = losses.gradient_penalty(lambda x: apply(x)[0], real, fake, eps)
      aux_real = aux_loss(logits_real, real_labels)
      aux_fake = aux_loss(logits_fake, fake_labels)
      total = wdist + h.gp_weight * gp + self.aux_weight * (aux_real + aux_fake)
      acc = jnp.mean(jnp.argmax(logits_real, -1) == real_labels)
      return total, {
          'critic_loss': total,
          'wasserstein': -wdist,
          'gradient_penalty': gp,
          'aux_loss_real': aux_real,
          'aux_loss_fake': aux_fake,
          'aux_accuracy_real': acc,
      }

    grads, metrics = jax.grad(loss_fn, has_aux=True)(state.d_params)
    updates, d_opt_state = self.optimizer().update(grads, state.d_opt_state, state.d_params)
    return optax.apply_updates(state.d_params, updates), d_opt_state, metrics

  def generator_update(self, state, key, data: ACGANData):
    _, _, z, fake_labels = self._sample(key, data)
    y = prior.onehot_labels(fake_labels, self.num_classes)

    def loss_fn(g_params):
      scores, logits = self.critic.apply({'params': state.d_params}, self.generate(g_params, z, y))
      aux = aux_loss(logits, fake_labels)
      return -jnp.mean(scores) + self.aux_weight * aux, aux

    (g_loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.g_params)
    updates, g_opt_state = self.optimizer().update(grads, state.g_opt_state, state.g_params)
    return (
        optax.apply_updates(state.g_params, updates),
        g_opt_state,
        {'generator_loss': g_loss, 'generator_aux_loss': aux},
    )

  def step(self, state, key, data: ACGANData):
    """n_critic critic updates, then one generator update (as attack.Attack.step)."""
    return attack_lib.gan_iteration(self, state, key, data)

  def run(self, state, data: ACGANData, num_iterations: int):
    return attack_lib.run_iterations(self, state, data, num_iterations)


def build(config, problem) -> ACGAN:
  """An ACGAN of the attack's sizes and hyperparameters for this problem."""
  a = config.attack
  return ACGAN(
      generator=networks.Generator(dataset=problem.dataset, width=a.generator_width),
      critic=ACCritic(
          num_classes=len(problem.label_names),
          dataset=problem.dataset,
          width=a.critic_width,
          conv_impl=a.conv_impl,
      ),
      num_classes=len(problem.label_names),
      image_shape=tuple(networks.image_shape(problem.dataset)),
      value_range=networks.value_range(problem.dataset),
      hyper=attack_lib.Hyper.from_config(a),
  )


def train(config, problem, workdir: str):
  """Trains the baseline on D_tr for config.attack.steps; resumes from workdir.

  Returns (acgan, state). Writes metrics.jsonl, TensorBoard events, checkpoints
  and sample grids into workdir, like train.train_and_evaluate does.
  """
  os.makedirs(workdir, exist_ok=True)
  model = build(config, problem)
  data = ACGANData(
      images=jnp.asarray(problem.private_x), labels=jnp.asarray(problem.private_y, jnp.int32)
  )
  # Jitted: eagerly, each random draw and zero fill compiles on its own (same values).
  state = jax.jit(model.init)(jax.random.PRNGKey(config.seed + 100))
  ckpts = checkpoint.AttackCheckpoints(
      os.path.join(workdir, 'checkpoints'), max_to_keep=config.checkpoints_to_keep
  )
  if ckpts.latest_step() is not None:
    state, _ = ckpts.restore(jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state))
    logging.info('ACGAN: resumed from %s at step %d', workdir, int(state.step))
  metrics_log = tensorboard.Tee(
      train_lib.MetricsLog(os.path.join(workdir, 'metrics.jsonl'), int(state.step)),
      os.path.join(workdir, 'tensorboard'),
      resume_step=int(state.step),
  )
  try:
    state = train_lib.attack_loop(model, state, data, config, ckpts, metrics_log, name='ACGAN')
  finally:
    ckpts.close()
    metrics_log.close()
  return model, state


def sample(model: ACGAN, state, problem, config, key):
  """G(z, onehot(t)) for every target, as the attack's evaluation draws them."""
  return evaluate.sample_targets(
      model, state.g_params, problem.target_ids, config.eval.samples_per_target, key
  )


def evaluate_run(
    config, problem, model: ACGAN, state, workdir: str, f, judges, train_dir: str
) -> dict:
  """Evaluates a trained baseline on config's targets, as the attack is evaluated.

  f: (module, variables, metadata) of f; judges: [(name, (module, variables,
  metadata))] of the evaluators for the same D_tr, so both methods are judged
  by the same evaluators. Writes config.json, samples.png, results.json and report/ into
  workdir; returns the results.
  """
  from c2g_jax import report  # imported here: report is heavier than the step

  os.makedirs(workdir, exist_ok=True)
  # What it was judged with: a grid run again reads results.json only beside the
  # same config (experiment_grid.finished_results).
  checkpoint.write_json(os.path.join(workdir, 'config.json'), config.to_dict())
  cols = config.eval.grid_columns
  grid = evaluate.sample_targets(
      model, state.g_params, problem.target_ids, cols, jax.random.PRNGKey(config.seed + 2)
  )
  grid_path = os.path.join(workdir, 'samples.png')
  images.save_grid(
      grid_path, grid, model.value_range, [problem.label_names[t] for t in problem.target_ids]
  )
  generated = sample(model, state, problem, config, jax.random.PRNGKey(config.seed + 3))
  results = {
      'method': 'ACGAN',
      'setting': config.setting,
      'steps': int(state.step),
      'f_test_accuracy': f[2].get('test_accuracy'),
      'f_balanced_test_accuracy': f[2].get('balanced_test_accuracy'),
      'samples_per_target': config.eval.samples_per_target,
      'grid': grid_path,
  }
  results.update(
      report.run_report(
          workdir,
          config,
          problem,
          model,
          state.g_params,
          f,
          judges,
          generated,
          results,
          grid_path,
          method='ACGAN',
          train_dir=train_dir,
      )
  )
  checkpoint.write_json(os.path.join(workdir, 'results.json'), results)
  return results
