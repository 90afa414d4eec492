"""Compile time and step time of the tests' tiny attack under the current XLA_FLAGS.

    XLA_FLAGS='--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false' \
        JAX_PLATFORMS=cpu python benchmarks/compile_time.py

Lowers and compiles one 2-step chunk of tests/test_attack.py's `make_tiny_attack`
(no persistent cache: run it in a fresh process per setting), then times 5 chunks.
It is how tests/conftest.py's XLA flags were chosen: the test suite is bound by
XLA:CPU compile time, runs by step time. Prints one line; the critic loss shows
whether a flag changed the numbers.
"""

import os
import sys
import time

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'tests')
)

import jax  # noqa: E402  pylint: disable=wrong-import-position

from test_attack import make_tiny_attack  # noqa: E402  pylint: disable=wrong-import-position


def main() -> None:
  attack, data = make_tiny_attack()
  state = jax.jit(attack.init)(jax.random.PRNGKey(0))
  run = jax.jit(attack.run, static_argnums=2)
  start = time.time()
  lowered = run.lower(state, data, 2)
  lower_s = time.time() - start
  start = time.time()
  compiled = lowered.compile()
  compile_s = time.time() - start
  state, metrics = compiled(state, data)
  jax.block_until_ready(state)
  start = time.time()
  for _ in range(5):
    state, metrics = compiled(state, data)
  jax.block_until_ready(state)
  chunk_s = (time.time() - start) / 5
  print(
      f'lower {lower_s:.2f} s  compile {compile_s:.2f} s  2-step chunk {chunk_s:.3f} s  '
      f"critic loss {float(metrics['critic_loss'][-1]):.6f}  XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}"
  )


if __name__ == '__main__':
  main()
