"""Text-to-motion benchmark: load time in a fresh process and time per 4-second motion.

Targets (issue 3): text encoder + model loaded in <= 3 s in a fresh process; one 4-second motion in
<= 50 ms after load on the 2-core CPU. Issue 12: one 4-second motion at most 100 ms after load, with
and without constraints (in-betweening keys, a regenerated range, a circular root path), and composed
prompts (a sequence joined by in-painting, a body-part composition). Prints medians.
Usage: .venv/bin/python bench/bench_t2m.py
[--checkpoint PATH] [--model masked|motionclip] [--runs N] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

LOAD_SNIPPET = """
import time
t0 = time.perf_counter()
import torch
torch.set_num_threads({threads})
t1 = time.perf_counter()
from vmclip.t2m import load_generator
g = load_generator(device="cpu", checkpoint={checkpoint!r}, model={model!r})
t2 = time.perf_counter()
g.generate("a person walks forward", seconds=4.0, seed=0)
t3 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2)
"""


def _constrained(gen, runs: int, threads: int) -> None:
    """4-second motions with constraints: keys every second, a range kept, a circle path."""
    import numpy as np
    from vmclip.motion.constraints import MotionConstraints

    frames = 120
    base = gen.generate("a person walks forward", seconds=4.0, seed=99)
    poses, trans = base.axis_angle(), base.trans
    keys = np.zeros(frames, bool)
    keys[::30] = True
    keep = np.ones(frames, bool)
    keep[40:80] = False
    angle = np.linspace(0, 2 * np.pi, frames)
    circle = np.stack([0.6 * np.sin(angle), np.zeros(frames), 0.6 * (1 - np.cos(angle))], 1)
    path = np.zeros((frames, 25), bool)
    path[:, 24] = True
    cases = {
        "keys": MotionConstraints.create(poses, trans, keys),
        "range": MotionConstraints.create(poses, trans, keep),
        "circle": MotionConstraints.create(np.zeros((frames, 24, 3)), circle, path, trans_y=False),
    }
    prompt = "a person waves with the right hand"
    for name, c in cases.items():
        gen.generate(prompt, seconds=4.0, seed=0, constraints=c)  # warm-up
        times = []
        for i in range(runs):
            t = time.perf_counter()
            gen.generate(prompt, seconds=4.0, seed=i, constraints=c)
            times.append(time.perf_counter() - t)
        print(
            f"one 4-second motion with constraints ({name}), median of {runs}, {threads} threads: "
            f"{statistics.median(times) * 1000:.1f} ms (target <= 100 ms)"
        )


def _composed(gen, runs: int, threads: int) -> None:
    """4-second composed prompts: a sequence ("turns around and walks away") and a body-part
    composition ("walks while waving the right hand")."""
    for prompt in ("a person turns around and walks away", "a person walks while waving the right hand"):
        gen.generate(prompt, seconds=4.0, seed=0)  # warm-up
        times = []
        for i in range(runs):
            t = time.perf_counter()
            gen.generate(prompt, seconds=4.0, seed=i)
            times.append(time.perf_counter() - t)
        print(
            f"one 4-second composed motion ({prompt!r}), median of {runs}, {threads} threads: "
            f"{statistics.median(times) * 1000:.1f} ms (target <= 100 ms)"
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", default=None, help="model file (default: the shipped weights)")
    parser.add_argument(
        "--model", choices=("masked", "motionclip"), default=None, help="shipped model (default: the default)"
    )
    parser.add_argument("--runs", type=int, default=20, help="timed generations")
    parser.add_argument("--loads", type=int, default=3, help="fresh processes for the load time")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    rows = []
    for _ in range(args.loads):
        code = LOAD_SNIPPET.format(threads=args.threads, checkpoint=args.checkpoint, model=args.model)
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        wall = time.perf_counter() - t
        torch_s, load_s, first_s = (float(v) for v in out.split())
        rows.append((wall, torch_s, load_s, first_s))
    print(
        f"fresh process, median of {args.loads}: import torch {statistics.median(r[1] for r in rows):.2f} s, "
        f"load text encoder + model {statistics.median(r[2] for r in rows):.2f} s "
        f"(import torch + load {statistics.median(r[1] + r[2] for r in rows):.2f} s; target <= 3 s), "
        f"first 4 s motion {statistics.median(r[3] for r in rows) * 1000:.0f} ms, "
        f"whole process {statistics.median(r[0] for r in rows):.2f} s"
    )

    import torch

    torch.set_num_threads(args.threads)
    from vmclip.t2m import load_generator

    gen = load_generator(device="cpu", checkpoint=args.checkpoint, model=args.model)
    prompts = [
        "a person waves with the right hand",
        "a person walks forward",
        "a person jumps",
        "a tired man walks, then waves",
    ]
    for p in prompts:
        gen.generate(p, seconds=4.0, seed=0)  # warm-up
    times: dict[str, list[float]] = {"text": [], "full": [], "no_cleanup": []}
    for i in range(args.runs):
        p = prompts[i % len(prompts)]
        t = time.perf_counter()
        gen.embed([p])
        times["text"].append(time.perf_counter() - t)
        t = time.perf_counter()
        gen.generate(p, seconds=4.0, seed=i)
        times["full"].append(time.perf_counter() - t)
        t = time.perf_counter()
        gen.generate(p, seconds=4.0, seed=i, clean=False)
        times["no_cleanup"].append(time.perf_counter() - t)
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    print(
        f"one 4-second motion (30 fps, 120 frames), median of {args.runs}, {args.threads} threads: "
        f"{med['full']:.1f} ms (target <= 50 ms, issue 12: <= 100 ms); of which text embedding "
        f"{med['text']:.1f} ms, "
        f"clean-up {med['full'] - med['no_cleanup']:.1f} ms"
    )
    _constrained(gen, args.runs, args.threads)
    _composed(gen, args.runs, args.threads)
    t = time.perf_counter()
    for i in range(5):
        gen.generate("a person walks forward", seconds=10.0, seed=i)
    print(f"one 10-second motion: {(time.perf_counter() - t) / 5 * 1000:.1f} ms (mean of 5)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
