"""How the commands (main.py, the experiment grid) end when something stops them.

Never with a traceback for what the user can act on: one line on stderr and an
exit status a script can test. 2: a bad input or work directory (the line says
what to change); 3: the training diverged; 128 + the signal's number (143 for
SIGTERM, 130 for Ctrl-C), as a shell reports a process a signal ended: stopped
on request, with the chunk in flight saved.
"""

import sys

from c2g_jax import guard
from c2g_jax import preemption
from c2g_jax import train

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3


def fail(message, status: int = EXIT_BAD_INPUT):
  print('error: ' + ' '.join(str(message).split()), file=sys.stderr, flush=True)
  sys.exit(status)


def run(fn, *args, **kwargs):
  """fn(*args, **kwargs), with the project's errors turned into one line and an exit."""
  try:
    return fn(*args, **kwargs)
  except train.USER_ERRORS as e:
    fail(e)
  except guard.DivergenceError as e:
    fail(e, EXIT_DIVERGED)
  except preemption.Stopped as e:
    print('stopped: ' + str(e), file=sys.stderr, flush=True)
    sys.exit(128 + e.signum)
