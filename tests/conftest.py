"""Test-wide settings, applied before jax is imported by any test module."""
import atexit
import os
import shutil
import tempfile

# XLA:CPU compile time dominates these tests (tiny networks, few steps); LLVM's
# optimisation passes buy nothing at these sizes and cost about half of it.
if '--xla_backend_optimization_level' not in os.environ.get('XLA_FLAGS', ''):
  os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '')
                             + ' --xla_backend_optimization_level=0').strip()

# One persistent XLA compilation cache for the whole session, this process and
# every `python main.py` (or other) subprocess a test starts, which inherit the
# environment: a program compiled once (the tiny attack's chunk, f's training
# epoch, ...) is read back instead of compiled again by the next run that builds
# it. Fresh per session and removed after, so each session still compiles all.
if not os.environ.get('JAX_COMPILATION_CACHE_DIR'):
  _XLA_CACHE = tempfile.mkdtemp(prefix='c2g_tests_xla_cache_')
  os.environ['JAX_COMPILATION_CACHE_DIR'] = _XLA_CACHE
  os.environ['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '0'
  os.environ['JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES'] = '-1'
  atexit.register(shutil.rmtree, _XLA_CACHE, ignore_errors=True)
