#!/usr/bin/env bash
# Prepare, on this machine, what the device machine lacks for `python -m benchmarks.gpu_check`
# (its image has PyTorch, NumPy, SciPy, scikit-learn, ONNX Runtime, safetensors, httpx and typer,
# and Python 3.12, but not the server's web and database packages), and a copy of the CIFAR-10
# subset small enough to travel with the working tree (64 MiB in all). Both are git-ignored
# (.git/info/exclude); the device run carries them. Then, with the `device` tool:
#   run(command="python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir
#        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
#        && python3 -m benchmarks.gpu_check --dataset npz:.gpu_data/cifar_gpu.npz
#        --out $OUT/gpu_check", carry=[".whl", ".gpu_data"], timeout_s=540)
# and copy gpu_check.md and gpu_check.json from the returned files into docs/benchmarks/.
set -euo pipefail
cd "$(dirname "$0")/.."
for ignored in /.whl/ /.gpu_data/; do
  grep -qxF "$ignored" .git/info/exclude 2>/dev/null || echo "$ignored" >> .git/info/exclude
done
mkdir -p .whl .gpu_data
# the packages the check imports that the device's image does not hold, for CPython 3.12
PACKAGES=(fastapi starlette pydantic pydantic-core pydantic-settings python-dotenv annotated-types
  typing-inspection sqlalchemy greenlet alembic mako celery kombu vine billiard amqp
  click-didyoumean click-repl click-plugins python-multipart python-json-logger tzdata tzlocal
  prompt-toolkit wcwidth uvicorn)
for package in "${PACKAGES[@]}"; do
  python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
    -d .whl "$package" 2>/dev/null
done
# 8,000 of the subset's 10,000 training images (two mega-batches of 4,000) and its 2,000 test
python3 - <<'PY'
import numpy as np
data = np.load("../shared/data/cifar10_small.npz")
np.savez(".gpu_data/cifar_gpu.npz", x_train=data["x_train"][:8000], y_train=data["y_train"][:8000],
         x_test=data["x_test"], y_test=data["y_test"], class_names=data["class_names"])
PY
du -sh .whl .gpu_data
