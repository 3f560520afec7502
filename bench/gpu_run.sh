#!/usr/bin/env bash
# The last device call of the carry recipe (bench/README.md): join the carried parts in /tmp, install
# them outside the repository, set up glvnd's EGL for the NVIDIA driver, and run the GPU benchmark.
set -euo pipefail
mkdir -p /tmp/carry
cp .carry/part* /tmp/carry/
cat /tmp/carry/part* | tar -x -C /tmp
P=/tmp/payload
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$P"/wheels/*.whl
cp -r "$P"/site/anny /tmp/site/
for f in "$P"/egl/*.deb; do dpkg -x "$f" /; done
ldconfig
export PYTHONPATH=/tmp/site:$PWD/backend:$PWD/shared VMCLIP_CACHE=$P/cache VMCLIP_MINILM_DIR=$P/minilm16
# glvnd finds the NVIDIA EGL vendor library through this file (the driver folder is mounted read-only).
if [ -f /usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json ]; then
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
fi
out=${OUT:-/tmp}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
PYTHONUNBUFFERED=1 python3 bench/bench_gpu.py --device cuda --json "$out/bench_gpu.json" 2>&1 | tee "$out/bench_gpu.log"
