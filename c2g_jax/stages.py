"""Timed stages of the work after training: one log line as each starts and one with its
seconds as it ends, so the minutes between the last training step and the verdict say what
they are spent on (on an H200 the report of a paper-size run took about 110 s, silently)."""

import contextlib
import time

from absl import logging


@contextlib.contextmanager
def timed(label: str):
  """Logs '<label> ...' now and '<label>: <seconds> s' when the block ends."""
  logging.info('%s ...', label)
  start = time.perf_counter()
  yield
  logging.info('%s: %.1f s', label, time.perf_counter() - start)
