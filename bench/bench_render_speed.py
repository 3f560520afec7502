"""Renderer speed: warping frames per second at 512x512, and photo + prompt -> 4-s MP4 after loading.

1. Warping: the example person (its exact body fit from the set-up render) performs a 4-s motion;
   median time per output frame of the transformation flow + compositing (rasterise, flow, remap,
   in-paint, shadow, blend), and of the whole `animate` call (with H.264 encoding).
2. End to end (when the person analysis and text-to-motion stages are installed): with the models
   loaded once beforehand (as in `vmclip serve`), the time from the photo and a prompt to the
   finished 4-s MP4, on the example person and on any `--photo`; with `--fresh-process`, also
   `vmclip animate` as typed, in a new process that imports and loads everything.

    .venv/bin/python bench/bench_render_speed.py [--repeat 3] [--photo me.jpg ...] [--fresh-process]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np


def example_person():
    from vmclip.geometry import Camera
    from vmclip.person.body import load_body_model
    from vmclip.render.example import example_paths, prepare_example
    from vmclip.render.raster import get_rasterizer

    prepare_example()
    paths = example_paths()
    truth = json.loads(paths["truth"].read_text())
    body = load_body_model("anny")
    image = cv2.cvtColor(cv2.imread(str(paths["photo"])), cv2.COLOR_BGR2RGB)
    plate = cv2.cvtColor(cv2.imread(str(paths["plate"])), cv2.COLOR_BGR2RGB)
    cam = Camera(np.array(truth["K"]), np.array(truth["R"]), np.array(truth["t"]))
    pose, trans = np.array(truth["pose"]), np.array(truth["trans"])
    verts = body.pose_vertices(truth["shape"], pose[None], trans[None])[0]
    h, w = image.shape[:2]
    mask = get_rasterizer().render(verts, body.faces, cam.K, cam.R, cam.t, w, h).mask
    soft = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 0.8)
    view = SimpleNamespace(
        image=image, mask=soft, camera=cam, pose=pose, trans=trans, background=plate, joints2d=None
    )
    return SimpleNamespace(views=[view], shape=truth["shape"], body_kind="anny"), paths["photo"]


def dance(seconds: float = 4.0):
    """A 4-s test motion: arm waves, steps, a turn and some travel."""
    from vmclip.motion import Motion

    n = int(seconds * 30)
    t = np.arange(n) / 30.0
    aa = np.zeros((n, 24, 3))
    aa[:, 0, 1] = 0.5 * np.sin(t * 1.3)
    aa[:, 16, 2] = -1.2 + 1.5 * np.sin(t * 2.0) ** 2
    aa[:, 17, 2] = 1.2 - 1.0 * np.sin(t * 1.7) ** 2
    aa[:, 18, 1] = -0.9 * np.abs(np.sin(t * 3.0))
    aa[:, 1, 0] = -0.4 * np.sin(t * 4.0)
    aa[:, 2, 0] = 0.4 * np.sin(t * 4.0)
    aa[:, 4, 0] = 0.5 * np.clip(np.sin(t * 4.0), 0, None)
    aa[:, 5, 0] = 0.5 * np.clip(-np.sin(t * 4.0), 0, None)
    trans = np.zeros((n, 3))
    trans[:, 1] = 0.9
    trans[:, 0] = 0.15 * np.sin(t * 0.8)
    return Motion.from_axis_angle(aa, trans)


def bench_warp(person, repeat: int) -> None:
    from vmclip.render.pipeline import animate, render_frames

    motion = dance()
    list(render_frames(person, motion.slice(0, 5)))  # warm-up: context, shaders, caches
    per_frame, cpu = [], []
    for _ in range(repeat):
        stamps, cpus = [time.perf_counter()], [time.process_time()]
        for _frame in render_frames(person, motion):
            stamps.append(time.perf_counter())
            cpus.append(time.process_time())
        per_frame.extend(np.diff(stamps[1:]))  # the first interval holds the one-off scene set-up
        cpu.extend(np.diff(cpus[1:]))
    ms = float(np.median(per_frame)) * 1000
    cpu_ms = float(np.median(cpu)) * 1000
    print(
        f"warping + compositing, 512x512: median {ms:.1f} ms per frame = {1000 / ms:.1f} fps wall clock "
        f"({len(per_frame)} frames); CPU time {cpu_ms:.1f} ms per frame (all threads) = "
        f"{1000 / cpu_ms:.1f} fps on one free core; load average now {os.getloadavg()[0]:.1f}"
    )
    totals = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeat):
            t0 = time.perf_counter()
            animate(person, motion, Path(tmp) / "out.mp4")
            totals.append(time.perf_counter() - t0)
    print(
        f"animate (scene set-up + {motion.num_frames} frames + H.264): median {np.median(totals):.2f} s "
        f"for a {motion.seconds:.0f}-s clip"
    )


PROMPT = "a person waves with the right hand and then takes a step forward"


def bench_end_to_end(photo: Path, repeat: int) -> None:
    from vmclip.errors import VmclipError
    from vmclip.pipeline import Pipeline

    try:
        Pipeline().generator()
    except (ImportError, AttributeError, VmclipError) as exc:
        print(f"end to end: skipped, a stage is not ready ({exc})")
        return
    Pipeline().run(prompt=PROMPT, images=[photo], seconds=4.0)  # loads MediaPipe and the body model
    totals, parts = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeat):
            pipeline = Pipeline()  # the models stay loaded; the analysis is not kept between runs
            t0 = time.perf_counter()
            person = pipeline.analyze([photo])
            t1 = time.perf_counter()
            motion = pipeline.motion(PROMPT, seconds=4.0, seed=i)
            t2 = time.perf_counter()
            pipeline.video(person, motion, Path(tmp) / "out.mp4")
            t3 = time.perf_counter()
            totals.append(t3 - t0)
            parts.append((t1 - t0, t2 - t1, t3 - t2))
    p = np.median(np.array(parts), axis=0)
    print(
        f"{photo.name}: photo + prompt -> 4-s MP4 (models loaded): median {np.median(totals):.2f} s "
        f"(analysis {p[0]:.2f} s, motion {p[1]:.2f} s, render + encode {p[2]:.2f} s)"
    )


def bench_fresh_process(photo: Path, repeat: int) -> None:
    """`vmclip animate` as a user types it: a new process that imports and loads everything."""
    vmclip = Path(sys.executable).with_name("vmclip")
    totals = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeat):
            t0 = time.perf_counter()
            subprocess.run(
                [str(vmclip), "animate", str(photo), "--prompt", PROMPT, "-o", str(Path(tmp) / "out.mp4")],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            totals.append(time.perf_counter() - t0)
    print(f"{photo.name}: `vmclip animate` in a fresh process: median {np.median(totals):.2f} s")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--photo",
        type=Path,
        action="append",
        default=[],
        help="also run end to end on this photo (repeatable); the example person is always run",
    )
    parser.add_argument(
        "--fresh-process", action="store_true", help="also time `vmclip animate` in a new process per run"
    )
    args = parser.parse_args()
    from vmclip.render.pipeline import render_threads
    from vmclip.render.raster import get_rasterizer

    print(f"OpenGL renderer: {get_rasterizer().renderer}; frame threads: {render_threads()}")
    person, photo = example_person()
    bench_warp(person, args.repeat)
    for p in [photo, *args.photo]:
        bench_end_to_end(p, args.repeat)
        if args.fresh_process:
            bench_fresh_process(p, args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
