#!/usr/bin/env bash
# One-step set-up: creates .venv/ at the repository root with pinned packages (CPU PyTorch from the
# machine's local wheel), then prepares the embedded assets. Safe to run again: it skips what is done.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
"$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || {
  echo "setup: Python 3.11 is required (bpy 5.0.1 and mediapipe 0.10.21 wheels exist for 3.11)" >&2; exit 2; }

# moderngl's EGL backend needs Mesa's libEGL (llvmpipe on machines without a GPU).
if ! ldconfig -p 2>/dev/null | grep -q 'libEGL.so.1'; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing Mesa EGL (libegl1, libgl1-mesa-dri)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libegl1 libgl1-mesa-dri >/dev/null
  else
    echo "setup: warning: libEGL.so.1 not found; install libegl1 and libgl1-mesa-dri for rendering" >&2
  fi
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.vmclip-installed
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing pinned packages into .venv (first time: a few minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  # torch first and alone, so that no dependency can pull a CUDA build onto a CPU machine.
  .venv/bin/python -m pip install -q -c constraints.txt "torch==2.13.0"
  .venv/bin/python -m pip install -q -c constraints.txt -e ".[blender,dev]"
  echo "$want" > "$stamp"
fi

# The installable Blender add-on (dist/), with pyzmq wheels for Linux, Windows and macOS fetched from
# PyPI once into .cache/wheels; the build still succeeds, without bundled wheels, where PyPI is unreachable.
.venv/bin/python build_addon.py || echo "setup: warning: the add-on zip could not be built" >&2

# Caches for the embedded models (Anny's body cache, example person): built once, reused.
.venv/bin/python -m vmclip.assets prepare
echo "setup: ready (.venv)"
