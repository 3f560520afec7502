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


def test_every_gl_call_runs_in_the_one_thread_that_owns_the_context() -> None:
    """Server workers share the rasteriser; EGL allows a context current in one thread at a time, so
    renders from any thread are handed to the GL thread and come back identical."""
    import threading

    import numpy as np

    ras = get_rasterizer()
    verts = np.array([[0.0, 0.0, 2.0], [0.5, 0.0, 2.0], [0.0, 0.5, 2.0], [0.3, 0.3, 1.5]])
    faces = np.array([[0, 1, 2], [1, 2, 3]])
    K = np.array([[100.0, 0.0, 32.0], [0.0, 100.0, 32.0], [0.0, 0.0, 1.0]])
    want = ras.render(verts, faces, K, np.eye(3), np.zeros(3), 64, 64)
    got: list = []

    def work() -> None:
        for _ in range(5):
            got.append(ras.render(verts, faces, K, np.eye(3), np.zeros(3), 64, 64))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 20 and want.mask.sum() > 100
    for r in got:
        np.testing.assert_array_equal(r.tri, want.tri)
        np.testing.assert_array_equal(r.depth, want.depth)
    gl_threads = [t.name for t in threading.enumerate() if t.name.startswith("vmclip-gl")]
    assert len(gl_threads) == 1
