"""PreImageGAN on EMNIST: the label settings of the paper's Tables 1 and 2.

  --config=configs/emnist.py:SETTING[,SIZE]

SETTING: lowercase_exact_same, lowercase_partly_same, lowercase_mutually_exclusive,
numeric_exact_same, numeric_partly_same, numeric_mutually_exclusive, noise.
SIZE: paper (default; 20k generator steps, full width; for a GPU), medium (wider
networks and 3k steps for an hour or less on CPU, meant for the 58k-image half
sample: --config.data.source=../shared/data/emnist/emnist_byclass_test_half.npz),
cpu (narrow networks and few steps, minutes on a laptop), tiny (seconds; for tests).
"""

from configs import default

SIZES = default.SIZES


def parse_arg(arg, default_setting):
  parts = [p for p in (arg or '').split(',') if p]
  size = 'paper'
  if parts and parts[-1] in SIZES:
    size = parts.pop()
  if len(parts) > 1:
    raise ValueError(f'config argument {arg!r}: expected SETTING[,SIZE] with SIZE in {SIZES}')
  return (parts[0] if parts else default_setting), size


def get_config(arg=None):
  setting, size = parse_arg(arg, 'numeric_mutually_exclusive')
  c = default.base_config()
  c.setting = setting
  return default.apply_size(c, size)
