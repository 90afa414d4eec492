"""Runs the Classifier-to-Generator attack (PreImageGAN) for one config.

  python main.py                                   # numeric, mutually exclusive, CPU size
  python main.py --config=configs/emnist.py:lowercase_partly_same --workdir=runs/lc
  python main.py --config=configs/emnist.py:numeric_mutually_exclusive,cpu \
      --config.attack.steps=2000
  # two processes (hosts) as one run: the same command on each, its own --process_id
  python main.py --config.multihost=True --coordinator=HOST0:1234 --num_processes=2 \
      --process_id=0 --workdir=runs/mh

Running the same command again continues the run in --workdir from its newest
checkpoint (a killed run loses at most checkpoint_every_steps steps or
checkpoint_every_secs seconds, and ends bit-identical on CPU). A --workdir that
holds a run of another config is refused unless --restart or --continue_anyway
is given; logging, checkpoint and sample cadence, attack.steps,
attack.iterations_per_call and eval.* may change freely (c2g_jax/workdir.py).

Exit status: 0 done; 2 a bad input (config file, key or value, work directory,
checkpoint, data, batch size), reported as one line `error: ...` on stderr
before any training; 3 training diverged (the last good checkpoint is kept).
"""

import logging as std_logging
import os
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from c2g_jax import cli
from c2g_jax import parallel
from c2g_jax import train

_HERE = os.path.dirname(os.path.abspath(__file__))
FLAGS = flags.FLAGS


def _flag_error(e: Exception, argv) -> str:
  """One line for a command-line error; ml_collections reports unknown keys as
  AttributeError/KeyError "'key'\\nDid you mean ...?"."""
  if isinstance(e, (AttributeError, KeyError)):
    inner = e
    while isinstance(inner, BaseException) and inner.args:
      inner = inner.args[0]  # AttributeError(KeyError(message))
    lines = str(inner).split('\n')
    key = lines[0].strip('"\' ')
    hint = ' '.join(l.strip() for l in lines[1:] if l.strip())
    given = [
        a.split('=')[0]
        for a in argv[1:]
        if a.startswith('--config.') and key in a.split('=')[0].split('.')
    ]
    where = given[0] if given else f'a --config.* flag naming {key!r}'
    return (
        f'{where}: the config has no key {key!r}'
        + (f' ({hint})' if hint else '')
        + '; see the config file for its keys'
    )
  lines = [l.strip() for l in str(e).strip().split('\n') if l.strip()]
  # A config file that fails to load carries its traceback: keep the first and last line.
  return lines[0] + (f' {lines[-1]}' if len(lines) > 1 else '') if lines else repr(e)


try:
  # Parses the default config and any --config.* overrides at once, so an
  # unknown key fails here, before the flags are parsed.
  config_flags.DEFINE_config_file(
      'config',
      os.path.join(_HERE, 'configs', 'emnist.py:numeric_mutually_exclusive,cpu'),
      'Config file and argument, e.g. configs/emnist.py:SETTING[,SIZE].',
      lock_config=True,
  )
except (AttributeError, KeyError) as e:
  cli.fail(_flag_error(e, sys.argv))
flags.DEFINE_string(
    'workdir', None, 'Where checkpoints, samples and results go ' '(default: runs/<setting>).'
)
flags.DEFINE_bool(
    'restart',
    False,
    'Start over: move the run already in --workdir aside '
    'to <workdir>.old-<time> (nothing is deleted) and begin a new one.',
)
flags.DEFINE_bool(
    'continue_anyway',
    False,
    'Continue the run in --workdir from its '
    'checkpoints although its config.json differs from this config (the old '
    'config is kept as config.<time>.json).',
)
flags.DEFINE_string(
    'coordinator',
    None,
    'With --config.multihost=True: HOST:PORT of '
    'process 0, the same on every process (default: detected on Cloud TPU, '
    'SLURM, Open MPI).',
)
flags.DEFINE_integer(
    'num_processes',
    None,
    'With --config.multihost=True: how many ' 'processes take part (default: detected).',
)
flags.DEFINE_integer(
    'process_id',
    None,
    'With --config.multihost=True: this process, '
    "0..num_processes-1; process 0 writes the run's files (default: detected).",
)


def _config_file_error(e: OSError, argv) -> str:
  """One line for a --config file that is missing or unreadable.

  ml_collections defers the load error until the config is first used and
  chains the original OSError, whose last line names the cause.
  """
  path = ''
  for i, a in enumerate(argv[1:], 1):
    if a.startswith('--config='):
      path = a.split('=', 1)[1]
    elif a == '--config' and i + 1 < len(argv):
      path = argv[i + 1]
  path = path.split(':', 1)[0]
  cause = e.__cause__ or e
  lines = [l.strip() for l in str(cause).split('\n') if l.strip()]
  reason = lines[-1] if lines else repr(cause)
  what = 'could not be read' if os.path.exists(path) else 'not found'
  return (
      f'--config file {path!r} {what}: {reason}; give the path of a config file, e.g. '
      '--config=configs/emnist.py:numeric_mutually_exclusive,cpu'
  )


def parse_flags(argv):
  try:
    rest = FLAGS(argv)
    # A config file that failed to load raises only when first used: use it here.
    FLAGS.config.keys()
    return rest
  except OSError as e:
    cli.fail(_config_file_error(e, argv))
  except (flags.Error, AttributeError, KeyError) as e:
    cli.fail(_flag_error(e, argv))


def _quiet_library_logs():
  """Keeps Orbax's per-save INFO chatter out of the console; warnings still show."""
  logging.get_absl_handler().addFilter(
      lambda r: r.levelno >= std_logging.WARNING or '/orbax/' not in r.pathname
  )


def main(argv):
  if len(argv) > 1:
    cli.fail(f'unexpected arguments {argv[1:]}: flags are written --name=value')
  if FLAGS.restart and FLAGS.continue_anyway:
    cli.fail('--restart starts over and --continue_anyway continues: give one of them')
  _quiet_library_logs()
  config = FLAGS.config
  workdir = FLAGS.workdir or os.path.join('runs', config.setting or config.dataset)
  mode = 'restart' if FLAGS.restart else 'continue' if FLAGS.continue_anyway else 'check'
  logging.info('config:\n%s', config)
  # Before anything touches a device: every process then sees the global mesh.
  cli.run(
      parallel.maybe_initialize_distributed,
      config.multihost,
      FLAGS.coordinator,
      FLAGS.num_processes,
      FLAGS.process_id,
  )
  cli.run(train.train_and_evaluate, config, workdir, on_config_change=mode)


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
