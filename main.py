"""Runs the Classifier-to-Generator attack (PreImageGAN) for one config.

  python main.py                                   # numeric, mutually exclusive, CPU size
  python main.py --config=configs/emnist.py:lowercase_partly_same --workdir=runs/lc
  python main.py --config=configs/emnist.py:numeric_mutually_exclusive,cpu \
      --config.attack.steps=2000
"""
import os

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from c2g_jax import train

_HERE = os.path.dirname(os.path.abspath(__file__))
FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    'config', os.path.join(_HERE, 'configs', 'emnist.py:numeric_mutually_exclusive,cpu'),
    'Config file and argument, e.g. configs/emnist.py:SETTING[,SIZE].', lock_config=True)
flags.DEFINE_string('workdir', None, 'Where checkpoints, samples and results go '
                    '(default: runs/<setting>).')


def _quiet_library_logs():
  """Keeps Orbax's per-save INFO chatter out of the console; warnings still show."""
  logging.get_absl_handler().addFilter(
      lambda r: r.levelno >= logging.WARNING or '/orbax/' not in r.pathname)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  _quiet_library_logs()
  config = FLAGS.config
  workdir = FLAGS.workdir or os.path.join('runs', config.setting or config.dataset)
  logging.info('config:\n%s', config)
  train.train_and_evaluate(config, workdir)


if __name__ == '__main__':
  app.run(main)
