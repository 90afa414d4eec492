#!/usr/bin/env bash
# Wheels for the GPU machine, which has jax/flax/optax/orbax but not tensorflow-datasets or
# ml_collections (and nothing can be downloaded there). Run on a machine with PyPI access,
# in the repo root; .whl/ is git-ignored. The device's python3 is CPython 3.12 (x86-64).
set -eu
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
mkdir -p .whl
plat="--python-version 3.12 --implementation cp --platform any"
for n in 17 24 27 28 31; do plat="$plat --platform manylinux_2_${n}_x86_64"; done
plat="$plat --platform manylinux2014_x86_64"
# tensorflow-datasets' own needs that the GPU image lacks, each pinned to one version.
$PY -m pip download -q --no-deps --only-binary=:all: $plat -d .whl \
  tensorflow-datasets==4.9.10 ml_collections==1.1.0 array_record==0.8.6 dm-tree==0.1.10 \
  simple_parsing==0.1.9 docstring-parser==0.18.0 immutabledict==4.3.1 termcolor==3.3.0 \
  toml==0.10.2 tensorflow-metadata==1.21.0 importlib_resources==7.1.0 \
  googleapis-common-protos==1.76.0 tensorboardX==2.6.5
$PY -m pip wheel -q --no-deps -w .whl promise==2.3   # sdist only; pure Python
ls .whl
