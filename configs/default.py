"""Defaults shared by every experiment's config: the paper's attack, the audit, sizes.

configs/emnist.py, facescrub.py, orl.py and custom.py start from `base_config()`
and scale it with `apply_size(config, size)`, as the Flax examples' configs
start from their default.

SIZE: paper (20k generator steps, full width; for a GPU), medium (wider networks
and 3k steps for an hour or less on CPU, meant for the 58k-image half sample),
cpu (narrow networks and few steps, minutes on a laptop), tiny (seconds; for tests).
"""

import ml_collections

SIZES = ('paper', 'medium', 'cpu', 'tiny')


def check_size(size: str, arg=None) -> str:
  if size not in SIZES:
    raise ValueError(
        f'config argument {arg if arg is not None else size!r}: expected SIZE in ' f'{SIZES}'
    )
  return size


def base_config():
  c = ml_collections.ConfigDict()
  c.dataset = 'emnist'
  c.setting = ''
  c.seed = 0
  c.multihost = False  # jax.distributed.initialize() first; see main.py --coordinator, BUILD.md

  c.data = ml_collections.ConfigDict()
  # 'embedded' (packaged sample), 'tfds' (full emnist/byclass, prepared with TensorFlow),
  # 'nist' (full ByClass from NIST's gzip.zip, no TensorFlow) or the path of an .npz
  # (x (N, 28, 28) uint8 upright, y (N,) 0..61; c2g_jax/data/README.md).
  c.data.source = 'embedded'
  c.data.data_dir = ''  # TFDS data dir; '' = TFDS default
  c.data.noise_count = 0  # noise setting: number of noise images (0 = as many as letters+digits)

  # The publisher's classifier f: trained here on D_tr as a publisher would
  # (plain Adam, no augmentation), or a released one loaded from `checkpoint`
  # (a folder or 'package.module:function', see c2g_jax/byo.py).
  m = c.classifier = ml_collections.ConfigDict()
  m.checkpoint = ''
  m.architecture = 'classifier'
  m.width = 1.0
  m.epochs = 10
  m.batch_size = 128
  m.learning_rate = 1e-3
  m.augment = 'none'
  m.validation_fraction = 0.0
  m.cosine_schedule = False

  # The independent evaluators that judge G's samples, each trained on D_tr only
  # (or given): architecture names (resnet, vgg, classifier), checkpoint folders
  # or 'package.module:function', comma-separated. The most accurate on the test
  # set heads the verdict; the report shows them all and their agreement.
  c.evaluators = 'resnet,vgg'
  # How the evaluators named above are trained: an evaluator weaker than f
  # understates the leak, so it gets augmentation (shifts, rotations and scales
  # for characters; crops and flips for faces), a cosine learning rate, and the
  # epoch with the best accuracy on a validation split carved from D_tr.
  e = c.evaluator = ml_collections.ConfigDict()
  e.width = 1.0
  e.epochs = 30
  e.batch_size = 128
  e.learning_rate = 2e-3
  e.augment = 'auto'
  e.validation_fraction = 0.1
  e.cosine_schedule = True
  # Draw D_tr class by class (and pick the epoch by balanced validation accuracy)
  # where the judge's learned class prior would work against the targets: 'auto'
  # does so when the targets are rarer than D_tr's average class (letters beside
  # EMNIST's 12x commoner digits: a plain judge reads real s as 5), not when they
  # are commoner (digits among 62 classes); 'on' / 'off' force it. Judges are
  # ranked by balanced test accuracy either way. No effect on equal counts.
  e.balance_classes = 'auto'
  # An evaluator less accurate than f on the test set is trained again with
  # another seed, up to this many seeds, and the most accurate is kept.
  e.max_seeds = 3

  a = c.attack = ml_collections.ConfigDict()
  a.steps = 20_000  # generator iterations
  a.batch_size = 64
  a.n_critic = 5
  a.gp_weight = 10.0
  a.learning_rate = 2e-4
  a.b1 = 0.5
  a.b2 = 0.999
  a.z_dim = 128
  a.bandwidth = 0.01  # KDE bandwidth of the label prior
  # Share of each batch whose y is onehot(c), c uniform over f's classes, not a
  # KDE draw: G is asked for onehot(t) after training. 0 = the paper.
  a.onehot_share = 0.0
  a.gamma_start = 0.0
  a.gamma_increment = 1e-3  # per generator step
  a.gamma_max = 10.0
  a.similarity = 'log_likelihood'  # or inner_product, neg_kl, max_margin (losses.py)
  # The attack's recipe (attack.RECIPES; measured in docs/ablation.md): 'strong'
  # (the default: an audit runs the strongest attack measured) sets, where they
  # are left at the paper's values below, similarity_views=9,
  # similarity='max_margin', onehot_share=0.25 and selection_pool=4; 'faces'
  # adds view_blur=2.0 and grey_output='auto'; 'paper' is the paper's loss.
  # similarity_views: f scores that many random warps of each G(z, y) (1 = G(z, y)
  # itself), drawn from view_augment ('auto' = characters or faces by the
  # dataset; none, characters, faces).
  a.recipe = 'strong'
  a.similarity_views = 1
  a.view_augment = 'auto'
  # Each view (and each selection view) is also blurred by a Gaussian of width
  # drawn in [0, view_blur] pixels, so fine textures cannot win f's vote (0 = none).
  a.view_blur = 0.0
  # max_margin only: a view's margin counts up to margin_cap and no further, so
  # f stops pushing an image it is that sure of (0 = no cap).
  a.margin_cap = 0.0
  # Final selection (evaluate.select_targets): draw selection_pool x N
  # candidates per target and keep the N that f labels most confidently over
  # selection_views random warps; the report shows raw and selected side by side
  # (1 = no selection). The control is never selected: it must not use f.
  a.selection_pool = 1
  a.selection_views = 8
  # Then of the selection_realism x N candidates f is surest of, the critic keeps
  # the N it scores most like the auxiliary images (1 = f alone).
  a.selection_realism = 1
  # An attacker's surrogate of f (surrogate.py): a network of this architecture
  # ('classifier', 'resnet', 'vgg') trained on D_aux with f's labels joins f in
  # G's similarity and the selection, so patterns that fool f alone win less.
  # '' = f alone (the paper).
  a.surrogate = ''
  # The critic sees real and generated images through one random warp each
  # ('auto': the characters' or faces' preset by the dataset; DiffAugment), so a
  # critic on a few hundred auxiliary images cannot learn them by heart. It
  # changes the GAN: the control keeps it. 'off' = the paper.
  a.critic_augment = 'off'
  # 'projection': the critic also reads each image's label vector (f's
  # probabilities for an auxiliary image, the asked y for G's), so G(z, y) must
  # look like the auxiliary images f labels y (PLG-MI's pseudo-labelled critic).
  # It carries f's labels to G: the control keeps it off. 'off' = the paper.
  a.critic_condition = 'off'
  # Mode seeking (losses.mode_seeking_loss): this weight times 1 / (how far G's
  # image moves per unit of z) joins the generator's loss, against the collapse
  # to one image per target that a growing gamma brings. 0 = off (the paper).
  a.diversity_weight = 0.0
  # 'on': G's images are made grey (mean of the channels) before the critic, f
  # and the samples; 'auto' = on when every auxiliary image is grey (ORL: f
  # never saw colour, and colour patterns fooled it). 'off' = the paper.
  a.grey_output = 'off'
  a.generator_width = 1.0
  a.critic_width = 1.0
  a.conv_impl = 'auto'  # 'auto' = im2col on CPU, XLA's conv elsewhere
  a.compute_dtype = 'float32'  # 'bfloat16': activations in bf16 (1.7-2x faster on an H200)
  a.iterations_per_call = 100  # generator iterations per jitted dispatch

  c.log_every_steps = 100
  c.checkpoint_every_steps = 1000
  c.checkpoint_every_secs = 600.0
  c.checkpoints_to_keep = 3
  c.sample_every_steps = 2000

  c.eval = ml_collections.ConfigDict()
  # The control: the same GAN, seed and D_aux with gamma held at 0 (what the
  # auxiliary data alone gives), trained in <workdir>/control; the verdict is
  # the leak, attack minus control, per target with 95% intervals.
  c.eval.control = True
  c.eval.samples_per_target = 1000
  c.eval.grid_columns = 10
  return c


def apply_size(c, size):
  if size == 'cpu':
    # Sized so `python main.py` (f, two evaluators, the attack, the control and the
    # report) ends in about 15 minutes on 2 Xeon cores (30 on a slower 2-core EPYC).
    # Narrow G and D (1/8 width) and 400 generator steps;
    # at the paper's Adam rate (2e-4) they still draw noise after 200 steps, at
    # 1e-3 strokes appear by step 100. gamma grows 10x faster than the paper's
    # so the classifier term acts within the short run (3.99 at the end).
    c.classifier.width = 0.5
    # Half-width evaluators, 15 epochs over the 5,000 private digits (at 20, the
    # ResNet kept its 15th epoch: 0.990 validation, 0.987 test against f's 0.976).
    c.evaluator.width = 0.5
    c.evaluator.epochs = 15
    c.attack.steps = 400
    c.attack.generator_width = 0.125
    c.attack.critic_width = 0.125
    c.attack.learning_rate = 1e-3
    c.attack.gamma_increment = 1e-2
    c.attack.iterations_per_call = 50
    c.log_every_steps = 50
    c.checkpoint_every_steps = 100
    c.sample_every_steps = 100
  elif size == 'medium':
    # Between cpu and paper, for the half sample on CPU: G and D at 1/4 width,
    # 3000 generator steps, gamma reaching 6. Timed on numeric_mutually_exclusive
    # (main.py --config.data.source=.../emnist_byclass_test_half.npz, steps 150->200
    # of a resumed run): 1.4 CPU-seconds per generator step, i.e. about 0.7-0.9 s per
    # step on 2 free cores, so 35-45 min for the attack plus a few minutes for f, f'
    # (5 epochs each; f' about 1 min per epoch on 12k images) and the report: about
    # 45-55 min. On the shared machine it was measured on (load 12 on 2 cores, 0.37
    # it/s) the attack alone would take over 2 hours.
    # numeric_exact_same (62-class f and evaluators on 24k images) costs more: here
    # 2026-12-04, 2 cores, f'[resnet] 6.5 min per seed (3 seeds: weaker than f),
    # f'[vgg] 3 min, the attack 83 min (0.60-0.71 it/s), the control 0.67-0.72 it/s
    # (about 72 min for its 3000 steps): about 3 hours in all.
    c.classifier.width = 0.5
    c.classifier.epochs = 5
    c.evaluator.width = 0.5
    c.evaluator.epochs = 5
    c.attack.steps = 3000
    c.attack.generator_width = 0.25
    c.attack.critic_width = 0.25
    c.attack.learning_rate = 5e-4
    c.attack.gamma_increment = 2e-3
    c.attack.iterations_per_call = 50
    c.log_every_steps = 50
    c.checkpoint_every_steps = 500
    c.sample_every_steps = 500
  elif size == 'tiny':
    c.classifier.width = 0.125
    c.classifier.epochs = 1
    # Two evaluators still (the agreement path), of the two cheapest architectures.
    c.evaluators = 'vgg,classifier'
    c.evaluator.width = 0.125
    c.evaluator.epochs = 2
    c.evaluator.max_seeds = 1  # a 2-epoch evaluator is weaker than f: no retraining
    c.attack.steps = 4
    c.attack.batch_size = 8
    c.attack.n_critic = 2
    c.attack.generator_width = 0.0625
    c.attack.critic_width = 0.0625
    c.attack.gamma_increment = 0.5
    c.attack.iterations_per_call = 2
    # The paper's recipe keeps the many test runs of this size cheap; the strong
    # recipe runs end to end in tests/test_main.py.
    c.attack.recipe = 'paper'
    c.log_every_steps = 2
    c.checkpoint_every_steps = 2
    c.sample_every_steps = 2
    c.eval.samples_per_target = 16
    c.eval.grid_columns = 4
  return c
