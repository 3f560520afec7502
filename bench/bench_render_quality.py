"""Re-posing quality against ground truth.

Blender (bpy, Cycles on the CPU, 512x512, 16 samples) renders the painted Anny body of the example
person in a room in several random poses and the empty room (the plate); for every ordered pair of
poses, pose A is the source photo and pose B the truth;
our renderer re-poses A to B (transformation flow + compositing, the exact body fit given, so this
measures the renderer, not the fit) and the result is compared with B: SSIM and PSNR inside the
person's box (union of both poses' boxes plus a margin) and over the whole frame. "No re-posing"
(photo A scored against B) is the baseline. LPIPS is not computed: its weights would have to be
downloaded.

Also, when the person analysis and ../shared are present, the real pair iper_p009: fit both photos,
re-pose the first photo to the second photo's fitted pose, compare inside the second photo's box.

    .venv/bin/python bench/bench_render_quality.py [--poses 6] [--work DIR]

With 6 poses every ordered pair of distinct poses gives 30 pairs from 7 Blender renders.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
SIZE = 512


def sample_pose(rng: np.random.Generator, base: np.ndarray | None = None) -> np.ndarray:
    """A standing pose (axis-angle (24, 3)): arms anywhere from down to raised, bent elbows, a step,
    a turn of the body; with `base`, a new pose of the same kind (as a second photo would be)."""
    aa = np.zeros((24, 3))
    aa[0, 1] = rng.uniform(-0.6, 0.6)  # turn
    aa[16, 2] = -rng.uniform(0.3, 1.35)  # left arm from raised to down
    aa[17, 2] = rng.uniform(0.3, 1.35)
    aa[16, 1] = rng.uniform(-0.5, 0.5)  # forward / back
    aa[17, 1] = rng.uniform(-0.5, 0.5)
    aa[18, 1] = -rng.uniform(0.0, 1.3)  # elbows
    aa[19, 1] = rng.uniform(0.0, 1.3)
    hip = rng.uniform(-0.45, 0.35)
    side = rng.integers(2)
    aa[1 + side, 0] = hip
    aa[4 + side, 0] = rng.uniform(0.0, 0.7) if hip < 0 else 0.0
    aa[3, 0] = rng.uniform(-0.1, 0.2)  # lean
    aa[15, :] = rng.uniform(-0.2, 0.2, 3) * [1, 1, 0.3]
    return aa


def _render_poses(work: Path, poses: int, seed: int) -> None:
    """Child process: Blender renders of every pose (skipped when already there)."""
    from vmclip.motion import rotations as R
    from vmclip.person.body import load_body_model
    from vmclip.render.example import example_shape, look_at_camera, outfit_colors, render_person

    body = load_body_model("anny", device="cpu")
    shape = example_shape()
    colors = outfit_colors(body, shape)
    camera = look_at_camera((0.3, 1.05, 3.6), (0.0, 0.86, 0.0), SIZE, SIZE)
    rng = np.random.default_rng(seed)
    meta = {
        "shape": shape,
        "K": camera.K.tolist(),
        "R": camera.R.tolist(),
        "t": camera.t.tolist(),
        "poses": [],
    }
    plate = work / "plate.png"
    if not plate.exists():
        render_person(plate, None, body.faces, colors, camera, SIZE, SIZE)
    for i in range(poses):
        rot = R.axis_angle_to_matrix(sample_pose(rng))
        trans = np.array([rng.uniform(-0.25, 0.25), 0.0, rng.uniform(-0.2, 0.2)])
        verts = body.pose_vertices(shape, rot[None], trans[None])[0]
        trans[1] -= float(verts[:, 1].min())  # soles on the floor
        verts[:, 1] -= float(verts[:, 1].min())
        path = work / f"pose{i:02d}.png"
        if not path.exists():
            render_person(path, verts, body.faces, colors, camera, SIZE, SIZE, seed=i)
        meta["poses"].append({"pose": rot.tolist(), "trans": trans.tolist(), "image": path.name})
        print(f"rendered pose {i + 1}/{poses}", flush=True)
    (work / "poses.json").write_text(json.dumps(meta))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM (Gaussian window sigma 1.5, the usual constants) over the channels, 0..255 images."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    vals = []
    for ch in range(a.shape[2]):
        x, y = a[..., ch], b[..., ch]

        def blur(z):
            return cv2.GaussianBlur(z, (11, 11), 1.5)

        mx, my = blur(x), blur(y)
        sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
        m = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
        vals.append(m[5:-5, 5:-5].mean() if min(m.shape) > 12 else m.mean())
    return float(np.mean(vals))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))


def box_of(masks: list[np.ndarray], margin: int = 12) -> tuple[slice, slice]:
    ys, xs = np.nonzero(np.logical_or.reduce(masks))
    h, w = masks[0].shape
    return (
        slice(max(0, ys.min() - margin), min(h, ys.max() + margin + 1)),
        slice(max(0, xs.min() - margin), min(w, xs.max() + margin + 1)),
    )


def _read(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def synthetic(work: Path, poses: int, seed: int) -> dict:
    from types import SimpleNamespace

    from vmclip.geometry import Camera
    from vmclip.person.body import load_body_model
    from vmclip.render.flow import FlowWarper
    from vmclip.render.pipeline import build_scene, composite, contact_shadow
    from vmclip.render.raster import get_rasterizer

    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    subprocess.run(
        [
            sys.executable,
            __file__,
            "--render-only",
            "--poses",
            str(poses),
            "--seed",
            str(seed),
            "--work",
            str(work),
        ],
        check=True,
    )
    print(f"Blender renders ready ({time.time() - t0:.0f} s)")
    meta = json.loads((work / "poses.json").read_text())
    # Every ordered pair of distinct poses: photo in pose A, truth in pose B.
    pairs = [(meta["poses"][i], meta["poses"][j]) for i in range(poses) for j in range(poses) if i != j]
    body = load_body_model("anny", device="cpu")
    cam = Camera(np.array(meta["K"]), np.array(meta["R"]), np.array(meta["t"]))
    plate = _read(work / "plate.png")
    ras = get_rasterizer()
    rows = []
    for i, (a, b) in enumerate(pairs):
        img_a, img_b = _read(work / a["image"]), _read(work / b["image"])
        va = body.pose_vertices(meta["shape"], np.array(a["pose"])[None], np.array(a["trans"])[None])[0]
        vb = body.pose_vertices(meta["shape"], np.array(b["pose"])[None], np.array(b["trans"])[None])[0]
        mask_a = ras.render(va, body.faces, cam.K, cam.R, cam.t, SIZE, SIZE).mask
        mask_b = ras.render(vb, body.faces, cam.K, cam.R, cam.t, SIZE, SIZE).mask
        soft_a = cv2.GaussianBlur(mask_a.astype(np.float32), (0, 0), 0.8)
        view = SimpleNamespace(
            image=img_a,
            mask=soft_a,
            camera=cam,
            pose=np.array(a["pose"]),
            trans=np.array(a["trans"]),
            background=plate,
        )
        person = SimpleNamespace(views=[view], shape=meta["shape"], body_kind="anny")
        scene = build_scene(person, size=SIZE, body=body)
        warper = FlowWarper(
            ras,
            scene.sources,
            body.faces,
            scene.vertex_part,
            scene.mirror,
            scene.camera,
            SIZE,
            SIZE,
            rest_vertices=scene.rest_vertices,
            texture=scene.texture,
            uv=scene.uv,
        )
        ground = float(vb[:, 1].min())
        out = composite(scene, warper.warp(vb), contact_shadow(scene, vb, ground))
        box = box_of([mask_a, mask_b])
        row = {
            "ssim_box": ssim(out[box], img_b[box]),
            "psnr_box": psnr(out[box], img_b[box]),
            "ssim_full": ssim(out, img_b),
            "psnr_full": psnr(out, img_b),
            "base_ssim_box": ssim(img_a[box], img_b[box]),
            "base_psnr_box": psnr(img_a[box], img_b[box]),
        }
        rows.append(row)
        if i < 4:
            cv2.imwrite(
                str(work / f"compare{i:02d}.png"),
                cv2.cvtColor(np.concatenate([img_a, out, img_b], 1), cv2.COLOR_RGB2BGR),
            )
    summary = {k: float(np.median([r[k] for r in rows])) for k in rows[0]}
    summary.update({f"mean_{k}": float(np.mean([r[k] for r in rows])) for k in ("ssim_box", "psnr_box")})
    summary["pairs"] = len(rows)
    return summary


def real_pair(photos: Path, work: Path) -> dict | None:
    """iper_p009: re-pose photo A to the fitted pose of photo B; score inside B's person box."""
    a, b = photos / "iper_p009_set_a_apose.jpg", photos / "iper_p009_set_b_random.jpg"
    if not (a.exists() and b.exists()):
        print("real pair: ../shared photos absent, skipped")
        return None
    try:
        from vmclip.person import analyze
    except (ImportError, AttributeError) as exc:
        print(f"real pair: person analysis not available ({exc}), skipped")
        return None
    from vmclip.render.flow import FlowWarper
    from vmclip.render.pipeline import build_scene, composite
    from vmclip.render.raster import get_rasterizer

    both = analyze([a, b])
    va, vb = both.views
    person_a = analyze([a])
    person_a.shape = both.shape  # one shape for the person
    person_a.views[0].pose, person_a.views[0].trans = va.pose, va.trans
    scene = build_scene(person_a, size=SIZE)
    body = scene.body
    # B's fitted body expressed in A's camera: same world frame when the cameras agree; else map
    # B's pose through B's camera into A's camera frame.
    verts_b = body.pose_vertices(both.shape, np.asarray(vb.pose)[None], np.asarray(vb.trans)[None])[0]
    ra, ta = np.asarray(va.camera.R), np.asarray(va.camera.t)
    rb, tb = np.asarray(vb.camera.R), np.asarray(vb.camera.t)
    cam_b = verts_b @ rb.T + tb
    verts_b = (cam_b - ta) @ ra
    warper = FlowWarper(
        get_rasterizer(),
        scene.sources,
        body.faces,
        scene.vertex_part,
        scene.mirror,
        scene.camera,
        scene.width,
        scene.height,
        rest_vertices=scene.rest_vertices,
        texture=scene.texture,
        uv=scene.uv,
    )
    out = composite(scene, warper.warp(verts_b))
    truth = cv2.resize(
        np.asarray(vb.image)[..., :3], (scene.width, scene.height), interpolation=cv2.INTER_AREA
    )
    mask_b = cv2.resize(np.asarray(vb.mask, np.float32), (scene.width, scene.height)) > 0.5
    box = box_of([mask_b])
    cv2.imwrite(
        str(work / "iper_compare.png"),  # a derivative of the photos: kept out of the repo
        cv2.cvtColor(np.concatenate([scene.sources[0].image, out, truth], 1), cv2.COLOR_RGB2BGR),
    )
    src = scene.sources[0].image
    return {
        "ssim_box": ssim(out[box], truth[box]),
        "psnr_box": psnr(out[box], truth[box]),
        "base_ssim_box": ssim(src[box], truth[box]),
        "base_psnr_box": psnr(src[box], truth[box]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--poses", type=int, default=6, help="distinct poses; all ordered pairs are scored")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=None, help="render folder (default: cache)")
    parser.add_argument("--photos", type=Path, default=REPO.parent / "shared" / "data" / "photos")
    parser.add_argument("--render-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.work is None:
        from vmclip.assets import cache_dir

        args.work = cache_dir() / "bench_render_quality"
    if args.render_only:
        args.work.mkdir(parents=True, exist_ok=True)
        _render_poses(args.work, args.poses, args.seed)
        return 0
    s = synthetic(args.work, args.poses, args.seed)
    print(f"synthetic (Blender ground truth), {s['pairs']} pose pairs, 512x512, medians:")
    print(
        f"  person box: SSIM {s['ssim_box']:.3f}  PSNR {s['psnr_box']:.2f} dB   "
        f"(means: {s['mean_ssim_box']:.3f}, {s['mean_psnr_box']:.2f} dB)"
    )
    print(f"  full frame: SSIM {s['ssim_full']:.3f}  PSNR {s['psnr_full']:.2f} dB")
    print(
        f"  baseline, no re-posing (photo A vs B), person box: SSIM {s['base_ssim_box']:.3f}  "
        f"PSNR {s['base_psnr_box']:.2f} dB"
    )
    r = real_pair(args.photos, args.work)
    if r is not None:
        print(
            f"real pair iper_p009 (A re-posed to B's fitted pose), person box: SSIM {r['ssim_box']:.3f}  "
            f"PSNR {r['psnr_box']:.2f} dB; no re-posing: SSIM {r['base_ssim_box']:.3f}  "
            f"PSNR {r['base_psnr_box']:.2f} dB"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
