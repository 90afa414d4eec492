"""One PreImageGAN attack: its state pytree and its pure, jittable train step.

A generator iteration is `n_critic` WGAN-GP critic updates (a `lax.scan`) and one
generator update whose loss adds -gamma * similarity(f(G(z, y)), y). The frozen
classifier's variables travel in `AttackData`, are read under `stop_gradient` and
never meet an optimizer. Every random draw comes from the key handed to the step,
and `run` derives that key from (state.rng, state.step), so a run restarted from a
checkpoint draws exactly what the uninterrupted run would have drawn.
"""

import dataclasses
import math
import numbers
from typing import Any, Callable, Optional

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from c2g_jax import augment
from c2g_jax import images
from c2g_jax import losses
from c2g_jax import networks
from c2g_jax import prior
from c2g_jax import recipes

PyTree = Any
COMPUTE_DTYPES = ('float32', 'bfloat16')
GREY_OUTPUTS = ('off', 'on', 'auto')
VIEW_AUGMENTS = ('auto',) + augment.KINDS
SURROGATES = ('',) + tuple(networks.ARCHITECTURES)  # '' = none
CRITIC_AUGMENTS = ('off', 'auto') + tuple(k for k in augment.KINDS if k != 'none')
CRITIC_CONDITIONS = ('off', 'projection')
# The Hyper fields that take one of a fixed set of names, and those names: Hyper
# and checks.check_config (config.attack.KEY) both refuse anything else.
CHOICES = {
    'grey_output': GREY_OUTPUTS,
    'surrogate': SURROGATES,
    'critic_augment': CRITIC_AUGMENTS,
    'critic_condition': CRITIC_CONDITIONS,
    'view_augment': VIEW_AUGMENTS,
}
# The widest view blur (pixels): the taps span 3 widths each side, and a wider
# blur leaves f nothing of a 28-pixel character to read.
MAX_BLUR = 4.0
# The views' key is fold_in(generator key, VIEW_KEY_SALT). A small salt would not
# do: with jax_threefry_partitionable (the default), fold_in(k, i) == split(k, n)[i],
# so fold_in(k, 1) would repeat the key that draws z.
VIEW_KEY_SALT = 0x76696577  # 'view'
# The critic's warps (critic_augment) are keyed fold_in(step key, CRITIC_KEY_SALT),
# so turning them on changes no other draw of the step.
CRITIC_KEY_SALT = 0x63726974  # 'crit'

# Attacker-side recipes (config.attack.recipe): recipes.py, where they are
# measured and recorded; kept here under their old name.
RECIPES = recipes.RECIPES


@flax.struct.dataclass
class AttackState:
  step: jax.Array  # generator steps taken (int32); gamma is derived from it
  g_params: PyTree
  d_params: PyTree
  g_opt_state: PyTree
  d_opt_state: PyTree
  rng: jax.Array  # base key; step keys are fold_in(rng, step)


@flax.struct.dataclass
class AttackData:
  """What the attack reads but never changes."""

  aux_images: jax.Array  # (N, H, W, C) uint8 auxiliary images
  aux_probs: jax.Array  # (N, d) f's predictions on them: the label KDE's points
  f_variables: PyTree  # the published classifier, frozen
  # The attacker's surrogate of f (surrogate.py), frozen; None without one.
  surrogate_variables: PyTree = None


@dataclasses.dataclass(frozen=True)
class Hyper:
  """Training hyperparameters (the paper's values by default)."""

  batch_size: int = 64
  n_critic: int = 5
  gp_weight: float = 10.0
  learning_rate: float = 2e-4
  b1: float = 0.5
  b2: float = 0.999
  z_dim: int = 128
  bandwidth: float = 0.01
  # Share of each batch (rounded to rows) whose y is onehot(c), c uniform over
  # f's classes, instead of a KDE draw (prior.sample_mixed_labels): G is asked
  # for onehot(t) after training. It changes the GAN, so the control keeps it.
  # 0 = the paper.
  onehot_share: float = 0.0
  gamma_start: float = 0.0
  gamma_increment: float = 1e-3
  gamma_max: float = 10.0
  similarity: str = 'log_likelihood'
  # The f term scores K random differentiable warps (view_augment: augment.py's
  # presets; 'auto' = characters or faces by the dataset) of each G(z, y) and
  # averages the similarity over them; 1 = G(z, y) itself, unwarped (the paper).
  # For log_likelihood the average is the log of the geometric mean of f's
  # probabilities of y over the views.
  similarity_views: int = 1
  view_augment: str = 'auto'
  # The views (and the selection's) are also blurred, each by a Gaussian of
  # standard deviation drawn in [0, view_blur] pixels, so G cannot win f's vote
  # with fine textures (the checkerboards of ORL's weak seeds) that a blur
  # destroys. 0 = no blur (the paper).
  view_blur: float = 0.0
  # max_margin only: each view's margin counts up to this value and no further
  # (the confidence kappa of Carlini and Wagner's loss), so once f is that sure
  # of a view, f's term stops pushing it and the critic alone shapes the image.
  # 0 = no cap (the margin's push never fades).
  margin_cap: float = 0.0
  # Final selection, after training (evaluate.select_targets): draw
  # selection_pool x N candidates G(z, onehot(t)) per target and keep the N that
  # f labels t most confidently, averaged over selection_views random warps
  # (view_augment's). 1 = no selection: the first N draws (the paper).
  selection_pool: int = 1
  selection_views: int = 8
  # The selection's second stage: f keeps the selection_realism x N candidates it
  # is surest of, and of those the critic keeps the N it scores most like the
  # auxiliary images, so a texture that wins f's vote but looks like no image
  # loses to one that does. Uses D, an attacker's network. 1 = f alone.
  selection_realism: int = 1
  # Weight of the mode-seeking term (losses.mode_seeking_loss) in the
  # generator's loss; the batch's two halves then share their labels y. It does
  # not use f, so the control keeps it. 0 = off (the paper).
  diversity_weight: float = 0.0
  # 'on': G's colour image becomes grey (the mean of its channels, repeated)
  # before the critic, f and every sample see it, so G cannot fool f with
  # colours when the auxiliary data has none: a classifier trained on grey
  # images repeated to RGB never learned what channel differences mean, and
  # magenta patterns won its vote (ORL, docs/ablation.md). 'auto' = on when every
  # auxiliary image is grey (resolve_grey_output, before the Attack is built).
  grey_output: str = 'off'
  # An attacker's surrogate of f (surrogate.py: a network of this architecture
  # trained on D_aux with f's labels) joins f in G's similarity (the mean of the
  # two models' similarities) and in the final selection (the mean of their
  # probabilities), so G cannot win with patterns that fool f alone. '' = f
  # alone (the paper).
  surrogate: str = ''
  # The critic sees every image, real and generated, through a random
  # differentiable warp (augment.py's preset of this name; 'auto' = characters
  # or faces by the dataset), in its updates and in G's, as in DiffAugment
  # (Zhao et al., 2020): with a few hundred auxiliary images (ORL's 200) the
  # critic otherwise learns them by heart. It changes the GAN, so the control
  # keeps it. 'off' = the paper.
  critic_augment: str = 'off'
  # 'projection': the critic also sees each image's label vector (a projection
  # critic, networks.Critic), f's probabilities for an auxiliary image and the
  # y G was asked for a generated one (in the critic's updates G is asked the
  # real half's labels, so the halves differ in images only), so G(z, y) must
  # look like the auxiliary images f labels y, not merely like some auxiliary
  # image (the pseudo-labelled conditional GAN of PLG-MI, Yuan et al., 2023). It
  # carries f's labels to G, so the control turns it off. 'off' = the paper's
  # unconditional critic.
  critic_condition: str = 'off'
  # 'bfloat16': G and D run with bf16 activations (params cast per call), while
  # params, optimizer state, the penalty's gradient norms and all losses stay f32.
  compute_dtype: str = 'float32'

  def __post_init__(self):
    if self.compute_dtype not in COMPUTE_DTYPES:
      raise ValueError(
          f'compute_dtype={self.compute_dtype!r} is not supported: set '
          f'config.attack.compute_dtype to one of {COMPUTE_DTYPES}'
      )
    losses.get_similarity(self.similarity)  # raises on an unknown name
    views = self.similarity_views
    if isinstance(views, bool) or not isinstance(views, numbers.Integral) or views < 1:
      raise ValueError(
          f'similarity_views={self.similarity_views!r} must be an integer >= 1: '
          'set config.attack.similarity_views'
      )
    for key in ('selection_pool', 'selection_views', 'selection_realism'):
      value = getattr(self, key)
      if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f'{key}={value!r} must be an integer >= 1: set config.attack.{key}')
    if self.selection_realism > self.selection_pool:
      raise ValueError(
          f'selection_realism={self.selection_realism} exceeds selection_pool='
          f'{self.selection_pool}: the critic chooses among the candidates f keeps; set '
          'config.attack.selection_realism <= config.attack.selection_pool'
      )
    weight = self.diversity_weight
    if isinstance(weight, bool) or not isinstance(weight, numbers.Real) or not weight >= 0:
      raise ValueError(
          f'diversity_weight={weight!r} must be a number >= 0: set config.attack.diversity_weight'
      )
    if weight and self.batch_size < 2:
      raise ValueError(
          f'diversity_weight needs pairs of samples: batch_size={self.batch_size} must be '
          '>= 2 (set config.attack.batch_size)'
      )
    cap = self.margin_cap
    if isinstance(cap, bool) or not isinstance(cap, numbers.Real) or not 0 <= cap < math.inf:
      raise ValueError(
          f'margin_cap={cap!r} must be a finite number >= 0 (0 = no cap): '
          'set config.attack.margin_cap'
      )
    if cap and self.similarity != 'max_margin':
      raise ValueError(
          f'margin_cap={cap!r} caps the max_margin similarity, not {self.similarity!r}: '
          'set config.attack.similarity=max_margin or config.attack.margin_cap=0'
      )
    share = self.onehot_share
    if isinstance(share, bool) or not isinstance(share, numbers.Real) or not 0 <= share <= 1:
      raise ValueError(
          f'onehot_share={share!r} must be a number in [0, 1]: set config.attack.onehot_share'
      )
    blur = self.view_blur
    if isinstance(blur, bool) or not isinstance(blur, numbers.Real) or not 0 <= blur <= MAX_BLUR:
      raise ValueError(
          f'view_blur={blur!r} must be a number in [0, {MAX_BLUR:g}] (pixels; 0 = no blur): '
          'set config.attack.view_blur'
      )
    for key, choices in CHOICES.items():
      value = getattr(self, key)
      if value not in choices:
        raise ValueError(f'{key}={value!r} is not one of {choices}: set config.attack.{key}')

  def resolve_grey_output(self, aux_images) -> 'Hyper':
    """This Hyper with grey_output 'auto' decided by the auxiliary images (N, H, W, C)."""
    if self.grey_output != 'auto':
      return self
    grey = images.are_grey(aux_images)
    return dataclasses.replace(self, grey_output='on' if grey else 'off')

  @property
  def onehot_rows(self) -> int:
    """Rows of each batch whose y is one-hot (onehot_share of batch_size, rounded)."""
    return int(round(self.onehot_share * self.batch_size))

  @property
  def conditional_critic(self) -> bool:
    """True when the critic reads labels (critic_condition): networks.Critic
    then needs num_classes, and every critic call the images' label vectors."""
    return self.critic_condition == 'projection'

  @property
  def uses_classifier(self) -> bool:
    """False for the control (gamma held at 0): f then only reports the similarity."""
    return not (self.gamma_start == 0 and (self.gamma_increment == 0 or self.gamma_max <= 0))

  @classmethod
  def from_config(cls, cfg) -> 'Hyper':
    """The fields named in cfg (config.attack), after its `recipe` (default 'paper').

    The recipe sets each of its keys that cfg leaves at the paper's value (or
    lacks); a key given another value keeps it.
    """
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {k: v for k, v in cfg.items() if k in names}
    recipe = cfg.get('recipe', 'paper')
    if recipe not in RECIPES:
      raise ValueError(
          f'recipe={recipe!r} is not one of {tuple(RECIPES)}: set ' 'config.attack.recipe'
      )
    kwargs.update(recipes.resolve(cfg))
    return cls(**kwargs)


@dataclasses.dataclass(frozen=True, eq=False)
class Attack:
  """Static description of an attack: networks, f's apply function, hyperparameters.

  Holds no training state, so its methods are pure functions of their arguments
  and can be jitted (with `self` closed over), vmapped over many states, and
  sharded over a device mesh.
  """

  generator: nn.Module
  critic: nn.Module
  f_apply: Callable[[PyTree, jax.Array], jax.Array]  # (f_variables, images) -> probs
  num_classes: int
  image_shape: tuple
  value_range: tuple
  hyper: Hyper = Hyper()
  batch_sharding: Optional[jax.sharding.Sharding] = None
  # (surrogate_variables, images) -> probs: set exactly when hyper.surrogate is.
  surrogate_apply: Optional[Callable[[PyTree, jax.Array], jax.Array]] = None

  def __post_init__(self):
    if bool(self.hyper.surrogate) != (self.surrogate_apply is not None):
      raise ValueError(
          f'hyper.surrogate={self.hyper.surrogate!r} needs surrogate_apply, and '
          'surrogate_apply needs hyper.surrogate: pass both or neither'
      )
    if self.hyper.grey_output == 'auto':
      raise ValueError(
          "hyper.grey_output='auto' must be decided by the auxiliary images first: "
          'pass hyper.resolve_grey_output(aux_images)'
      )
    labels = getattr(self.critic, 'num_classes', 0)
    wanted = self.num_classes if self.hyper.conditional_critic else 0
    if labels != wanted:
      raise ValueError(
          f'hyper.critic_condition={self.hyper.critic_condition!r} needs a critic with '
          f'num_classes={wanted}, not {labels}: build networks.Critic(num_classes={wanted})'
      )

  # -- setup -----------------------------------------------------------------
  def optimizer(self) -> optax.GradientTransformation:
    h = self.hyper
    return optax.adam(h.learning_rate, b1=h.b1, b2=h.b2)

  def init(self, key: jax.Array) -> AttackState:
    k_g, k_d, k_rng = jax.random.split(key, 3)
    z = jnp.zeros((1, self.hyper.z_dim))
    y = jnp.zeros((1, self.num_classes))
    x = jnp.zeros((1,) + tuple(self.image_shape))
    g_params = self.generator.init(k_g, z, y)['params']
    d_params = self.critic.init(k_d, x, *self._critic_labels(y))['params']
    tx = self.optimizer()
    return AttackState(
        step=jnp.zeros((), jnp.int32),
        g_params=g_params,
        d_params=d_params,
        g_opt_state=tx.init(g_params),
        d_opt_state=tx.init(d_params),
        rng=k_rng,
    )

  # -- pieces ----------------------------------------------------------------
  def gamma(self, step) -> jax.Array:
    h = self.hyper
    return losses.gamma_schedule(step, h.gamma_start, h.gamma_increment, h.gamma_max)

  def _cast(self, tree: PyTree) -> PyTree:
    """Floating leaves to the compute dtype; gradients flow back to f32 through the cast."""
    dtype = jnp.dtype(self.hyper.compute_dtype)
    if dtype == jnp.float32:
      return tree
    return jax.tree.map(
        lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree
    )

  def generate(self, g_params: PyTree, z: jax.Array, y: jax.Array) -> jax.Array:
    out = self.generator.apply({'params': self._cast(g_params)}, *self._cast((z, y)))
    out = out.astype(jnp.float32)
    if self.hyper.grey_output == 'on':
      out = jnp.broadcast_to(jnp.mean(out, axis=-1, keepdims=True), out.shape)
    return out

  def _critic_labels(self, y: Optional[jax.Array]) -> tuple:
    """The critic's label argument: (y,) for a conditional critic, else ()."""
    if not self.hyper.conditional_critic:
      return ()
    if y is None:
      raise ValueError("critic_condition='projection': pass the images' label vectors y")
    return (y,)

  def _critic(self, d_params: PyTree, x: jax.Array, y: Optional[jax.Array] = None) -> jax.Array:
    """The critic's scores (B,) of x; y (B, d), the images' labels, is read
    only by a conditional critic."""
    out = self.critic.apply(
        {'params': self._cast(d_params)}, *self._cast((x,) + self._critic_labels(y))
    )
    return out.astype(jnp.float32)

  def realism(self, d_params: PyTree, x: jax.Array, y: Optional[jax.Array] = None) -> jax.Array:
    """The critic's score of each image (B,): higher reads as more like D_aux
    (a conditional critic: like the auxiliary images f labels y)."""
    return self._critic(d_params, x, y)

  def _shard(self, x: jax.Array) -> jax.Array:
    if self.batch_sharding is None:
      return x
    return jax.lax.with_sharding_constraint(x, self.batch_sharding)

  def to_float(self, images_u8: jax.Array) -> jax.Array:
    return images.to_float(images_u8, self.value_range)

  def sample_latents(self, key: jax.Array, data: AttackData):
    k_y, k_z = jax.random.split(key)
    b = self.hyper.batch_size
    y = prior.sample_mixed_labels(
        k_y, data.aux_probs, b, self.hyper.bandwidth, self.hyper.onehot_rows, self.num_classes
    )
    z = prior.sample_z(k_z, b, self.hyper.z_dim)
    return self._shard(z), self._shard(y)

  def view_warp(self) -> augment.Warp:
    """The random transform of the similarity's views ('auto': by the dataset),
    with view_blur's blur."""
    warp = augment.preset(self.hyper.view_augment, getattr(self.generator, 'dataset', None))
    return dataclasses.replace(warp, max_blur=float(self.hyper.view_blur))

  def critic_view(self, key: jax.Array, x: jax.Array) -> jax.Array:
    """What the critic sees of the batch x: x itself, or with critic_augment
    one random warp per image (differentiable in x, so G's gradient passes)."""
    warp = self.critic_warp()
    return x if warp is None else augment.random_warp(key, x, warp, fill=self.value_range[0])

  def critic_warp(self) -> Optional[augment.Warp]:
    """critic_augment's preset ('auto': by the dataset); None when off."""
    if self.hyper.critic_augment == 'off':
      return None
    return augment.preset(self.hyper.critic_augment, getattr(self.generator, 'dataset', None))

  def views(self, key: jax.Array, x: jax.Array, k: Optional[int] = None) -> jax.Array:
    """K = k (default similarity_views) random warps of the batch x, (K, B, ...);
    view i is augment.random_warp(split(key, K)[i], x), differentiable in x."""
    warp, fill = self.view_warp(), self.value_range[0]
    keys = jax.random.split(key, int(self.hyper.similarity_views if k is None else k))
    return jax.vmap(lambda k: augment.random_warp(k, x, warp, fill=fill))(keys)

  def similarity(
      self,
      f_vars: PyTree,
      x: jax.Array,
      y: jax.Array,
      key: jax.Array,
      surrogate_vars: PyTree = None,
  ) -> jax.Array:
    """similarity(f(x), y) per sample (B,), averaged over the views when K > 1.

    With a surrogate, the mean of f's and the surrogate's similarities, each on
    the same views. `key` is the generator step's key: the views' key is
    fold_in(key, VIEW_KEY_SALT), so a resumed run warps exactly as the
    uninterrupted one.
    """
    similarity_fn = losses.get_similarity(self.hyper.similarity)
    if self.hyper.margin_cap:
      cap, uncapped = self.hyper.margin_cap, similarity_fn
      similarity_fn = lambda probs, y: jnp.minimum(uncapped(probs, y), cap)
    k = int(self.hyper.similarity_views)
    if k == 1:
      inputs = x
    else:  # every model scores the same views, in one call each
      views = self.views(jax.random.fold_in(key, VIEW_KEY_SALT), x)
      inputs = views.reshape((-1,) + x.shape[1:])

    def score(apply, variables):
      probs = apply(variables, inputs)
      if k == 1:
        return similarity_fn(probs, y)
      sim = similarity_fn(probs.reshape((k,) + y.shape[:1] + probs.shape[1:]), y[None])
      return jnp.mean(sim, axis=0)

    scores = [score(apply, v) for apply, v in self.scorers(f_vars, surrogate_vars)]
    return sum(scores) / len(scores)

  def scorers(self, f_vars: PyTree, surrogate_vars: PyTree = None) -> list:
    """[(apply, variables)] of the networks that score G's images (the
    similarity and the final selection average over them): f, then the
    surrogate when the attack has one. Both frozen."""
    out = [(self.f_apply, f_vars)]
    if self.surrogate_apply is not None:
      if surrogate_vars is None:
        raise ValueError('this attack has a surrogate: pass surrogate_vars')
      out.append((self.surrogate_apply, jax.lax.stop_gradient(surrogate_vars)))
    return out

  def sample_real(self, key: jax.Array, data: AttackData) -> tuple:
    """A batch of auxiliary images and f's probabilities for them (their labels)."""
    idx = jax.random.randint(key, (self.hyper.batch_size,), 0, data.aux_images.shape[0])
    return self._shard(self.to_float(data.aux_images[idx])), self._shard(data.aux_probs[idx])

  # -- the step --------------------------------------------------------------
  def critic_update(self, state: AttackState, key: jax.Array, data: AttackData):
    """One WGAN-GP critic update; returns (d_params, d_opt_state, metrics)."""
    h = self.hyper
    k_real, k_lat, k_eps = jax.random.split(key, 3)
    real, y_real = self.sample_real(k_real, data)
    z, y = self.sample_latents(k_lat, data)
    if self.hyper.conditional_critic:
      # G draws this batch's fakes with the real half's labels: a critic that may
      # read labels otherwise tells the halves apart by their labels alone (the
      # prior's one-hot rows; f's soft outputs), a direction the penalty (in x)
      # never bounds, and its scores run away (ORL: W 1e6 by step 200).
      y = y_real
    fake = jax.lax.stop_gradient(self.generate(state.g_params, z, y))
    eps = self._shard(jax.random.uniform(k_eps, (h.batch_size,)))
    # Real and fake warped alike (the penalty then holds between warped images).
    k_real_view, k_fake_view = jax.random.split(jax.random.fold_in(key, CRITIC_KEY_SALT))
    real, fake = self.critic_view(k_real_view, real), self.critic_view(k_fake_view, fake)

    def loss_fn(d_params):
      # One critic call for both halves: the critic is per-sample (no batch norm).
      scores = self._critic(d_params, jnp.concatenate([real, fake]), jnp.concatenate([y_real, y]))
      d_real, d_fake = jnp.split(scores, 2)
      wdist = losses.critic_loss(d_real, d_fake)
      # A conditional critic reads each interpolate under its pair's shared labels.
      gp = losses.gradient_penalty(lambda x: self._critic(d_params, x, y), real, fake, eps)
      return wdist + h.gp_weight * gp, (wdist, gp)

    grads, (wdist, gp) = jax.grad(loss_fn, has_aux=True)(state.d_params)
    updates, d_opt_state = self.optimizer().update(grads, state.d_opt_state, state.d_params)
    d_params = optax.apply_updates(state.d_params, updates)
    return (
        d_params,
        d_opt_state,
        {'critic_loss': wdist + h.gp_weight * gp, 'wasserstein': -wdist, 'gradient_penalty': gp},
    )

  def generator_update(self, state: AttackState, key: jax.Array, data: AttackData):
    """One generator update against the current critic and the frozen f."""
    similarity_fn = losses.get_similarity(self.hyper.similarity)
    z, y = self.sample_latents(key, data)
    weight = self.hyper.diversity_weight
    if weight:  # pairs (i, i + B/2) share y, for the mode-seeking term
      half = y.shape[0] // 2
      y = self._shard(y.at[half : 2 * half].set(y[:half]))
    gamma = self.gamma(state.step)
    f_vars = jax.lax.stop_gradient(data.f_variables)

    def loss_fn(g_params):
      fake = self.generate(g_params, z, y)
      d_fake = self._critic(
          state.d_params, self.critic_view(jax.random.fold_in(key, CRITIC_KEY_SALT), fake), y
      )
      diversity = weight * losses.mode_seeking_loss(fake, z) if weight else 0.0
      if not self.hyper.uses_classifier:
        # gamma is 0 at every step: the loss is the critic's alone (the same
        # value and gradient), and f is not differentiated through.
        sim = similarity_fn(self.f_apply(f_vars, jax.lax.stop_gradient(fake)), y)
        return -jnp.mean(d_fake) + diversity, jnp.mean(sim)
      sim = self.similarity(f_vars, fake, y, key, data.surrogate_variables)
      return losses.generator_loss(d_fake, sim, gamma) + diversity, jnp.mean(sim)

    (g_loss, sim), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.g_params)
    updates, g_opt_state = self.optimizer().update(grads, state.g_opt_state, state.g_params)
    g_params = optax.apply_updates(state.g_params, updates)
    return g_params, g_opt_state, {'generator_loss': g_loss, 'similarity': sim, 'gamma': gamma}

  def step(self, state: AttackState, key: jax.Array, data: AttackData):
    """One generator iteration: n_critic critic updates, then one generator update."""
    return gan_iteration(self, state, key, data)

  def run(self, state: AttackState, data: AttackData, num_iterations: int):
    """`num_iterations` generator iterations in one scan (one dispatch).

    Returns the new state and the metrics of every iteration, stacked.
    """
    return run_iterations(self, state, data, num_iterations)


def gan_iteration(model, state, key: jax.Array, data):
  """n_critic critic updates (a scan), then one generator update.

  The loop shape shared by every GAN here (PreImageGAN, the ACGAN baseline):
  `model` has `critic_update(state, key, data) -> (d_params, d_opt_state, metrics)`,
  `generator_update(state, key, data) -> (g_params, g_opt_state, metrics)` and
  `hyper.n_critic`; `state` has the AttackState fields.
  """
  k_critic, k_gen = jax.random.split(key)

  def one_critic(carry, k):
    d_params, d_opt_state = carry
    d_params, d_opt_state, m = model.critic_update(
        state.replace(d_params=d_params, d_opt_state=d_opt_state), k, data
    )
    return (d_params, d_opt_state), m

  (d_params, d_opt_state), critic_metrics = jax.lax.scan(
      one_critic,
      (state.d_params, state.d_opt_state),
      jax.random.split(k_critic, model.hyper.n_critic),
  )
  state = state.replace(d_params=d_params, d_opt_state=d_opt_state)
  g_params, g_opt_state, gen_metrics = model.generator_update(state, k_gen, data)
  state = state.replace(g_params=g_params, g_opt_state=g_opt_state, step=state.step + 1)
  metrics = {k: jnp.mean(v) for k, v in critic_metrics.items()}
  metrics.update(gen_metrics)
  return state, metrics


def run_iterations(model, state, data, num_iterations: int):
  """`num_iterations` of `model.step` in one scan, keyed by fold_in(rng, step)."""

  def body(s, _):
    return model.step(s, jax.random.fold_in(s.rng, s.step), data)

  return jax.lax.scan(body, state, None, length=num_iterations)
