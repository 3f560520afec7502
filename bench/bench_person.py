"""Person analysis timings on 512-px photos: pose + mask (MediaPipe), body fit, background plate.

    .venv/bin/python bench/bench_person.py [--photos ../shared/data/photos] [--repeat 3]

Uses a synthetic photo (the Anny body rendered over a plain background) and, when the photo folder
exists, every photo in it scaled to 512 px. Prints medians per stage and per photo, after models load.
Targets (issue 4): pose + mask + fit <= 3 s, background <= 3 s per 512-px photo on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np


def synthetic_photo(size: int = 512) -> np.ndarray:
    from scipy.spatial.transform import Rotation
    from vmclip.motion.skeleton import JOINT_INDEX as J
    from vmclip.person.body import load_body_model
    from vmclip.person.debug import shaded_render
    from vmclip.person.fit import CAM_FROM_WORLD

    body = load_body_model("anny")
    rot = np.tile(np.eye(3), (1, 24, 1, 1))
    rot[0, 0] = CAM_FROM_WORLD @ Rotation.from_euler("y", 25, degrees=True).as_matrix()
    rot[0, J["left_shoulder"]] = Rotation.from_euler("z", -60, degrees=True).as_matrix()
    rot[0, J["right_elbow"]] = Rotation.from_euler("y", 70, degrees=True).as_matrix()
    verts = body.pose_vertices(None, rot, np.array([[0.0, 0.0, 3.2]]))[0]
    K = np.array([[1.2 * size, 0, size / 2], [0, 1.2 * size, size / 2], [0, 0, 1.0]])
    bg = np.zeros((size, size, 3), np.uint8)
    bg[:] = (90, 120, 150)
    bg[int(size * 0.75) :] = (110, 100, 80)
    return shaded_render(verts, body.faces, K, bg)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    repo = Path(__file__).resolve().parents[1]
    parser.add_argument("--photos", type=Path, default=repo.parent / "shared" / "data" / "photos")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from vmclip.person.background import background_plate
    from vmclip.person.body import load_body_model
    from vmclip.person.detect import detect
    from vmclip.person.fit import fit_views
    from vmclip.person.images import load_image

    t0 = time.perf_counter()
    body = load_body_model("anny")
    print(f"body model load: {time.perf_counter() - t0:.2f} s")
    photos: list[tuple[str, np.ndarray]] = [("synthetic", synthetic_photo())]
    if args.photos.is_dir():
        for p in sorted(args.photos.iterdir()):
            if p.suffix.lower() in (".jpg", ".png") and "mask" not in p.name:
                photos.append((p.name, load_image(p, max_side=512)))
    t0 = time.perf_counter()
    detect(photos[0][1])  # loads MediaPipe's graph
    print(f"MediaPipe load + first image: {time.perf_counter() - t0:.2f} s")

    totals = {"detect": [], "fit": [], "background": [], "fit_cpu": [], "plate_cpu": []}
    print(
        f"{'photo':40s} {'size':>9s} {'detect s':>9s} {'fit s':>7s} {'fit cpu s':>9s} "
        f"{'plate s':>8s} {'plate cpu s':>11s} "
        f"{'err %':>6s} {'IoU':>5s}"
    )
    for name, image in photos:
        times = {"detect": [], "fit": [], "background": [], "fit_cpu": [], "plate_cpu": []}
        for _ in range(args.repeat):
            t = time.perf_counter()
            det = detect(image, name)
            times["detect"].append(time.perf_counter() - t)
            t = time.perf_counter()
            c = time.process_time()
            res = fit_views(body, [image], [det])[0]
            times["fit"].append(time.perf_counter() - t)
            times["fit_cpu"].append(time.process_time() - c)
            t = time.perf_counter()
            c = time.process_time()
            background_plate(image, det.mask, det.box)
            times["background"].append(time.perf_counter() - t)
            times["plate_cpu"].append(time.process_time() - c)
        med = {k: statistics.median(v) for k, v in times.items()}
        for k in totals:
            totals[k].append(med[k])
        size = f"{image.shape[1]}x{image.shape[0]}"
        print(
            f"{name:40s} {size:>9s} {med['detect']:9.2f} {med['fit']:7.2f} {med['fit_cpu']:9.2f} "
            f"{med['background']:8.2f} {med['plate_cpu']:11.2f} "
            f"{res.fit_error_pct:6.2f} {res.iou:5.2f}"
        )
    d, f, b, fc, bc = (
        statistics.median(totals[k]) for k in ("detect", "fit", "background", "fit_cpu", "plate_cpu")
    )
    print(
        f"median over photos: pose+mask {d:.2f} s, fit {f:.2f} s (CPU time {fc:.2f} s), pose+mask+fit "
        f"{d + f:.2f} s (target <= 3), background {b:.2f} s (CPU time {bc:.2f} s, target <= 3)"
    )
    print(f"load average while measuring: {os.getloadavg()[0]:.1f} (2 cores: other jobs slow the wall times)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
