"""Benchmark mocap import (parse + retarget to SMPL-24 + resample to 30 fps) per skeleton family.

Loads up to `--per-family` clips of each source family from the staged data (default
`../shared/data/motion`), cropped to their manifest ranges, and prints per family the median and
maximum seconds per clip and the median seconds per second of motion (target: well under 1 s for a
typical clip on one core).

    .venv/bin/python bench/bench_mocap.py [--src ../shared/data/motion] [--per-family 20]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from pathlib import Path

from vmclip.motion.sources import iter_manifest, load_clip


def family(clip_id: str) -> str:
    head = clip_id.split("_")[0]
    return f"{head}_{clip_id.split('_')[1]}" if head == "ad" else head


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--src", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared/data/motion"
    )
    ap.add_argument("--per-family", type=int, default=20)
    args = ap.parse_args()
    rows = defaultdict(list)
    for row in iter_manifest(args.src):
        if len(rows[family(row.clip_id)]) < args.per_family:
            rows[family(row.clip_id)].append(row)
    print(f"{'family':12s} {'clips':>5s} {'median s':>9s} {'max s':>7s} {'s per s of motion':>18s}")
    for fam, fam_rows in rows.items():
        times, ratios = [], []
        for row in fam_rows:
            t0 = time.perf_counter()
            load_clip(args.src, row)
            dt = time.perf_counter() - t0
            times.append(dt)
            ratios.append(dt / ((row.end_frame - row.start_frame) / row.fps))
        print(
            f"{fam:12s} {len(times):5d} {statistics.median(times):9.3f} {max(times):7.3f} "
            f"{statistics.median(ratios):18.4f}"
        )


if __name__ == "__main__":
    main()
