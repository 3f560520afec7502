"""Benchmark motion export: BVH write/read and the stick-figure preview, on a 10 s synthetic motion.

Prints the median of `--repeats` runs for writing and re-reading a 300-frame SMPL-24 BVH and for
rendering + encoding its preview MP4 (frames per second of rendering; target: faster than real time,
i.e. > 30 frames/s at 512x512 on one core).

    .venv/bin/python bench/bench_export.py [--frames 300] [--size 512] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from vmclip.motion import JOINT_INDEX, Motion, write_bvh, write_preview
from vmclip.motion.bvh_write import read_smpl_bvh
from vmclip.motion.skeleton import pelvis_height


def walk(frames: int) -> Motion:
    t = np.arange(frames) / 30.0
    aa = np.zeros((frames, 24, 3))
    for side, sign in (("left", 1.0), ("right", -1.0)):
        aa[:, JOINT_INDEX[f"{side}_hip"], 0] = sign * 0.5 * np.sin(2 * np.pi * t)
        aa[:, JOINT_INDEX[f"{side}_knee"], 0] = 0.6 * np.clip(sign * np.sin(2 * np.pi * t + 1), 0, None)
        aa[:, JOINT_INDEX[f"{side}_shoulder"], 2] = -sign * 1.2
    trans = np.stack([np.zeros(frames), np.full(frames, pelvis_height()), 1.3 * t], axis=1)
    return Motion.from_axis_angle(aa, trans, 30.0, ["a person walks forward"])


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    motion = walk(args.frames)
    with tempfile.TemporaryDirectory() as tmp:
        bvh, mp4 = Path(tmp) / "m.bvh", Path(tmp) / "m.mp4"
        w = [timed(lambda: write_bvh(motion, bvh)) for _ in range(args.repeats)]
        r = [timed(lambda: read_smpl_bvh(bvh)) for _ in range(args.repeats)]
        p = [timed(lambda: write_preview(motion, mp4, size=args.size)) for _ in range(args.repeats)]
    print(f"{args.frames} frames")
    print(f"write_bvh      median {statistics.median(w) * 1000:7.1f} ms")
    print(f"read_smpl_bvh  median {statistics.median(r) * 1000:7.1f} ms")
    med = statistics.median(p)
    rate = args.frames / med
    print(f"write_preview  median {med:7.2f} s  ({rate:.0f} frames/s at {args.size}x{args.size})")


if __name__ == "__main__":
    main()
