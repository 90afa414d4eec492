"""The attack's train step: frozen f, determinism, data parallelism, resume."""
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from c2g_jax import attack as attack_lib
from c2g_jax import checkpoint
from c2g_jax import classifier
from c2g_jax import networks

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_tiny_attack(gamma_increment=0.5, batch_sharding=None, batch_size=8):
  f_module = networks.Classifier(num_classes=10, dataset='emnist', width=0.125)
  f_vars = jax.jit(lambda k: f_module.init(k, jnp.zeros((1, 28, 28, 1)), train=False))(
      jax.random.PRNGKey(7))
  attack = attack_lib.Attack(
      generator=networks.Generator(dataset='emnist', width=0.0625),
      critic=networks.Critic(dataset='emnist', width=0.0625, conv_impl='im2col'),
      f_apply=classifier.probs_fn(f_module, (0.0, 1.0)),
      num_classes=10, image_shape=(28, 28, 1), value_range=(0.0, 1.0),
      hyper=attack_lib.Hyper(batch_size=batch_size, n_critic=2,
                             gamma_increment=gamma_increment),
      batch_sharding=batch_sharding)
  rng = np.random.default_rng(0)
  data = attack_lib.AttackData(
      aux_images=jnp.asarray(rng.integers(0, 256, (32, 28, 28, 1), dtype=np.uint8)),
      aux_probs=jax.nn.softmax(jnp.asarray(rng.normal(size=(32, 10)) * 3, jnp.float32)),
      f_variables=f_vars)
  return attack, data


@pytest.fixture(scope='module')
def tiny():
  """One attack, a jitted `init` and a jitted `run`, shared so each compiles once
  (an eager init compiles each of its dozens of random draws on its own)."""
  attack, data = make_tiny_attack()
  return attack, data, jax.jit(attack.run, static_argnums=2), jax.jit(attack.init)


def tree_equal(a, b):
  return all(jax.tree.leaves(jax.tree.map(lambda x, y: bool(np.array_equal(x, y)), a, b)))


def test_step_updates_g_and_d_and_leaves_f_bit_identical(tiny):
  attack, data, run, init = tiny
  f_before = jax.tree.map(np.array, data.f_variables)
  state = init(jax.random.PRNGKey(0))
  new_state, metrics = run(state, data, 2)
  assert int(new_state.step) == 2
  assert not tree_equal(state.g_params, new_state.g_params)
  assert not tree_equal(state.d_params, new_state.d_params)
  assert tree_equal(f_before, data.f_variables)
  # f has no optimizer state anywhere in the attack's state.
  n_state = sum(x.size for x in jax.tree.leaves(new_state))
  n_gd = sum(x.size for x in jax.tree.leaves((new_state.g_params, new_state.d_params)))
  assert n_state < 3 * n_gd + 10   # params + two Adam moments each, + step/rng/counts
  for name in ('critic_loss', 'gradient_penalty', 'generator_loss', 'similarity', 'gamma'):
    assert metrics[name].shape == (2,) and np.all(np.isfinite(metrics[name]))
  np.testing.assert_allclose(metrics['gamma'], [0.0, 0.5])


def test_classifier_term_reaches_the_generator(tiny):
  # With gamma > 0 the generator's update differs from the one with gamma = 0.
  attack, data, _, init = tiny
  state = init(jax.random.PRNGKey(0))
  key = jax.random.PRNGKey(3)
  update = jax.jit(attack.generator_update)
  with_f = update(state.replace(step=jnp.int32(4)), key, data)[0]
  without_f = update(state.replace(step=jnp.int32(0)), key, data)[0]
  assert not tree_equal(with_f, without_f)


def test_run_is_deterministic_and_chunking_does_not_matter(tiny):
  attack, data, run, init = tiny
  state = init(jax.random.PRNGKey(0))
  a, _ = run(state, data, 4)
  b, _ = run(run(state, data, 2)[0], data, 2)
  assert tree_equal(a, b)
  c, _ = run(state, data, 4)
  assert tree_equal(a, c)


def test_resume_from_checkpoint_equals_uninterrupted_run(tiny, tmp_path):
  attack, data, run, init = tiny
  state = init(jax.random.PRNGKey(0))
  uninterrupted, _ = run(state, data, 4)

  half, _ = run(state, data, 2)
  ckpts = checkpoint.AttackCheckpoints(str(tmp_path / 'ckpt'))
  ckpts.save(2, half, {'step': 2})
  ckpts.close()
  del half
  fresh = init(jax.random.PRNGKey(0))  # a new process would start from this
  restored, info = checkpoint.AttackCheckpoints(str(tmp_path / 'ckpt')).restore(
      jax.eval_shape(lambda: fresh))
  assert info['step'] == 2 and int(restored.step) == 2
  resumed, _ = run(restored, data, 2)
  assert tree_equal(uninterrupted, resumed)


_DEVICES_SCRIPT = textwrap.dedent('''
  import sys
  import jax, numpy as np
  sys.path.insert(0, {tests!r})
  from test_attack import make_tiny_attack
  from c2g_jax import parallel
  assert jax.device_count() == 4, jax.devices()

  def train_on(devices):
    mesh = parallel.data_mesh(devices)
    attack, data = make_tiny_attack(batch_sharding=parallel.batch_sharding(mesh))
    rep = parallel.replicated(mesh)
    data = jax.device_put(data, rep)
    state = jax.device_put(jax.jit(attack.init)(jax.random.PRNGKey(0)), rep)
    state, metrics = jax.jit(attack.run, static_argnums=2)(state, data, 2)
    assert len(state.g_params['Dense_0']['kernel'].sharding.device_set) == len(devices)
    return [np.asarray(x) for x in jax.tree.leaves((state.g_params, state.d_params))] + [
        np.asarray(metrics['critic_loss'])]

  one, four = train_on(jax.devices()[:1]), train_on(jax.devices())
  for i, (a, b) in enumerate(zip(one, four)):
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5, err_msg=str(i))
  print('agree', len(one))
''')


def test_one_device_and_four_devices_agree():
  # A fresh process, since the device count is fixed when jax starts.
  flags = os.environ.get('XLA_FLAGS', '') + ' --xla_force_host_platform_device_count=4'
  env = dict(os.environ, XLA_FLAGS=flags.strip(), JAX_PLATFORMS='cpu')
  script = _DEVICES_SCRIPT.format(tests=os.path.join(REPO, 'tests'))
  out = subprocess.run([sys.executable, '-c', script], env=env, cwd=REPO,
                       capture_output=True, text=True)
  assert out.returncode == 0, out.stderr[-3000:]
  assert out.stdout.startswith('agree')
