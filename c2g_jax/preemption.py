"""Stop cleanly on SIGTERM or Ctrl-C: finish the chunk, checkpoint, exit.

Batch schedulers and cloud VMs announce preemption with SIGTERM a little before
they kill. Without a handler the run dies at once and loses everything since
its last periodic checkpoint; with one, the training loop finishes the jitted
chunk in flight (K generator steps), saves it and raises `Stopped`, and the
same command continues from there. A second signal while stopping falls back
to the default behaviour (die now), so a stuck run can still be killed.
"""

import signal
import threading

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Stopped(Exception):
  """Training stopped on request after saving a checkpoint."""

  def __init__(self, message: str, signum: int):
    super().__init__(message)
    self.signum = signum


class StopRequest:
  """Context manager: `requested` is the signal received while inside, or None.

  Handlers are installed only in the main thread (Python allows no other) and
  the previous ones are restored on exit.
  """

  def __init__(self, signals=SIGNALS):
    self._signals = signals
    self._previous = {}
    self.requested = None

  def _handle(self, signum, frame):
    self.requested = signum
    # The next one of the same kind is not caught: a second Ctrl-C kills.
    signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for s in self._signals:
        self._previous[s] = signal.signal(s, self._handle)
    return self

  def __exit__(self, *exc):
    for s, handler in self._previous.items():
      signal.signal(s, handler)
    self._previous = {}
    return False

  @property
  def name(self) -> str:
    return signal.Signals(self.requested).name if self.requested else ''
