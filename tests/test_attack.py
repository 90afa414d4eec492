"""The attack's train step: frozen f, determinism, data parallelism, resume."""

import os
import subprocess
import sys
import re
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from c2g_jax import attack as attack_lib
from c2g_jax import augment
from c2g_jax import checkpoint
from c2g_jax import classifier
from c2g_jax import losses
from c2g_jax import networks
from c2g_jax import prior

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_tiny_attack(gamma_increment=0.5, batch_sharding=None, batch_size=8, **hyper):
  f_module = networks.Classifier(num_classes=10, dataset='emnist', width=0.125)
  f_vars = jax.jit(lambda k: f_module.init(k, jnp.zeros((1, 28, 28, 1)), train=False))(
      jax.random.PRNGKey(7)
  )
  attack = attack_lib.Attack(
      generator=networks.Generator(dataset='emnist', width=0.0625),
      critic=networks.Critic(dataset='emnist', width=0.0625, conv_impl='im2col'),
      f_apply=classifier.probs_fn(f_module, (0.0, 1.0)),
      num_classes=10,
      image_shape=(28, 28, 1),
      value_range=(0.0, 1.0),
      hyper=attack_lib.Hyper(
          batch_size=batch_size, n_critic=2, gamma_increment=gamma_increment, **hyper
      ),
      batch_sharding=batch_sharding,
  )
  rng = np.random.default_rng(0)
  data = attack_lib.AttackData(
      aux_images=jnp.asarray(rng.integers(0, 256, (32, 28, 28, 1), dtype=np.uint8)),
      aux_probs=jax.nn.softmax(jnp.asarray(rng.normal(size=(32, 10)) * 3, jnp.float32)),
      f_variables=f_vars,
  )
  return attack, data


def critic_step_draws(attack, key, data):
  """A critic update's draws, by hand: its key split three ways into a real
  batch (with f's labels of it), the latents (z, the prior's y) and the
  penalty's eps."""
  k_real, k_lat, k_eps = jax.random.split(key, 3)
  idx = jax.random.randint(k_real, (attack.hyper.batch_size,), 0, data.aux_images.shape[0])
  z, y = attack.sample_latents(k_lat, data)
  eps = jax.random.uniform(k_eps, (attack.hyper.batch_size,))
  return attack.to_float(data.aux_images[idx]), data.aux_probs[idx], z, y, eps


def committed_init(attack):
  """A jitted `init` whose state is committed to the device, as a restored one is:
  `run` then compiles once for both (an uncommitted state and a restored one are
  two signatures to jit, so two compiles)."""
  init = jax.jit(attack.init)
  return lambda key: jax.device_put(init(key), jax.devices()[0])


@pytest.fixture(scope='module')
def tiny():
  """One attack, a jitted `init` and a jitted `run`, shared so each compiles once
  (an eager init compiles each of its dozens of random draws on its own)."""
  attack, data = make_tiny_attack()
  return attack, data, jax.jit(attack.run, static_argnums=2), committed_init(attack)


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
  assert n_state < 3 * n_gd + 10  # params + two Adam moments each, + step/rng/counts
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
      jax.eval_shape(lambda: fresh)
  )
  assert info['step'] == 2 and int(restored.step) == 2
  resumed, _ = run(restored, data, 2)
  assert tree_equal(uninterrupted, resumed)


# --- attacker-side options: views of G(z, y), the max-margin similarity, recipes -----


def test_one_view_is_the_paper_generator_loss_bit_for_bit(tiny):
  # similarity_views=1 (whatever view_augment says) is today's loss: 2 steps give the
  # same state, bit for bit, as the default attack.
  attack, data, run, init = tiny
  one, _ = make_tiny_attack(similarity_views=1, view_augment='faces')
  state = init(jax.random.PRNGKey(0))
  default, m_default = run(state, data, 2)
  explicit, m_explicit = jax.jit(one.run, static_argnums=2)(state, data, 2)
  assert tree_equal(default, explicit) and tree_equal(m_default, m_explicit)


@pytest.mark.parametrize('similarity', ['log_likelihood', 'max_margin'])
def test_views_loss_is_the_mean_over_warped_copies_by_hand(similarity):
  k = 3
  attack, data = make_tiny_attack(similarity_views=k, similarity=similarity)
  assert attack.view_warp() == augment.PRESETS['characters']  # 'auto' on EMNIST
  # Jitted init: eagerly, each of its random draws compiles on its own.
  state = jax.jit(attack.init)(jax.random.PRNGKey(0)).replace(step=jnp.int32(4))  # gamma 2
  key = jax.random.PRNGKey(11)
  g_params, _, metrics = jax.jit(attack.generator_update)(state, key, data)

  # By hand: the step's z and y, then f on K separately warped copies of G(z, y),
  # the views' keys split from fold_in(step key, VIEW_KEY_SALT). Jitted as one
  # program (eagerly, every op of the warps and of f compiles on its own).
  sim_fn = losses.get_similarity(similarity)

  @jax.jit
  def by_hand(state, key, data):
    z, y = attack.sample_latents(key, data)
    fake = attack.generate(state.g_params, z, y)
    d_fake = attack._critic(state.d_params, fake)
    keys = jax.random.split(jax.random.fold_in(key, attack_lib.VIEW_KEY_SALT), k)
    per_view = [
        sim_fn(
            attack.f_apply(
                data.f_variables,
                augment.random_warp(keys[i], fake, augment.PRESETS['characters'], fill=0.0),
            ),
            y,
        )
        for i in range(k)
    ]
    return per_view, d_fake, sim_fn(attack.f_apply(data.f_variables, fake), y)

  per_view, d_fake, plain = by_hand(state, key, data)
  sim = np.mean([np.asarray(s) for s in per_view], axis=0)  # (B,)
  gamma = 2.0
  np.testing.assert_allclose(metrics['similarity'], np.mean(sim), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(
      metrics['generator_loss'], -np.mean(d_fake) - gamma * np.mean(sim), rtol=1e-5, atol=1e-6
  )
  # The views are real warps (not G(z, y) three times), and they differ from each other.
  plain = np.mean(plain)
  assert abs(float(metrics['similarity']) - plain) > 1e-6
  assert not np.allclose(per_view[0], per_view[1])
  # The gradient reaches G through the warps (f stays frozen).
  assert not tree_equal(g_params, state.g_params)


def test_view_blur_smooths_the_views_f_scores():
  # view_augment='none' leaves only the blur: a checkerboard's views lose most of
  # their contrast, and view_blur=0 gives the image back unchanged.
  board = jnp.asarray((np.indices((28, 28)).sum(0) % 2)[None, :, :, None], jnp.float32)
  board = jnp.repeat(board, 8, axis=0)
  key = jax.random.PRNGKey(1)
  sharp, _ = make_tiny_attack(similarity_views=4, view_augment='none')
  np.testing.assert_allclose(sharp.views(key, board), jnp.stack([board] * 4), atol=1e-6)
  soft, _ = make_tiny_attack(similarity_views=4, view_augment='none', view_blur=3.0)
  views = soft.views(key, board)
  assert views.shape == (4,) + board.shape
  contrast = jnp.mean(jnp.abs(views - 0.5)[:, :, 6:22, 6:22], axis=(2, 3, 4))
  assert float(jnp.median(contrast)) < 0.1  # 0.5 unblurred


def test_margin_cap_clips_each_view_by_hand():
  # The same step (same state, key and data, so the same z, y, G(z, y) and views)
  # without and with a cap set between the views' margins: the capped similarity
  # is the mean over views of min(margin, cap), computed from the uncapped run's
  # per-view margins.
  k = 3
  free, data = make_tiny_attack(similarity_views=k, similarity='max_margin')
  state = jax.jit(free.init)(jax.random.PRNGKey(0)).replace(step=jnp.int32(4))  # gamma 2
  key = jax.random.PRNGKey(11)

  @jax.jit
  def per_view_margins(state, key, data):
    z, y = free.sample_latents(key, data)
    fake = free.generate(state.g_params, z, y)
    views = free.views(jax.random.fold_in(key, attack_lib.VIEW_KEY_SALT), fake)
    probs = jax.vmap(lambda v: free.f_apply(data.f_variables, v))(views)
    return losses.max_margin_similarity(probs, y[None]), jnp.mean(
        free._critic(state.d_params, fake)
    )

  margins, d_fake = (np.asarray(a) for a in per_view_margins(state, key, data))  # (K, B)
  cap = float(np.median(margins[margins > 0]))  # the cap is >= 0
  assert np.any(margins > cap) and np.any(margins < cap)  # the cap bites, not everywhere
  capped, _ = make_tiny_attack(similarity_views=k, similarity='max_margin', margin_cap=cap)
  _, _, m_free = jax.jit(free.generator_update)(state, key, data)
  _, _, m_cap = jax.jit(capped.generator_update)(state, key, data)
  np.testing.assert_allclose(m_free['similarity'], margins.mean(), rtol=1e-5, atol=1e-6)
  expected = np.minimum(margins, cap).mean()
  np.testing.assert_allclose(m_cap['similarity'], expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(
      m_cap['generator_loss'], -d_fake - 2.0 * expected, rtol=1e-5, atol=1e-5
  )


@pytest.mark.parametrize(
    'hyper, fix',
    [
        ({'margin_cap': -1.0, 'similarity': 'max_margin'}, 'config.attack.margin_cap'),
        ({'margin_cap': 2.0}, 'config.attack.similarity=max_margin'),
    ],
)
def test_bad_margin_cap_names_the_key(hyper, fix):
  with pytest.raises(ValueError, match=re.escape(fix)):
    attack_lib.Hyper(**hyper)


def test_views_resume_from_checkpoint_equals_uninterrupted_run(tmp_path):
  attack, data = make_tiny_attack(similarity_views=3, similarity='max_margin')
  run = jax.jit(attack.run, static_argnums=2)
  f_before = jax.tree.map(np.array, data.f_variables)
  state = committed_init(attack)(jax.random.PRNGKey(0))
  uninterrupted, metrics = run(state, data, 4)
  assert np.all(np.isfinite(metrics['generator_loss']))
  ckpts = checkpoint.AttackCheckpoints(str(tmp_path / 'ckpt'))
  ckpts.save(2, run(state, data, 2)[0], {'step': 2})
  ckpts.close()
  restored, _ = checkpoint.AttackCheckpoints(str(tmp_path / 'ckpt')).restore(
      jax.eval_shape(lambda: attack.init(jax.random.PRNGKey(0)))
  )
  assert tree_equal(uninterrupted, run(restored, data, 2)[0])
  assert tree_equal(f_before, data.f_variables)


def test_recipes_set_the_keys_left_at_the_paper_values():
  paper = attack_lib.Hyper.from_config({})
  assert (paper.similarity_views, paper.similarity, paper.view_augment) == (
      1,
      'log_likelihood',
      'auto',
  )
  assert attack_lib.Hyper.from_config({'recipe': 'paper'}) == paper
  strong = attack_lib.Hyper.from_config(
      {'recipe': 'strong', 'similarity_views': 1, 'similarity': 'log_likelihood'}
  )
  assert (strong.similarity_views, strong.similarity, strong.selection_pool) == (9, 'max_margin', 4)
  mixed = attack_lib.Hyper.from_config(
      {'recipe': 'strong', 'similarity_views': 4, 'view_augment': 'none'}
  )
  assert (mixed.similarity_views, mixed.similarity, mixed.view_augment) == (4, 'max_margin', 'none')
  # The EMNIST config's keys reach Hyper; the default recipe is the strong one, the
  # tiny size (tests) keeps the paper's.
  import importlib.util

  spec = importlib.util.spec_from_file_location(
      '_emnist_cfg', os.path.join(REPO, 'configs', 'emnist.py')
  )
  emnist_config = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(emnist_config)
  config = emnist_config.get_config('tiny')
  assert attack_lib.Hyper.from_config(config.attack).similarity_views == 1
  config.attack.recipe = 'strong'
  assert attack_lib.Hyper.from_config(config.attack).similarity == 'max_margin'
  default = emnist_config.get_config('numeric_mutually_exclusive,cpu').attack
  assert default.recipe == 'strong'
  h = attack_lib.Hyper.from_config(default)
  assert (h.similarity_views, h.similarity, h.selection_pool, h.selection_views) == (
      9,
      'max_margin',
      4,
      8,
  )
  assert (h.onehot_share, h.onehot_rows) == (0.25, 16)  # 16 of the batch's 64 rows


def test_diversity_term_is_the_mode_seeking_loss_on_pairs_sharing_y():
  attack, data = make_tiny_attack(diversity_weight=0.3)
  state = jax.jit(attack.init)(jax.random.PRNGKey(0)).replace(step=jnp.int32(4))  # gamma 2
  key = jax.random.PRNGKey(11)
  _, _, metrics = jax.jit(attack.generator_update)(state, key, data)

  @jax.jit
  def by_hand(state, key, data):
    z, y = attack.sample_latents(key, data)
    y = jnp.concatenate([y[:4], y[:4]])  # batch 8: pairs (i, i + 4) share y
    fake = attack.generate(state.g_params, z, y)
    sim = losses.log_likelihood_similarity(attack.f_apply(data.f_variables, fake), y)
    return attack._critic(state.d_params, fake), sim, losses.mode_seeking_loss(fake, z)

  d_fake, sim, ms = by_hand(state, key, data)
  expected = -np.mean(d_fake) - 2.0 * np.mean(sim) + 0.3 * float(ms)
  np.testing.assert_allclose(metrics['generator_loss'], expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(metrics['similarity'], np.mean(sim), rtol=1e-5, atol=1e-6)
  # The control (gamma 0) keeps the term: it does not use f.
  control, _ = make_tiny_attack(gamma_increment=0.0, diversity_weight=0.3)
  _, _, m0 = jax.jit(control.generator_update)(state.replace(step=jnp.int32(0)), key, data)
  np.testing.assert_allclose(
      m0['generator_loss'], -np.mean(d_fake) + 0.3 * float(ms), rtol=1e-5, atol=1e-6
  )


def test_onehot_share_puts_uniform_one_hot_rows_before_the_papers_kde_draw():
  attack, data = make_tiny_attack(onehot_share=0.25)  # batch 8: 2 one-hot rows
  assert attack.hyper.onehot_rows == 2
  key = jax.random.PRNGKey(5)
  _, y = attack.sample_latents(key, data)
  k_y, _ = jax.random.split(key)
  # The KDE rows are the paper's draw for 6 rows under the same key.
  kde = prior.sample_labels(k_y, data.aux_probs, 6, attack.hyper.bandwidth)
  np.testing.assert_array_equal(np.asarray(y[2:]), np.asarray(kde))
  head = np.asarray(y[:2])
  np.testing.assert_array_equal(np.sort(head, axis=1)[:, :-1], 0.0)
  np.testing.assert_array_equal(head.max(axis=1), 1.0)
  # Over many draws every class of f comes up, about equally often.
  classes = np.argmax(
      prior.sample_mixed_labels(key, data.aux_probs, 4000, 0.01, 4000, attack.num_classes), -1
  )
  counts = np.bincount(np.asarray(classes), minlength=attack.num_classes)
  assert counts.min() > 0.8 * 4000 / attack.num_classes, counts
  # Share 0 is the paper's y exactly.
  paper, _ = make_tiny_attack()
  _, y0 = paper.sample_latents(key, data)
  np.testing.assert_array_equal(
      np.asarray(y0), np.asarray(prior.sample_labels(k_y, data.aux_probs, 8, 0.01))
  )


@pytest.mark.parametrize(
    'kwargs,match',
    [
        ({'recipe': 'best'}, 'config.attack.recipe'),
        ({'diversity_weight': -1.0}, 'config.attack.diversity_weight'),
        ({'diversity_weight': 1.0, 'batch_size': 1}, 'config.attack.batch_size'),
        ({'similarity_views': 0}, 'config.attack.similarity_views'),
        ({'view_augment': 'rotate'}, 'config.attack.view_augment'),
        ({'view_blur': -1.0}, 'config.attack.view_blur'),
        ({'view_blur': 5.0}, 'config.attack.view_blur'),
        ({'similarity': 'cosine'}, 'config.attack.similarity'),
        ({'grey_output': 'yes'}, 'config.attack.grey_output'),
        ({'onehot_share': 1.5}, 'config.attack.onehot_share'),
        ({'onehot_share': -0.1}, 'config.attack.onehot_share'),
    ],
)
def test_hyper_refuses_bad_values(kwargs, match):
  with pytest.raises(ValueError, match=match):
    attack_lib.Hyper.from_config(kwargs)


_DEVICES_SCRIPT = textwrap.dedent("""
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
""")


def test_one_device_and_four_devices_agree():
  # A fresh process, since the device count is fixed when jax starts.
  flags = os.environ.get('XLA_FLAGS', '') + ' --xla_force_host_platform_device_count=4'
  env = dict(os.environ, XLA_FLAGS=flags.strip(), JAX_PLATFORMS='cpu')
  script = _DEVICES_SCRIPT.format(tests=os.path.join(REPO, 'tests'))
  out = subprocess.run(
      [sys.executable, '-c', script], env=env, cwd=REPO, capture_output=True, text=True
  )
  assert out.returncode == 0, out.stderr[-3000:]
  assert out.stdout.startswith('agree')


def test_gamma_zero_trains_the_same_g_and_d_whatever_the_recipe():
  # The control (gamma = 0) fixes the keys that act only through f's term
  # (train.CONTROL_FIXED), so one control serves every recipe: at gamma = 0, views
  # of f and the (capped) max-margin similarity change the logged similarity, not G or D.
  paper, data = make_tiny_attack(gamma_increment=0.0)
  strong, _ = make_tiny_attack(
      gamma_increment=0.0, similarity_views=3, similarity='max_margin', margin_cap=0.1
  )
  state = jax.jit(paper.init)(jax.random.PRNGKey(0))
  a, m_a = jax.jit(paper.run, static_argnums=2)(state, data, 2)
  b, m_b = jax.jit(strong.run, static_argnums=2)(state, data, 2)
  assert tree_equal(a, b)
  assert not np.allclose(m_a['similarity'], m_b['similarity'])
  # With gamma > 0 the same two differ: the test can tell them apart.
  paper1, _ = make_tiny_attack(gamma_increment=0.5)
  strong1, _ = make_tiny_attack(
      gamma_increment=0.5, similarity_views=3, similarity='max_margin', margin_cap=0.1
  )
  state1 = state.replace(step=jnp.int32(2))
  c, _ = jax.jit(paper1.run, static_argnums=2)(state1, data, 1)
  d, _ = jax.jit(strong1.run, static_argnums=2)(state1, data, 1)
  assert not tree_equal(c.g_params, d.g_params)


def test_grey_output_is_the_mean_of_the_colour_channels_and_auto_follows_the_aux_data():
  def face_attack(grey_output):
    return attack_lib.Attack(
        generator=networks.Generator(dataset='facescrub', width=0.03125),
        critic=networks.Critic(dataset='facescrub', width=0.03125, conv_impl='im2col'),
        f_apply=lambda v, x: x,
        num_classes=3,
        image_shape=(64, 64, 3),
        value_range=(-1.0, 1.0),
        hyper=attack_lib.Hyper(batch_size=4, grey_output=grey_output),
    )

  colour, grey = face_attack('off'), face_attack('on')
  params = colour.init(jax.random.PRNGKey(0)).g_params
  z = jax.random.uniform(jax.random.PRNGKey(1), (4, 128), minval=-1.0, maxval=1.0)
  y = jax.nn.one_hot(jnp.array([0, 1, 2, 0]), 3)
  rgb, mono = np.asarray(colour.generate(params, z, y)), np.asarray(grey.generate(params, z, y))
  assert np.abs(rgb[..., 0] - rgb[..., 1]).max() > 1e-3  # G draws colour on its own
  for c in range(3):
    np.testing.assert_allclose(mono[..., c], rgb.mean(axis=-1), rtol=1e-6, atol=1e-6)

  aux_grey = np.repeat(np.arange(2 * 64 * 64, dtype=np.uint8).reshape(2, 64, 64, 1), 3, -1)
  aux_colour = aux_grey.copy()
  aux_colour[1, 5, 7, 2] += 1  # one pixel of one image is enough
  auto = attack_lib.Hyper(grey_output='auto')
  assert auto.resolve_grey_output(aux_grey).grey_output == 'on'
  assert auto.resolve_grey_output(aux_colour).grey_output == 'off'
  assert auto.resolve_grey_output(aux_grey[..., :1]).grey_output == 'on'
  assert attack_lib.Hyper(grey_output='off').resolve_grey_output(aux_grey).grey_output == 'off'
  with pytest.raises(ValueError, match='resolve_grey_output'):
    face_attack('auto')
