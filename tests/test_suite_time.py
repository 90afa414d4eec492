"""benchmarks/suite_time.py and its plugin: each test's CPU, its children's included."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, 'benchmarks'))

import suite_time  # pylint: disable=g-import-not-at-top


def test_plugin_charges_each_test_its_own_and_its_childrens_cpu(tmp_path):
  (tmp_path / 'test_probe.py').write_text(textwrap.dedent("""
    import subprocess, sys, time

    def burn(seconds):
      end = time.process_time() + seconds
      while time.process_time() < end:
        pass

    def test_busy():
      burn(0.4)

    def test_sleep():
      time.sleep(0.4)

    def test_child():
      subprocess.run([sys.executable, '-c',
          'import time\\nend = time.process_time() + 0.4\\nwhile time.process_time() < end: pass'],
          check=True)
  """))
  # Not an xdist worker's environment: the inner pytest is a plain single process.
  env = {k: v for k, v in os.environ.items() if not k.startswith('PYTEST_')}
  env.update(SUITE_CPU_OUT=str(tmp_path / 'rows'), PYTHONPATH=os.path.join(REPO, 'benchmarks'))
  cmd = [sys.executable, '-m', 'pytest', '-q', '-p', 'suite_cpu_plugin', 'test_probe.py']
  out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
  assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
  rows = {r['test']: r for r in json.loads((tmp_path / 'rows.main.json').read_text())}
  assert set(rows) == {f'test_probe.py::test_{n}' for n in ('busy', 'sleep', 'child')}
  assert rows['test_probe.py::test_busy']['cpu_s'] >= 0.35
  sleep = rows['test_probe.py::test_sleep']
  assert sleep['cpu_s'] < 0.2 and sleep['wall_s'] >= 0.35  # waiting is wall time, not CPU
  assert rows['test_probe.py::test_child']['cpu_s'] >= 0.35  # the child's CPU counts


def test_summary_per_worker_per_file_and_top_tests():
  row = lambda test, cpu, wall: {'test': test, 'cpu_s': cpu, 'wall_s': wall}
  s = suite_time.summarise(
      {
          'gw0': [row('tests/a.py::x', 10.0, 12.0), row('tests/a.py::y', 1.0, 1.0)],
          'gw1': [row('tests/b.py::z', 5.0, 4.0)],
      },
      top=2,
  )
  assert s['cpu_s'] == 16.0
  assert s['workers'] == {
      'gw0': {'wall_s': 13.0, 'cpu_s': 11.0},
      'gw1': {'wall_s': 4.0, 'cpu_s': 5.0},
  }
  assert list(s['files']) == ['tests/a.py', 'tests/b.py']
  assert s['files']['tests/a.py'] == {'cpu_s': 11.0, 'wall_s': 13.0, 'worker': 'gw0'}
  assert [r['test'] for r in s['top']] == ['tests/a.py::x', 'tests/b.py::z']
  assert s['top'][1]['worker'] == 'gw1'


def test_bad_repeats_is_one_line(capsys):
  with pytest.raises(SystemExit) as e:
    suite_time.main(['--repeats=0'])
  assert e.value.code == 2
  assert '--repeats=0: give 1 or more' in capsys.readouterr().err
