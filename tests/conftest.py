"""Test-wide settings, applied before jax is imported by any test module."""
import os

# XLA:CPU compile time dominates these tests (tiny networks, few steps); LLVM's
# optimisation passes buy nothing at these sizes and cost about half of it.
if '--xla_backend_optimization_level' not in os.environ.get('XLA_FLAGS', ''):
  os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '')
                             + ' --xla_backend_optimization_level=0').strip()
