"""Networks of PreImageGAN (the Classifier-to-Generator attack), Appendix E.

`dataset` is 'emnist' (28x28x1 images in [0, 1]) or 'facescrub' (64x64x3
images in [-1, 1]). Every module takes `width`, a multiplier on every hidden
channel count and hidden dense size, so tests and CPU runs can use narrow
versions of the same architecture; input and output sizes never scale.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn

from c2g_jax.conv import Conv, default_kernel_init

Z_DIM = 128
DATASETS = ('emnist', 'facescrub')

_IMAGE_SHAPES = {'emnist': (28, 28, 1), 'facescrub': (64, 64, 3)}
_VALUE_RANGES = {'emnist': (0.0, 1.0), 'facescrub': (-1.0, 1.0)}

_LEAK = 0.2
# PyTorch BatchNorm defaults (its momentum 0.1 is flax's 0.9).
_BN_MOMENTUM = 0.9
_BN_EPSILON = 1e-5


def _check_dataset(dataset: str) -> str:
  if dataset not in DATASETS:
    raise ValueError(f'unknown dataset {dataset!r}; choose one of {DATASETS}')
  return dataset


def image_shape(dataset: str) -> tuple[int, int, int]:
  """(H, W, C) of the dataset's images."""
  return _IMAGE_SHAPES[_check_dataset(dataset)]


def value_range(dataset: str) -> tuple[float, float]:
  """(lo, hi) of the dataset's pixel values, as the generator produces them."""
  return _VALUE_RANGES[_check_dataset(dataset)]


def scaled(channels: int, width: float) -> int:
  """A hidden size multiplied by `width`, never below 1."""
  return max(1, int(round(channels * width)))


def _leaky_relu(x: jax.Array) -> jax.Array:
  return nn.leaky_relu(x, negative_slope=_LEAK)


def _batch_norm(train: bool, name: str | None = None) -> nn.BatchNorm:
  return nn.BatchNorm(
      use_running_average=not train, momentum=_BN_MOMENTUM, epsilon=_BN_EPSILON, name=name
  )


class Classifier(nn.Module):
  """The published classifier f under attack; returns logits (callers softmax)."""

  num_classes: int
  dataset: str = 'emnist'
  width: float = 1.0
  conv_impl: str = 'auto'

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    conv_channels = {'emnist': (32, 64), 'facescrub': (32, 64, 128)}[_check_dataset(self.dataset)]
    for channels in conv_channels:
      x = Conv(scaled(channels, self.width), 5, stride=2, impl=self.conv_impl)(x)
      x = _batch_norm(train)(x)
      x = nn.relu(x)
    x = x.reshape(x.shape[0], -1)
    x = nn.Dropout(0.3, deterministic=not train)(x)
    x = nn.Dense(scaled(2048, self.width))(x)
    # Appendix E lists no activation here, but two stacked linear layers
    # would collapse into one, so a ReLU is assumed.
    x = nn.relu(x)
    x = nn.Dropout(0.5, deterministic=not train)(x)
    return nn.Dense(self.num_classes)(x)


class Generator(nn.Module):
  """Conditional generator G(z, y): noise (B, Z_DIM) and condition (B, d) to images."""

  dataset: str = 'emnist'
  width: float = 1.0

  @nn.compact
  def __call__(self, z: jax.Array, y: jax.Array) -> jax.Array:
    if _check_dataset(self.dataset) == 'emnist':
      start_size, start_channels = 7, 256
      deconv_channels: Sequence[int] = (128, 64)
    else:
      start_size, start_channels = 4, 512
      deconv_channels = (256, 128, 64, 32)
    out_channels = image_shape(self.dataset)[-1]

    h = jnp.concatenate([z, y.astype(z.dtype)], axis=-1)
    start_channels = scaled(start_channels, self.width)
    h = nn.Dense(start_size * start_size * start_channels)(h)
    # Appendix E lists no activation after this dense layer; without one
    # it would fold into the first deconvolution, so LeakyReLU is assumed.
    h = _leaky_relu(h)
    h = h.reshape(h.shape[0], start_size, start_size, start_channels)
    for channels in deconv_channels:
      # 'SAME' padding with stride 2 doubles the spatial size.
      h = nn.ConvTranspose(
          scaled(channels, self.width),
          (4, 4),
          strides=(2, 2),
          padding='SAME',
          kernel_init=default_kernel_init,
      )(h)
      h = _leaky_relu(h)
    # The paper's final "deconv 3x3 stride 1" is a size-preserving conv.
    # The generator is never double-differentiated, so XLA's conv is fine.
    h = Conv(out_channels, 3, stride=1, impl='xla')(h)
    return nn.sigmoid(h) if self.dataset == 'emnist' else jnp.tanh(h)


class Critic(nn.Module):
  """WGAN-GP critic; returns one score per image, shape (B,).

  No normalisation layers: the gradient penalty is taken per sample, and
  batch statistics would couple the samples of a batch.

  With num_classes > 0 it is a projection critic (Miyato and Koyama, 2018): the
  score of x under a label vector y (B, num_classes) adds the inner product of
  x's features with a learned embedding of y, so it scores how much x looks like
  the images of label y. 0 = the paper's critic, which sees no label.
  """

  dataset: str = 'emnist'
  width: float = 1.0
  conv_impl: str = 'auto'
  num_classes: int = 0

  @nn.compact
  def __call__(self, x: jax.Array, y: jax.Array | None = None) -> jax.Array:
    if (y is None) != (self.num_classes == 0):
      raise ValueError(
          f'Critic(num_classes={self.num_classes}) takes a label vector y exactly when '
          'num_classes > 0'
      )
    if _check_dataset(self.dataset) == 'emnist':
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
      x = Conv(scaled(channels, self.width), kernel_size, stride=stride, impl=self.conv_impl)(x)
      x = _leaky_relu(x)
    x = x.reshape(x.shape[0], -1)
    score = nn.Dense(1)(x)[:, 0]
    if self.num_classes:
      embedding = nn.Dense(x.shape[-1], use_bias=False, name='label_embedding')(y.astype(x.dtype))
      score = score + jnp.sum(embedding * x, axis=-1)
    return score


class _Bottleneck(nn.Module):
  """1x1 reduce -> 3x3 (strided) -> 1x1 expand to 4c, plus a shortcut."""

  channels: int
  stride: int
  conv_impl: str

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    out_channels = 4 * self.channels
    h = Conv(self.channels, 1, impl=self.conv_impl, use_bias=False)(x)
    h = nn.relu(_batch_norm(train)(h))
    h = Conv(self.channels, 3, stride=self.stride, impl=self.conv_impl, use_bias=False)(h)
    h = nn.relu(_batch_norm(train)(h))
    h = Conv(out_channels, 1, impl=self.conv_impl, use_bias=False)(h)
    h = _batch_norm(train)(h)
    shortcut = x
    if self.stride != 1 or x.shape[-1] != out_channels:
      shortcut = Conv(
          out_channels,
          1,
          stride=self.stride,
          impl=self.conv_impl,
          use_bias=False,
          name='projection',
      )(x)
      shortcut = _batch_norm(train, name='projection_bn')(shortcut)
    return nn.relu(h + shortcut)


class ResNet(nn.Module):
  """The independent evaluation classifier f' (an architecture unlike f's).

  Appendix E's exact text was not available offline, so this follows its
  description (a residual network of bottleneck blocks) with sizes chosen
  here: a 3x3 stem of 64 channels (stride 2 for facescrub's 64x64 inputs),
  three stages of two bottleneck blocks with c = 16, 32, 64 (emnist) or
  32, 64, 128 (facescrub), the second and third stages starting with
  stride 2, then global average pooling and a dense layer.
  """

  num_classes: int
  dataset: str = 'emnist'
  width: float = 1.0
  conv_impl: str = 'auto'

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False, return_features: bool = False):
    if _check_dataset(self.dataset) == 'emnist':
      stem_stride, stage_channels = 1, (16, 32, 64)
    else:
      stem_stride, stage_channels = 2, (32, 64, 128)
    blocks_per_stage = 2

    x = Conv(scaled(64, self.width), 3, stride=stem_stride, impl=self.conv_impl, use_bias=False)(x)
    x = nn.relu(_batch_norm(train)(x))
    for stage, channels in enumerate(stage_channels):
      for block in range(blocks_per_stage):
        stride = 2 if stage > 0 and block == 0 else 1
        x = _Bottleneck(scaled(channels, self.width), stride, self.conv_impl)(x, train)
    features = jnp.mean(x, axis=(1, 2))
    logits = nn.Dense(self.num_classes)(features)
    return (logits, features) if return_features else logits


class VGG(nn.Module):
  """A VGG-style evaluator: a second opinion unlike both f and the ResNet.

  Stages of two 3x3 conv + batch norm + ReLU layers and a 2x2 max pool
  (channels 32, 64, 128 for emnist; 32, 64, 128, 256 for facescrub), then a
  dense layer of 256 with dropout and the class layer.
  """

  num_classes: int
  dataset: str = 'emnist'
  width: float = 1.0
  conv_impl: str = 'auto'

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False, return_features: bool = False):
    stage_channels = {'emnist': (32, 64, 128), 'facescrub': (32, 64, 128, 256)}[
        _check_dataset(self.dataset)
    ]
    for channels in stage_channels:
      for _ in range(2):
        x = Conv(scaled(channels, self.width), 3, impl=self.conv_impl, use_bias=False)(x)
        x = nn.relu(_batch_norm(train)(x))
      x = nn.max_pool(x, (2, 2), strides=(2, 2))
    x = x.reshape(x.shape[0], -1)
    features = nn.relu(nn.Dense(scaled(256, self.width))(x))
    h = nn.Dropout(0.3, deterministic=not train)(features)
    logits = nn.Dense(self.num_classes)(h)
    return (logits, features) if return_features else logits


ARCHITECTURES = {'classifier': Classifier, 'resnet': ResNet, 'vgg': VGG}
# Architectures an evaluator may be trained as (config.evaluators names them).
EVALUATOR_ARCHITECTURES = ('resnet', 'vgg', 'classifier')


def build_classifier(
    architecture: str, num_classes: int, dataset: str, width: float = 1.0, conv_impl: str = 'auto'
) -> nn.Module:
  """Rebuilds a classifier module from the names stored with a checkpoint."""
  if architecture not in ARCHITECTURES:
    raise ValueError(
        f'unknown architecture {architecture!r}; ' f'choose one of {tuple(ARCHITECTURES)}'
    )
  _check_dataset(dataset)
  return ARCHITECTURES[architecture](
      num_classes=num_classes, dataset=dataset, width=width, conv_impl=conv_impl
  )


def release_metadata(architecture: str, width: float, dataset: str, label_names) -> dict:
  """What a saved classifier of ours carries to be rebuilt and fed (checkpoint.py):
  its architecture and width, its dataset's input shape and value range, its classes."""
  return {
      'architecture': architecture,
      'dataset': dataset,
      'width': width,
      'num_classes': len(label_names),
      'label_names': label_names,
      'input_shape': list(image_shape(dataset)),
      'value_range': list(value_range(dataset)),
  }
