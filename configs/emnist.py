"""PreImageGAN on EMNIST: the label settings of the paper's Tables 1 and 2.

  --config=configs/emnist.py:SETTING[,SIZE]

SETTING: lowercase_exact_same, lowercase_partly_same, lowercase_mutually_exclusive,
numeric_exact_same, numeric_partly_same, numeric_mutually_exclusive, noise.
SIZE: paper (default; 20k generator steps, full width; for a GPU), cpu (narrow
networks and few steps, minutes on a laptop), tiny (seconds; for tests).
"""
import ml_collections

SIZES = ('paper', 'cpu', 'tiny')


def parse_arg(arg, default_setting):
  parts = [p for p in (arg or '').split(',') if p]
  size = 'paper'
  if parts and parts[-1] in SIZES:
    size = parts.pop()
  if len(parts) > 1:
    raise ValueError(f'config argument {arg!r}: expected SETTING[,SIZE] with SIZE in {SIZES}')
  return (parts[0] if parts else default_setting), size


def base_config():
  c = ml_collections.ConfigDict()
  c.dataset = 'emnist'
  c.setting = ''
  c.seed = 0
  c.multihost = False  # jax.distributed.initialize() first; see main.py --coordinator, BUILD.md

  c.data = ml_collections.ConfigDict()
  c.data.source = 'embedded'   # 'embedded' (packaged sample) or 'tfds' (full emnist/byclass)
  c.data.data_dir = ''         # TFDS data dir; '' = TFDS default
  c.data.noise_count = 0       # noise setting: number of noise images (0 = as many as letters+digits)

  # The publisher's classifier f and the independent evaluator f'. A checkpoint
  # path loads a released classifier instead of training one.
  for name, arch in (('classifier', 'classifier'), ('evaluator', 'resnet')):
    m = ml_collections.ConfigDict()
    m.checkpoint = ''
    m.architecture = arch
    m.width = 1.0
    m.epochs = 10
    m.batch_size = 128
    m.learning_rate = 1e-3
    c[name] = m

  a = c.attack = ml_collections.ConfigDict()
  a.steps = 20_000             # generator iterations
  a.batch_size = 64
  a.n_critic = 5
  a.gp_weight = 10.0
  a.learning_rate = 2e-4
  a.b1 = 0.5
  a.b2 = 0.999
  a.z_dim = 128
  a.bandwidth = 0.01           # KDE bandwidth of the label prior
  a.gamma_start = 0.0
  a.gamma_increment = 1e-3     # per generator step
  a.gamma_max = 10.0
  a.similarity = 'log_likelihood'
  a.generator_width = 1.0
  a.critic_width = 1.0
  a.conv_impl = 'auto'         # 'auto' = im2col on CPU, XLA's conv elsewhere
  a.compute_dtype = 'float32'  # 'bfloat16': activations in bf16 (1.7-2x faster on an H200)
  a.iterations_per_call = 100  # generator iterations per jitted dispatch

  c.log_every_steps = 100
  c.checkpoint_every_steps = 1000
  c.checkpoint_every_secs = 600.0
  c.checkpoints_to_keep = 3
  c.sample_every_steps = 2000

  c.eval = ml_collections.ConfigDict()
  c.eval.samples_per_target = 1000
  c.eval.grid_columns = 10
  return c


def apply_size(c, size):
  if size == 'cpu':
    # Sized so `python main.py` (f, f', the attack and its report) ends within
    # 15 minutes on 2 cores. Narrow G and D (1/8 width) and 400 generator steps;
    # at the paper's Adam rate (2e-4) they still draw noise after 200 steps, at
    # 1e-3 strokes appear by step 100. gamma grows 10x faster than the paper's
    # so the classifier term acts within the short run (3.99 at the end).
    c.classifier.width = 0.5
    c.evaluator.width = 0.5
    c.attack.steps = 400
    c.attack.generator_width = 0.125
    c.attack.critic_width = 0.125
    c.attack.learning_rate = 1e-3
    c.attack.gamma_increment = 1e-2
    c.attack.iterations_per_call = 50
    c.log_every_steps = 50
    c.checkpoint_every_steps = 100
    c.sample_every_steps = 100
  elif size == 'tiny':
    c.classifier.width = 0.125
    c.classifier.epochs = 1
    c.evaluator.width = 0.125
    c.evaluator.epochs = 1
    c.attack.steps = 4
    c.attack.batch_size = 8
    c.attack.n_critic = 2
    c.attack.generator_width = 0.0625
    c.attack.critic_width = 0.0625
    c.attack.gamma_increment = 0.5
    c.attack.iterations_per_call = 2
    c.log_every_steps = 2
    c.checkpoint_every_steps = 2
    c.sample_every_steps = 2
    c.eval.samples_per_target = 16
    c.eval.grid_columns = 4
  return c


def get_config(arg=None):
  setting, size = parse_arg(arg, 'numeric_mutually_exclusive')
  c = base_config()
  c.setting = setting
  return apply_size(c, size)
