#!/usr/bin/env bash
# Build .gpu/ for scripts/gpu.py: the wheels a bare GPU machine (Python 3.12 + torch) lacks,
# and data.tar.gz (the offline data root without the raw downloads, plus the LPIPS AlexNet
# backbone). Run after `make assets`. Carry .gpu (git-ignored) with the checkout.
#   bash scripts/gpu_bundle.sh [--with-fashion-mnist]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=.gpu
DATA=$($PY -c 'from gradinv.data.registry import data_root; print(data_root())')
HUB=$($PY -c 'import torch; print(torch.hub.get_dir())')
rm -rf "$OUT" && mkdir -p "$OUT/wheels" "$OUT/stage/data" "$OUT/stage/hub/checkpoints"
# what the device image lacks (KINDS.md lists what it has): the versions installed here
for pkg in lpips diffusers importlib_metadata; do
  version=$($PY -c "import importlib.metadata as m; print(m.version('$pkg'))")
  $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
    -d "$OUT/wheels" "$pkg==$version"
done
cp -r "$DATA/embedded" "$DATA/weights" "$OUT/stage/data/"
if [[ "${1:-}" == "--with-fashion-mnist" ]]; then
  mkdir -p "$OUT/stage/data/fashion_mnist" && cp -r "$DATA/fashion_mnist/"* "$OUT/stage/data/fashion_mnist/"
fi
cp "$HUB/checkpoints/"alexnet-*.pth "$OUT/stage/hub/checkpoints/"
tar -czf "$OUT/data.tar.gz" -C "$OUT/stage" data hub
rm -rf "$OUT/stage"
du -sh "$OUT"/* | sed 's/^/gpu bundle: /'
