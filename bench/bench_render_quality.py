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


def _warp_and_composite(scene, verts, avatar: bool, shadow_ground: float | None = None):
    from vmclip.render.pipeline import composite, contact_shadow, scene_warper

    warper = scene_warper(scene, avatar=avatar)
    shadow = None if shadow_ground is None else contact_shadow(scene, verts, shadow_ground)
    return composite(scene, warper.warp(verts), shadow)


def _person(image, mask, cam, pose, trans, plate, shape):
    from types import SimpleNamespace

    soft = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 0.8)
    view = SimpleNamespace(
        image=image,
        mask=soft,
        camera=cam,
        pose=np.asarray(pose),
        trans=np.asarray(trans),
        background=plate,
        joints2d=None,
    )
    return SimpleNamespace(views=[view], shape=shape, body_kind="anny")


def synthetic(work: Path, poses: int, seed: int) -> dict:
    """Every ordered pair of the random poses: {"before": medians without the avatar, "after": with}."""
    from vmclip.geometry import Camera
    from vmclip.person.body import load_body_model
    from vmclip.render.pipeline import build_scene
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
    body = load_body_model("anny", device="cpu")
    cam = Camera(np.array(meta["K"]), np.array(meta["R"]), np.array(meta["t"]))
    plate = _read(work / "plate.png")
    ras = get_rasterizer()
    images = [_read(work / p["image"]) for p in meta["poses"]]
    verts = [
        body.pose_vertices(meta["shape"], np.array(p["pose"])[None], np.array(p["trans"])[None])[0]
        for p in meta["poses"]
    ]
    masks = [ras.render(v, body.faces, cam.K, cam.R, cam.t, SIZE, SIZE).mask for v in verts]
    # One scene per source photo (its avatar made once).
    scenes = [
        build_scene(
            _person(images[i], masks[i], cam, p["pose"], p["trans"], plate, meta["shape"]), SIZE, body
        )
        for i, p in enumerate(meta["poses"])
    ]
    out: dict = {}
    for avatar in (False, True):
        rows = []
        for a in range(poses):
            for b in range(poses):
                if a == b:
                    continue
                vb = verts[b]
                res = _warp_and_composite(scenes[a], vb, avatar, float(vb[:, 1].min()))
                box = box_of([masks[a], masks[b]])
                rows.append(
                    {
                        "ssim_box": ssim(res[box], images[b][box]),
                        "psnr_box": psnr(res[box], images[b][box]),
                        "ssim_full": ssim(res, images[b]),
                        "psnr_full": psnr(res, images[b]),
                        "base_ssim_box": ssim(images[a][box], images[b][box]),
                        "base_psnr_box": psnr(images[a][box], images[b][box]),
                    }
                )
        summary = {k: float(np.median([r[k] for r in rows])) for k in rows[0]}
        summary.update({f"mean_{k}": float(np.mean([r[k] for r in rows])) for k in ("ssim_box", "psnr_box")})
        summary["pairs"] = len(rows)
        out["after" if avatar else "before"] = summary
    return out


# The turned person: a shirt with a red tie and a yellow chest print on its front only (sRGB).
TIE_SRGB = (0.72, 0.06, 0.08)
PRINT_SRGB = (0.96, 0.80, 0.12)
TURNS = (
    ("front, arms raised", 0.0, True),
    ("turned 90 degrees", np.pi / 2, False),
    ("turned 180 degrees", np.pi, False),
)


def front_features(body, shape: dict) -> tuple[np.ndarray, np.ndarray]:
    """Vertices of the tie and of the chest print (rest pose: front = +z), (V,) bool each."""
    from vmclip.geometry import vertex_normals
    from vmclip.motion import JOINT_INDEX

    rest = np.asarray(body.rest_vertices(shape), dtype=np.float64)
    joints = np.asarray(body.rest_joints(shape), dtype=np.float64)
    front = vertex_normals(rest, np.asarray(body.faces))[:, 2] > 0.35
    pelvis, neck, chest = (joints[JOINT_INDEX[n], 1] for n in ("pelvis", "neck", "spine3"))
    tie = front & (np.abs(rest[:, 0]) < 0.035) & (rest[:, 1] > pelvis + 0.13) & (rest[:, 1] < neck - 0.07)
    prt = front & (rest[:, 0] > 0.055) & (rest[:, 0] < 0.14) & (np.abs(rest[:, 1] - chest + 0.02) < 0.05)
    return tie, prt


def _turn_pose(angle: float, raised: bool) -> np.ndarray:
    from vmclip.motion import rotations as R

    aa = np.zeros((24, 3))
    aa[0, 1] = angle
    aa[16, 2], aa[17, 2] = (-0.5, 0.5) if raised else (-1.15, 1.15)  # arms raised / hanging
    return R.axis_angle_to_matrix(aa)


def _render_turns(work: Path) -> None:
    """Child process: the front-featured person from the front (the source photo, arms hanging), from
    the front with arms raised, and turned 90 and 180 degrees (skipped when already there)."""
    from vmclip.person.body import load_body_model
    from vmclip.render.example import (
        example_shape,
        look_at_camera,
        outfit_colors,
        render_person,
        srgb_to_linear,
    )

    body = load_body_model("anny", device="cpu")
    shape = example_shape()
    colors = outfit_colors(body, shape)
    tie, prt = front_features(body, shape)
    colors[tie] = srgb_to_linear(TIE_SRGB)
    colors[prt] = srgb_to_linear(PRINT_SRGB)
    camera = look_at_camera((0.3, 1.05, 3.6), (0.0, 0.86, 0.0), SIZE, SIZE)
    views = [("turn_source.png", 0.0, False)] + [(f"turn{i}.png", a, r) for i, (_, a, r) in enumerate(TURNS)]
    meta = {
        "shape": shape,
        "K": camera.K.tolist(),
        "R": camera.R.tolist(),
        "t": camera.t.tolist(),
        "views": [],
    }
    for name, angle, raised in views:
        rot = _turn_pose(angle, raised)
        trans = np.zeros(3)
        verts = body.pose_vertices(shape, rot[None], trans[None])[0]
        trans[1] -= float(verts[:, 1].min())
        verts[:, 1] -= float(verts[:, 1].min())
        if not (work / name).exists():
            render_person(work / name, verts, body.faces, colors, camera, SIZE, SIZE)
        meta["views"].append({"image": name, "pose": rot.tolist(), "trans": trans.tolist()})
        print(f"rendered {name}", flush=True)
    (work / "turns.json").write_text(json.dumps(meta))


def turns(work: Path) -> list[dict]:
    """Re-posing the front photo to the turned views, before (no avatar) and after: SSIM and PSNR in
    the person's box, and the share of the front's tie and print pixels that show in the output where
    the truth shows none (on the back)."""
    from vmclip.geometry import Camera
    from vmclip.person.body import load_body_model
    from vmclip.render.pipeline import build_scene
    from vmclip.render.raster import get_rasterizer

    subprocess.run([sys.executable, __file__, "--render-turns", "--work", str(work)], check=True)
    meta = json.loads((work / "turns.json").read_text())
    body = load_body_model("anny", device="cpu")
    cam = Camera(np.array(meta["K"]), np.array(meta["R"]), np.array(meta["t"]))
    plate = _read(work / "plate.png")
    ras = get_rasterizer()
    tie, prt = front_features(body, meta["shape"])
    label = np.stack([tie, prt], 1).astype(np.float64)
    views = meta["views"]
    verts = [
        body.pose_vertices(meta["shape"], np.array(v["pose"])[None], np.array(v["trans"])[None])[0]
        for v in views
    ]
    rasters = [ras.render(v, body.faces, cam.K, cam.R, cam.t, SIZE, SIZE) for v in verts]
    images = [_read(work / v["image"]) for v in views]
    src = views[0]
    scene = build_scene(
        _person(images[0], rasters[0].mask, cam, src["pose"], src["trans"], plate, meta["shape"]), SIZE, body
    )
    # Each feature's colour as the source photo shows it (inside its outline, away from its edge).
    features = _feature_maps(rasters[0], label)
    colours = [
        np.median(images[0][cv2.erode(f.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)], axis=0)
        for f in features
    ]
    feature_src = features[0] | features[1]
    n_src = int(feature_src.sum())
    rows = []
    for k, (name, _, _) in enumerate(TURNS, start=1):
        box = box_of([rasters[k].mask])
        truth_feature = np.logical_or.reduce(_feature_maps(rasters[k], label))
        row = {"view": name}
        for avatar in (False, True):
            res = _warp_and_composite(scene, verts[k], avatar, float(verts[k][:, 1].min()))
            shown = (_near_colour(res, colours[0], 45) | _near_colour(res, colours[1], 45)) & rasters[k].mask
            tag = "after" if avatar else "before"
            row[tag] = {
                "ssim_box": ssim(res[box], images[k][box]),
                "psnr_box": psnr(res[box], images[k][box]),
                "front_on_back": float(
                    (
                        shown
                        & ~cv2.dilate(truth_feature.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
                    ).sum()
                    / max(n_src, 1)
                ),
            }
            cv2.imwrite(
                str(work / f"turn_compare{k}_{tag}.png"),
                cv2.cvtColor(np.concatenate([images[0], res, images[k]], 1), cv2.COLOR_RGB2BGR),
            )
        rows.append(row)
    return rows


def _feature_maps(raster, label: np.ndarray) -> list[np.ndarray]:
    """Per column of `label` (V, k), where the rendered body shows that feature."""
    vals = raster.interpolate(label)
    out = []
    for k in range(label.shape[1]):
        m = np.zeros(raster.mask.shape, dtype=bool)
        m[raster.mask] = vals[:, k] > 0.5
        out.append(m)
    return out


def _near_colour(img: np.ndarray, colour, tol: float) -> np.ndarray:
    c = np.asarray(colour, dtype=np.float64)
    c = c * 255.0 if c.max() <= 1.0 else c
    return np.linalg.norm(img.astype(np.float64) - c, axis=-1) < tol


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
    from vmclip.render.pipeline import build_scene

    both = analyze([a, b], texture=False)
    va, vb = both.views
    person_a = analyze([a], texture=False)
    person_a.shape = both.shape  # one shape for the person
    person_a.views[0].pose, person_a.views[0].trans = va.pose, va.trans
    scene = build_scene(person_a, size=SIZE)  # (its avatar made here, for that shape and pose)
    body = scene.body
    # B's fitted body expressed in A's camera: same world frame when the cameras agree; else map
    # B's pose through B's camera into A's camera frame.
    verts_b = body.pose_vertices(both.shape, np.asarray(vb.pose)[None], np.asarray(vb.trans)[None])[0]
    ra, ta = np.asarray(va.camera.R), np.asarray(va.camera.t)
    rb, tb = np.asarray(vb.camera.R), np.asarray(vb.camera.t)
    cam_b = verts_b @ rb.T + tb
    verts_b = (cam_b - ta) @ ra
    truth = cv2.resize(
        np.asarray(vb.image)[..., :3], (scene.width, scene.height), interpolation=cv2.INTER_AREA
    )
    mask_b = cv2.resize(np.asarray(vb.mask, np.float32), (scene.width, scene.height)) > 0.5
    box = box_of([mask_b])
    src = scene.sources[0].image
    result = {"base_ssim_box": ssim(src[box], truth[box]), "base_psnr_box": psnr(src[box], truth[box])}
    for avatar in (False, True):
        out = _warp_and_composite(scene, verts_b, avatar)
        tag = "after" if avatar else "before"
        cv2.imwrite(
            str(work / f"iper_compare_{tag}.png"),  # a derivative of the photos: kept out of the repo
            cv2.cvtColor(np.concatenate([src, out, truth], 1), cv2.COLOR_RGB2BGR),
        )
        result[tag] = {"ssim_box": ssim(out[box], truth[box]), "psnr_box": psnr(out[box], truth[box])}
    return result


def _print_turns(work: Path) -> None:
    print("turned views, re-posed from one front photo (a tie and a chest print on the front only):")
    for row in turns(work):
        b, a = row["before"], row["after"]
        print(
            f"  {row['view']}: SSIM {b['ssim_box']:.3f} -> {a['ssim_box']:.3f}, PSNR {b['psnr_box']:.2f} -> "
            f"{a['psnr_box']:.2f} dB, front-only features on the back {100 * b['front_on_back']:.1f}% -> "
            f"{100 * a['front_on_back']:.1f}%"
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--poses", type=int, default=6, help="distinct poses; all ordered pairs are scored")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=None, help="render folder (default: cache)")
    parser.add_argument("--photos", type=Path, default=REPO.parent / "shared" / "data" / "photos")
    parser.add_argument("--render-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--render-turns", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--turns-only", action="store_true", help="only the turned views")
    args = parser.parse_args()
    if args.work is None:
        from vmclip.assets import cache_dir

        args.work = cache_dir() / "bench_render_quality"
    if args.render_only:
        args.work.mkdir(parents=True, exist_ok=True)
        _render_poses(args.work, args.poses, args.seed)
        return 0
    if args.render_turns:
        args.work.mkdir(parents=True, exist_ok=True)
        _render_turns(args.work)
        return 0
    if args.turns_only:
        _print_turns(args.work)
        return 0
    both = synthetic(args.work, args.poses, args.seed)
    for tag, s in (("before (no avatar)", both["before"]), ("after (avatar)", both["after"])):
        print(f"synthetic (Blender ground truth), {s['pairs']} pose pairs, 512x512, medians, {tag}:")
        print(
            f"  person box: SSIM {s['ssim_box']:.3f}  PSNR {s['psnr_box']:.2f} dB   "
            f"(means: {s['mean_ssim_box']:.3f}, {s['mean_psnr_box']:.2f} dB)"
        )
        print(f"  full frame: SSIM {s['ssim_full']:.3f}  PSNR {s['psnr_full']:.2f} dB")
    s = both["after"]
    print(
        f"  baseline, no re-posing (photo A vs B), person box: SSIM {s['base_ssim_box']:.3f}  "
        f"PSNR {s['base_psnr_box']:.2f} dB"
    )
    _print_turns(args.work)
    r = real_pair(args.photos, args.work)
    if r is not None:
        b, a = r["before"], r["after"]
        print(
            f"real pair iper_p009 (A re-posed to B's fitted pose), person box: SSIM {b['ssim_box']:.3f} -> "
            f"{a['ssim_box']:.3f}  PSNR {b['psnr_box']:.2f} -> {a['psnr_box']:.2f} dB (before -> after); "
            f"no re-posing: SSIM {r['base_ssim_box']:.3f}  PSNR {r['base_psnr_box']:.2f} dB"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
