import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from c2g_jax import networks
from c2g_jax.conv import Conv, default_conv_impl, default_kernel_init, resolve_conv_impl
from c2g_jax.networks import (
    Classifier,
    Critic,
    Generator,
    ResNet,
    VGG,
    Z_DIM,
    build_classifier,
    image_shape,
    value_range,
)

DATASETS = ('emnist', 'facescrub')
NARROW = 1 / 16
BATCH = 2


def _abstract_init(module, *args, **kwargs):
  """Variable shapes of module.init, without computing anything."""
  return jax.eval_shape(lambda *a: module.init(jax.random.key(0), *a, **kwargs), *args)


def _abstract_apply(module, variables, *args, **kwargs):
  return jax.eval_shape(lambda v, *a: module.apply(v, *a, **kwargs), variables, *args)


def _numpy_init(module, *args, seed=0):
  """Variables with module.init's structure, drawn with numpy.

  XLA:CPU takes about half a second to compile each threefry draw, so a
  real init of a network costs several seconds; the tests here only need
  reasonably scaled values, not flax's exact initial state.
  """
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    name = path[-1].key
    if name == 'mean':
      return np.zeros(leaf.shape, leaf.dtype)
    if name in ('var', 'scale'):
      return np.ones(leaf.shape, leaf.dtype)
    fan_in = math.prod(leaf.shape[:-1]) if leaf.ndim > 1 else 10
    return (rng.standard_normal(leaf.shape) / np.sqrt(fan_in)).astype(leaf.dtype)

  shapes = _abstract_init(module, *args)
  return jax.tree_util.tree_map_with_path(draw, shapes)


def _images(dataset, batch=BATCH, seed=0):
  lo, hi = value_range(dataset)
  shape = (batch,) + image_shape(dataset)
  return np.random.default_rng(seed).uniform(lo, hi, shape).astype(np.float32)


def _param_count(params):
  return sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(params))


def _assert_trees_close(actual, desired, **tolerances):
  assert jax.tree_util.tree_structure(actual) == jax.tree_util.tree_structure(desired)
  jax.tree_util.tree_map(
      lambda a, d: np.testing.assert_allclose(a, d, **tolerances), actual, desired
  )


# ---------------------------------------------------------------- shapes


@pytest.mark.parametrize('dataset', DATASETS)
def test_full_width_shapes(dataset):
  x = jax.ShapeDtypeStruct((BATCH,) + image_shape(dataset), jnp.float32)
  num_classes = 7

  for module in (Classifier(num_classes, dataset), ResNet(num_classes, dataset)):
    variables = _abstract_init(module, x)
    assert set(variables) == {'params', 'batch_stats'}
    logits = _abstract_apply(module, variables, x)
    assert logits.shape == (BATCH, num_classes)

  critic = Critic(dataset)
  variables = _abstract_init(critic, x)
  assert set(variables) == {'params'}  # no normalisation layers
  assert _abstract_apply(critic, variables, x).shape == (BATCH,)

  z = jax.ShapeDtypeStruct((BATCH, Z_DIM), jnp.float32)
  y = jax.ShapeDtypeStruct((BATCH, num_classes), jnp.float32)
  generator = Generator(dataset)
  variables = _abstract_init(generator, z, y)
  images = _abstract_apply(generator, variables, z, y)
  assert images.shape == (BATCH,) + image_shape(dataset)


def test_emnist_critic_param_count():
  x = jax.ShapeDtypeStruct((1, 28, 28, 1), jnp.float32)
  params = _abstract_init(Critic('emnist'), x)['params']
  # (kernel, cin, cout) per conv; each has k*k*cin*cout weights + cout biases.
  convs = ((3, 1, 64), (4, 64, 128), (3, 128, 128), (4, 128, 256), (3, 256, 256))
  expected = sum(k * k * cin * cout + cout for k, cin, cout in convs)
  expected += 7 * 7 * 256 * 1 + 1  # two stride-2 convs: 28 -> 14 -> 7
  assert expected == 1_406_593
  assert _param_count(params) == expected


def test_emnist_classifier_param_count():
  x = jax.ShapeDtypeStruct((1, 28, 28, 1), jnp.float32)
  params = _abstract_init(Classifier(10, 'emnist'), x)['params']
  expected = (5 * 5 * 1 * 32 + 32) + 2 * 32  # conv + BN scale/bias
  expected += (5 * 5 * 32 * 64 + 64) + 2 * 64
  expected += 7 * 7 * 64 * 2048 + 2048
  expected += 2048 * 10 + 10
  assert _param_count(params) == expected


def test_resnet_full_width_feature_size():
  model = ResNet(10, 'emnist')
  x = jax.ShapeDtypeStruct((BATCH, 28, 28, 1), jnp.float32)
  variables = _abstract_init(model, x)
  _, features = _abstract_apply(model, variables, x, return_features=True)
  assert features.shape == (BATCH, 4 * 64)


# ---------------------------------------------------------------- conv


def test_conv_impl_names():
  assert resolve_conv_impl('auto') == default_conv_impl()
  assert resolve_conv_impl('im2col') == 'im2col'
  assert default_conv_impl() == ('im2col' if jax.default_backend() == 'cpu' else 'xla')
  with pytest.raises(ValueError, match="'winograd'.*xla.*im2col"):
    resolve_conv_impl('winograd')
  with pytest.raises(ValueError, match='winograd'):
    _abstract_init(Conv(4, 3, impl='winograd'), jax.ShapeDtypeStruct((1, 8, 8, 2), jnp.float32))


def test_conv_real_init():
  conv = Conv(64, 3, impl='xla')
  variables = jax.jit(conv.init)(jax.random.key(0), jnp.zeros((1, 8, 8, 32)))
  kernel = variables['params']['kernel']
  assert kernel.shape == (3, 3, 32, 64)
  # LeCun normal (truncated), as flax's own Conv: std about 1/sqrt(fan_in).
  assert abs(float(kernel.std()) * math.sqrt(3 * 3 * 32) - 1.0) < 0.1
  np.testing.assert_array_equal(variables['params']['bias'], np.zeros(64))
  assert default_kernel_init(jax.random.key(1), (4, 4, 2, 3)).shape == (4, 4, 2, 3)


@pytest.mark.parametrize('kernel_size', (1, 3, 4, 5))
@pytest.mark.parametrize('stride', (1, 2))
def test_conv_impls_agree(kernel_size, stride):
  x = np.random.default_rng(1).standard_normal((2, 14, 14, 3)).astype(np.float32)
  xla_conv = Conv(5, kernel_size, stride=stride, impl='xla')
  im2col_conv = Conv(5, kernel_size, stride=stride, impl='im2col')
  # Random (non-zero) biases, so their broadcast is checked too.
  variables = _numpy_init(xla_conv, x, seed=2)
  assert jax.tree_util.tree_structure(
      _abstract_init(im2col_conv, x)
  ) == jax.tree_util.tree_structure(variables)

  def output_and_grads(module):
    def loss(v):
      y = module.apply(v, x)
      return jnp.sum(jnp.sin(y)), y

    return jax.jit(jax.value_and_grad(loss, has_aux=True))(variables)

  (_, out_xla), grads_xla = output_and_grads(xla_conv)
  (_, out_im2col), grads_im2col = output_and_grads(im2col_conv)
  assert out_xla.shape == out_im2col.shape
  np.testing.assert_allclose(out_im2col, out_xla, atol=1e-5, rtol=1e-5)
  _assert_trees_close(grads_im2col, grads_xla, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
    'size,kernel_size,stride,expected',
    [
        (28, 3, 1, 28),
        (28, 4, 2, 14),
        (14, 4, 2, 7),
        (28, 5, 2, 14),
        (64, 5, 2, 32),
        (64, 4, 2, 32),
        (28, 1, 2, 14),
    ],
)
@pytest.mark.parametrize('impl', ('xla', 'im2col'))
def test_conv_output_size(size, kernel_size, stride, expected, impl):
  conv = Conv(2, kernel_size, stride=stride, impl=impl)
  x = jax.ShapeDtypeStruct((1, size, size, 1), jnp.float32)
  variables = _abstract_init(conv, x)
  assert _abstract_apply(conv, variables, x).shape == (1, expected, expected, 2)


def test_critic_gradient_penalty_agrees_between_impls():
  x = _images('emnist', batch=3, seed=3)
  xla_critic = Critic('emnist', width=NARROW, conv_impl='xla')
  im2col_critic = Critic('emnist', width=NARROW, conv_impl='im2col')
  params = _numpy_init(xla_critic, x, seed=4)['params']

  def penalty(critic):
    # WGAN-GP: per-sample input gradients, then differentiate w.r.t. params.
    def loss(p):
      g = jax.grad(lambda xs: jnp.sum(critic.apply({'params': p}, xs)))(x)
      g = g.reshape(x.shape[0], -1)
      return jnp.mean((jnp.linalg.norm(g, axis=-1) - 1.0) ** 2)

    return jax.jit(jax.value_and_grad(loss))(params)

  loss_xla, grads_xla = penalty(xla_critic)
  loss_im2col, grads_im2col = penalty(im2col_critic)
  np.testing.assert_allclose(loss_im2col, loss_xla, rtol=1e-5)
  _assert_trees_close(grads_im2col, grads_xla, atol=1e-5, rtol=1e-4)


# ---------------------------------------------------------------- behaviour


@pytest.mark.parametrize('dataset', DATASETS)
def test_generator_output_range(dataset):
  generator = Generator(dataset, width=NARROW)
  # Large noise, to push the output activation towards saturation.
  z = 10.0 * np.random.default_rng(5).standard_normal((BATCH, Z_DIM)).astype(np.float32)
  y = np.eye(5, dtype=np.float32)[:BATCH]
  images = jax.jit(generator.apply)(_numpy_init(generator, z, y, seed=6), z, y)
  lo, hi = value_range(dataset)
  assert images.shape == (BATCH,) + image_shape(dataset)
  assert float(images.min()) >= lo and float(images.max()) <= hi
  assert float(images.max()) > float(images.min())


# The behaviour tests below use the 'xla' conv: it compiles faster, and the
# two impls are checked against each other above.


@pytest.mark.parametrize('architecture', ('classifier', 'resnet'))
def test_train_mode_updates_batch_stats(architecture):
  model = build_classifier(architecture, 4, 'emnist', width=NARROW, conv_impl='xla')
  x = _images('emnist', seed=7)
  variables = _numpy_init(model, x, seed=8)

  @jax.jit
  def train_step(dropout_seed):
    return model.apply(
        variables,
        x,
        train=True,
        mutable=['batch_stats'],
        rngs={'dropout': jax.random.key(dropout_seed)},
    )

  logits, updates = train_step(0)
  assert logits.shape == (BATCH, 4)
  changed = jax.tree_util.tree_map(
      lambda old, new: bool(jnp.any(old != new)), variables['batch_stats'], updates['batch_stats']
  )
  assert all(jax.tree_util.tree_leaves(changed))
  if architecture == 'classifier':
    # Dropout is active in train mode only.
    assert not np.allclose(logits, train_step(1)[0])

  # Eval mode needs no dropout rng and is deterministic.
  evaluate = jax.jit(model.apply)
  np.testing.assert_array_equal(evaluate(variables, x), evaluate(variables, x))


@pytest.mark.parametrize('dataset', DATASETS)
def test_resnet_return_features(dataset):
  model = ResNet(6, dataset, width=NARROW, conv_impl='xla')
  x = _images(dataset, seed=12)
  variables = _numpy_init(model, x, seed=13)
  logits, features = jax.jit(lambda v: model.apply(v, x, return_features=True))(variables)
  assert logits.shape == (BATCH, 6)
  last_stage_channels = {'emnist': 64, 'facescrub': 128}[dataset]
  assert features.shape == (BATCH, 4 * networks.scaled(last_stage_channels, NARROW))
  # Features are the pooled input of the last dense layer.
  dense = variables['params']['Dense_0']
  np.testing.assert_allclose(
      features @ dense['kernel'] + dense['bias'], logits, rtol=1e-4, atol=1e-5
  )


@pytest.mark.parametrize('dataset', DATASETS)
def test_vgg_logits_features_and_dropout(dataset):
  model = VGG(6, dataset, width=NARROW, conv_impl='xla')
  x = _images(dataset, seed=14)
  variables = _numpy_init(model, x, seed=15)
  logits, features = jax.jit(lambda v: model.apply(v, x, return_features=True))(variables)
  assert logits.shape == (BATCH, 6)
  assert features.shape == (BATCH, networks.scaled(256, NARROW))
  # Inference: the class layer reads the features (dropout is off).
  dense = variables['params']['Dense_1']
  np.testing.assert_allclose(
      features @ dense['kernel'] + dense['bias'], logits, rtol=1e-4, atol=1e-5
  )
  # Training: dropout changes the logits, and batch statistics are updated.
  train_logits, updates = model.apply(
      variables, x, train=True, rngs={'dropout': jax.random.PRNGKey(0)}, mutable=['batch_stats']
  )
  assert not np.allclose(train_logits, logits)
  assert jax.tree.structure(updates['batch_stats']) == jax.tree.structure(variables['batch_stats'])


def test_build_classifier():
  assert isinstance(build_classifier('classifier', 3, 'emnist'), Classifier)
  model = build_classifier('resnet', 3, 'facescrub', width=0.5, conv_impl='xla')
  assert isinstance(model, ResNet)
  assert (model.num_classes, model.dataset, model.width, model.conv_impl) == (
      3,
      'facescrub',
      0.5,
      'xla',
  )
  assert networks.ARCHITECTURES == {'classifier': Classifier, 'resnet': ResNet, 'vgg': VGG}
  assert isinstance(build_classifier('vgg', 3, 'emnist'), VGG)
  with pytest.raises(ValueError, match="'mlp'.*classifier.*resnet.*vgg"):
    build_classifier('mlp', 3, 'emnist')
  with pytest.raises(ValueError, match="'mnist'.*emnist.*facescrub"):
    build_classifier('resnet', 3, 'mnist')


def test_dataset_helpers():
  assert image_shape('emnist') == (28, 28, 1)
  assert image_shape('facescrub') == (64, 64, 3)
  assert value_range('emnist') == (0.0, 1.0)
  assert value_range('facescrub') == (-1.0, 1.0)
  assert Z_DIM == 128
  with pytest.raises(ValueError, match='cifar'):
    image_shape('cifar')
  with pytest.raises(ValueError, match='cifar'):
    _abstract_init(Critic('cifar'), jax.ShapeDtypeStruct((1, 28, 28, 1), jnp.float32))


def test_width_scaling():
  assert networks.scaled(64, NARROW) == 4
  assert networks.scaled(3, 0.01) == 1
