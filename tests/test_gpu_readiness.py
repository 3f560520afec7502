"""What a GPU box needs that a CPU machine can check: the OpenGL device choice and the benchmark's
refusal to report CPU figures as GPU ones (bench/bench_gpu.py; its full run is in bench/README.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from vmclip.render.raster import get_rasterizer, is_software_renderer, open_egl_context

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench_gpu.py"


@pytest.mark.parametrize(
    ("renderer", "software"),
    [
        ("llvmpipe (LLVM 15.0.6, 256 bits)", True),
        ("softpipe", True),
        ("Mesa swrast", True),
        ("NVIDIA H200/PCIe/SSE2", False),
        ("AMD Radeon Pro W7900 (radeonsi, navi31, LLVM 17.0.6, DRM 3.57)", False),
    ],
)
def test_software_renderers_are_told_from_gpus(renderer, software) -> None:
    assert is_software_renderer(renderer) is software


def test_the_egl_context_here_renders() -> None:
    ctx = open_egl_context()
    try:
        assert ctx.info["GL_RENDERER"]
        if not torch.cuda.is_available():  # a machine without a GPU gets Mesa's software renderer
            assert is_software_renderer(ctx.info["GL_RENDERER"])
    finally:
        ctx.release()
    assert get_rasterizer().renderer


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_gpu_benchmark_refuses_to_run_on_the_cpu_when_cuda_is_asked() -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--device", "cuda"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "no CUDA GPU" in lines[0] and not proc.stdout.strip()
