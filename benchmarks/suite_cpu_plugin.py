"""pytest plugin: each test's wall time and CPU time (this process and its children).

Loaded by benchmarks/suite_time.py (`-p suite_cpu_plugin`, with benchmarks/ on
PYTHONPATH). CPU time is user + sys of the pytest process and of every child it
waited for (the `python main.py` runs), so a test that waits on a subprocess is
charged for the subprocess's work. Module fixtures count toward the first test that
uses them. Each process (each xdist worker) writes its rows to
`$SUITE_CPU_OUT.<worker>.json` at the end of the session.
"""

import json
import os
import resource
import time

import pytest

_rows = []


def cpu_seconds() -> float:
  own = resource.getrusage(resource.RUSAGE_SELF)
  children = resource.getrusage(resource.RUSAGE_CHILDREN)
  return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):  # pylint: disable=unused-argument
  cpu, wall = cpu_seconds(), time.time()
  yield
  _rows.append({'test': item.nodeid, 'cpu_s': cpu_seconds() - cpu, 'wall_s': time.time() - wall})


def pytest_sessionfinish(session):  # pylint: disable=unused-argument
  prefix = os.environ.get('SUITE_CPU_OUT')
  if prefix and _rows:
    worker = os.environ.get('PYTEST_XDIST_WORKER', 'main')
    with open(f'{prefix}.{worker}.json', 'w') as f:
      json.dump(_rows, f)
