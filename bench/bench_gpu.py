"""Every stage on one device, with proof that it ran there: the GPU benchmark (and its CPU baseline).

    python bench/bench_gpu.py --device cuda [--json out.json] [--repeat 3]
    .venv/bin/python bench/bench_gpu.py --device cpu

Stages, on the project's example person (`vmclip.render.example`, rendered at set-up) and a prompt:
1. text -> motion: model load time; ms per 4-s motion, and with constraints where the generator
   takes them (`Generator.generate(..., constraints=...)`);
2. person analysis: seconds per photo, split into MediaPipe (always the CPU), the body fit (the
   device) and the background plate (in-painting, CPU);
3. warping + compositing at 512x512 and 1024x1024: frames per second, and the OpenGL renderer;
4. photo + prompt -> 4-s MP4 through `vmclip.pipeline` (models loaded, analysis not cached);
5. `vmclip serve --device ...` on loopback: `vmclip client ping` round trips, one generate_motion,
   and 8 concurrent clients;
6. peak GPU memory of this process (peak resident memory on the CPU).

Every stage checks where it ran: the tensors' devices and, for the GPU, that CUDA memory was used;
the rasteriser's GL_RENDERER must not be a software one (llvmpipe) when CUDA is asked for; the
server must report the device. Any fall-back to the CPU is listed at the end and the exit code is 1.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

PROMPT = "a person waves with the right hand, then walks forward"
PROMPTS = [
    "a person walks forward",
    "a man waves with his right hand",
    "someone jumps twice",
    "a woman sits down slowly",
    "a person turns around and runs",
]
SOFTWARE_GL = ("llvmpipe", "softpipe", "swrast", "software")
CLIENTS = 8  # concurrent clients against one server (the figure)
SERVER_START_S = 300  # loading torch, the model and MediaPipe on a cold machine


class Report:
    """Figures by stage, and every check that failed."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.figures: dict[str, dict[str, Any]] = {}
        self.failures: list[str] = []

    def put(self, stage: str, **figures: Any) -> None:
        self.figures.setdefault(stage, {}).update(figures)
        shown = ", ".join(f"{k} {_fmt(v)}" for k, v in figures.items())
        print(f"{stage}: {shown}", flush=True)

    def check(self, ok: bool, what: str) -> None:
        if not ok:
            self.failures.append(what)
            print(f"FAILED CHECK: {what}", file=sys.stderr, flush=True)


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _cuda_peak() -> int:
    import torch

    return int(torch.cuda.max_memory_allocated()) if torch.cuda.is_available() else 0


def _on(report: Report, tensors: dict[str, Any], stage: str) -> None:
    """Every named tensor lives on the requested device type."""
    want = report.device.split(":")[0]
    for name, tensor in tensors.items():
        got = getattr(getattr(tensor, "device", None), "type", None)
        report.check(got == want, f"{stage}: {name} is on {got}, not {want}")


# --- 1. text -> motion -------------------------------------------------------------------------------
def bench_t2m(report: Report, repeat: int) -> Any:
    from vmclip.pipeline import Pipeline

    pipeline = Pipeline(report.device)
    gen, load_s = _timed(pipeline.generator)
    tensors = {"model weights": next(gen.model.parameters()), "text embedding": gen.embed(["a person"])}
    if gen.bank is not None:
        tensors["motion bank"] = gen.bank
    _on(report, tensors, "text -> motion")
    gen.generate(PROMPTS[0], seconds=4.0, seed=0)  # warm-up (kernels, caches)
    times = []
    for i in range(repeat * len(PROMPTS)):
        _, s = _timed(
            lambda i=i: (gen.generate(PROMPTS[i % len(PROMPTS)], seconds=4.0, seed=i), _sync(report.device))
        )
        times.append(s)
    report.put("text -> motion", load_s=load_s, ms_per_4s_motion=1000 * float(np.median(times)))
    if "constraints" in inspect.signature(gen.generate).parameters:
        report.put("text -> motion", constrained_ms_per_4s_motion=_constrained_ms(gen, repeat))
    else:
        report.put("text -> motion", constrained="not measured: Generator.generate takes no constraints here")
    return pipeline


def _constrained_ms(gen: Any, repeat: int) -> float:
    """A 4-s motion holding a walk's root path and its first and last poses."""
    from vmclip.motion.constraints import MotionConstraints

    ref = gen.generate("a person walks forward", seconds=4.0, seed=1)
    mask = np.zeros((ref.num_frames, 25), bool)
    mask[:, 24] = True  # the ground path
    mask[[0, -1], :24] = True  # the first and the last pose
    cons = MotionConstraints.create(ref.axis_angle(), ref.trans, mask, num_frames=ref.num_frames)
    times = [
        _timed(lambda i=i: gen.generate(PROMPTS[i % len(PROMPTS)], seconds=4.0, seed=i, constraints=cons))[1]
        for i in range(repeat * 2)
    ]
    return 1000 * float(np.median(times))


# --- 2. person analysis, 3. background plate -----------------------------------------------------------
def bench_analysis(report: Report, pipeline: Any, photo: Path) -> Any:
    from vmclip.person.body import load_body_model

    marks: list[tuple[float, str]] = []
    person, total = _timed(
        lambda: pipeline.analyze([photo], progress=lambda f, m="": marks.append((time.perf_counter(), m)))
    )
    _sync(report.device)
    spans = _phases(marks, ("finding the person", "fitting the body", "in-painting", "analysis ready"))
    report.put(
        "person analysis",
        seconds_per_photo=total,
        mediapipe_cpu_s=spans[0],
        fit_s=spans[1],
        plate_s=spans[2],
    )
    body = load_body_model(person.body_kind, device=report.device)
    _on(report, {"body template": body._tv, "skin weights": body._weights_t}, "person analysis")
    if report.device.startswith("cuda"):
        report.check(_cuda_peak() > 0, "person analysis: no CUDA memory was used by the fit")
    return person


def _phases(marks: list[tuple[float, str]], names: tuple[str, ...]) -> list[float]:
    """Seconds between the first progress message of each phase and that of the next."""
    starts = []
    for name in names:
        hit = [t for t, m in marks if m.startswith(name)]
        starts.append(hit[0] if hit else float("nan"))
    return [b - a for a, b in zip(starts, starts[1:], strict=False)]


def bench_plate(report: Report, person: Any) -> None:
    from vmclip.person.background import background_plate

    view = person.views[0]
    _, s = _timed(lambda: background_plate(view.image, view.mask, view.box, seed=0))
    report.put("background plate", seconds=s, size=f"{view.image.shape[1]}x{view.image.shape[0]}")


# --- 4. warping + compositing ---------------------------------------------------------------------------
def bench_warp(report: Report, person: Any, motion: Any, repeat: int) -> None:
    from vmclip.person.body import load_body_model
    from vmclip.render.pipeline import render_frames
    from vmclip.render.raster import get_rasterizer

    renderer = get_rasterizer().renderer
    report.put("warping + compositing", gl_renderer=renderer)
    if report.device.startswith("cuda"):
        soft = any(s in renderer.lower() for s in SOFTWARE_GL)
        report.check(not soft, f"warping: OpenGL runs on a software renderer ({renderer}), not the GPU")
    body = load_body_model(person.body_kind, device=report.device)
    for size in (512, 1024):
        list(render_frames(person, motion.slice(0, 5), size=size, body=body))  # shaders, caches
        per_frame = []
        for _ in range(repeat):
            stamps = [time.perf_counter()]
            for _frame in render_frames(person, motion, size=size, body=body):
                stamps.append(time.perf_counter())
            per_frame.extend(np.diff(stamps[1:]))  # the first interval holds the scene's set-up
        report.put("warping + compositing", **{f"fps_{size}": 1.0 / float(np.median(per_frame))})


# --- 5. photo + prompt -> MP4 ---------------------------------------------------------------------------
def bench_end_to_end(report: Report, photo: Path, repeat: int) -> None:
    from vmclip.pipeline import Pipeline
    from vmclip.video import read_frames

    totals = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeat):
            pipeline = Pipeline(report.device)  # models stay loaded; the analysis is not cached
            out = Path(tmp) / f"e2e{i}.mp4"
            _, s = _timed(lambda p=pipeline, o=out, i=i: p.run(prompt=PROMPT, images=[photo], out=o, seed=i))
            totals.append(s)
        frames = len(read_frames(out))
    report.check(frames >= 120, f"photo + prompt: the MP4 has {frames} frames, not a 4-s clip")
    report.put("photo + prompt -> 4-s MP4", seconds=float(np.median(totals)), frames=frames)


# --- 6. the server ---------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _vmclip(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vmclip", *args], capture_output=True, text=True, timeout=timeout
    )


def bench_server(report: Report, rounds: int) -> None:
    import vmclip_protocol as vp

    address = f"tcp://127.0.0.1:{_free_port()}"
    log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
    server = subprocess.Popen(
        [sys.executable, "-m", "vmclip", "serve", "--bind", address, "--device", report.device],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        hello, start_s = _timed(lambda: _wait_for_server(vp, address, server, log.name))
        report.check(
            str(hello.get("device", "")).split(":")[0] == report.device.split(":")[0],
            f"server: hello says device {hello.get('device')!r}, not {report.device!r}",
        )
        pings = [_timed(lambda: _vmclip("client", "--server", address, "ping"))[1] for _ in range(rounds)]
        with vp.Client(address, timeout_s=60, retries=0) as client:
            rtt = [_timed(client.hello)[1] for _ in range(rounds)]
            _, motion_s = _timed(lambda: client.generate_motion(PROMPT, seconds=4.0, seed=0))
        wall, per_request = _concurrent(vp, address, rounds)
        report.put(
            "server",
            start_s=start_s,
            cli_ping_s=float(np.median(pings)),
            hello_rtt_ms=1000 * float(np.median(rtt)),
            generate_4s_s=motion_s,
            **{
                f"{CLIENTS}_clients_requests_per_s": CLIENTS * rounds / wall,
                f"{CLIENTS}_clients_median_s": float(np.median(per_request)),
            },
        )
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        os.unlink(log.name)


def _wait_for_server(vp: Any, address: str, server: subprocess.Popen, log: str) -> dict:
    deadline = time.monotonic() + SERVER_START_S
    with vp.Client(address, timeout_s=5.0, retries=0) as client:
        while True:
            if server.poll() is not None:
                raise RuntimeError(
                    f"vmclip serve exited ({server.returncode}): {Path(log).read_text()[-2000:]}"
                )
            try:
                return client.hello()
            except Exception:  # noqa: BLE001 - not up yet
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)


def _concurrent(vp: Any, address: str, rounds: int) -> tuple[float, list[float]]:
    """CLIENTS threads, each with its own client, `rounds` generate_motion requests each."""
    per_request: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(k: int) -> None:
        try:
            with vp.Client(address, timeout_s=120, retries=0) as client:
                for r in range(rounds):
                    _, s = _timed(
                        lambda r=r: client.generate_motion(PROMPTS[(k + r) % len(PROMPTS)], 4.0, k * 100 + r)
                    )
                    with lock:
                        per_request.append(s)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(CLIENTS)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{len(errors)} of {CLIENTS} clients failed: {errors[0]!r}")
    return time.perf_counter() - t0, per_request


# --- main --------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--device", default="cuda", help="torch device to prove (default cuda; cpu for the baseline)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="repetitions of each timing (median reported)")
    parser.add_argument("--json", type=Path, help="also write the figures and failed checks here")
    args = parser.parse_args(argv)

    from vmclip.devices import choose_device
    from vmclip.errors import VmclipError
    from vmclip.render.example import example_paths, prepare_example

    try:
        device = str(choose_device(args.device))
    except VmclipError as exc:
        print(f"bench_gpu: {exc}", file=sys.stderr)
        return 2
    report = Report(device)
    prepare_example()
    photo = example_paths()["photo"]
    import torch

    report.put(
        "machine",
        device=device,
        gpu=torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else "none",
        python=sys.version.split()[0],
        torch=torch.__version__,
        cpus=os.cpu_count(),
        torch_threads=torch.get_num_threads(),
        load_average_at_start=os.getloadavg()[0],
    )
    pipeline = bench_t2m(report, args.repeat)
    person = bench_analysis(report, pipeline, photo)
    bench_plate(report, person)
    motion = pipeline.motion(PROMPT, seconds=4.0, seed=0)
    bench_warp(report, person, motion, args.repeat)
    bench_end_to_end(report, photo, args.repeat)
    bench_server(report, args.repeat)
    peak = _cuda_peak() if device.startswith("cuda") else 0
    report.put(
        "memory",
        peak_gpu_mib=peak / 2**20,
        peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )
    report.put("machine", load_average_at_end=os.getloadavg()[0])
    if args.json:
        args.json.write_text(json.dumps({"figures": report.figures, "failures": report.failures}, indent=1))
    if report.failures:
        print(f"\n{len(report.failures)} stage(s) did not run on {device}:", file=sys.stderr)
        for f in report.failures:
            print(f"  - {f}", file=sys.stderr)
        return 1
    print(f"\nevery stage ran on {device}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
