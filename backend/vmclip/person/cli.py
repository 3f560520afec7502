"""`vmclip analyze`: photos of one person -> person.json (+ PNGs beside it), optional debug overlays."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vmclip.person.analysis import PersonAnalysis


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "analyze",
        help="fit a body to photos of one person (pose, mask, shape, camera, background)",
        description="Find the person in each photo (MediaPipe pose + mask), fit one body shape shared by all "
        "photos with a pose and camera per photo, and in-paint the background behind them. Writes a JSON "
        "file plus the images, masks and background plates as PNG files beside it. All photos must show "
        "the SAME "
        "person. Photos are read in any common format (grayscale, RGBA and 16-bit included), downscaled to "
        "1024 px at most; photos over 50 megapixels are refused.",
        epilog="example: vmclip analyze front.jpg side.jpg -o person.json --debug debug/",
    )
    p.add_argument("images", nargs="+", metavar="IMG", help="photo(s) of one person")
    p.add_argument("-o", "--output", required=True, metavar="JSON", help="output file, e.g. person.json")
    p.add_argument(
        "--debug",
        dest="debug_dir",
        metavar="DIR",
        help="also write overlays (keypoints, mask, fitted body wireframe and outline) as PNG here",
    )
    p.add_argument(
        "--body",
        choices=["anny", "smpl", "smplx"],
        default="anny",
        help="body model: anny (embedded, default) or smpl/smplx (your own model files in $VMCLIP_SMPL_DIR)",
    )
    p.add_argument(
        "--no-fit",
        action="store_true",
        help="skip the optimisation (pose straight from MediaPipe's 3D landmarks; faster, rougher)",
    )
    p.add_argument("--no-background", action="store_true", help="skip the background in-painting")
    p.add_argument("--seed", type=int, default=0, help="seed of PatchMatch's random search (default 0)")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.set_defaults(func=_run)


def _write_debug(result: PersonAnalysis, debug_dir: Path, device: str | None) -> None:
    """Per photo: the fit's overlay panel (keypoints, mask, wireframe, outlines) and the plate."""
    from PIL import Image

    from vmclip.fileio import atomic_output
    from vmclip.person.body import load_body_model
    from vmclip.person.debug import overlay

    body = load_body_model(result.body_kind, device=device)
    for i, v in enumerate(result.views):
        verts = body.pose_vertices(result.shape, v.pose[None], v.trans[None])[0]
        text = f"view {i}: error {v.fit_error_pct:.2f}% of height, IoU {v.iou:.2f}"
        panel = overlay(
            v.image,
            v.mask,
            v.keypoints,
            v.joints2d,
            verts,
            body.faces,
            v.camera.K,
            v.camera.R,
            v.camera.t,
            text,
        )
        stem = Path(v.source).stem if v.source else f"view{i}"
        with atomic_output(debug_dir / f"{i:02d}_{stem}_fit.png") as tmp:
            Image.fromarray(panel).save(tmp, format="PNG")
        with atomic_output(debug_dir / f"{i:02d}_{stem}_background.png") as tmp:
            Image.fromarray(v.background).save(tmp, format="PNG")


def _run(args: argparse.Namespace) -> int:

    from vmclip.fileio import check_writable
    from vmclip.person.analysis import analyze

    out = check_writable(args.output)
    debug_dir = Path(args.debug_dir) if args.debug_dir else None
    if debug_dir is not None:
        from vmclip.errors import InputError

        if debug_dir.exists() and not debug_dir.is_dir():
            raise InputError(f"{debug_dir}: exists and is not a folder")
        debug_dir.mkdir(parents=True, exist_ok=True)

    bar = None
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=100, desc="analyze", leave=False, bar_format="{l_bar}{bar}| {postfix}")

    def report(fraction: float, message: str) -> None:
        if bar is not None:
            bar.n = int(100 * fraction)
            bar.set_postfix_str(message)
            bar.refresh()

    try:
        result = analyze(
            args.images,
            fit=not args.no_fit,
            progress=report,
            body_kind=args.body,
            background=not args.no_background,
            seed=args.seed,
            device=args.device,
        )
    finally:
        if bar is not None:
            bar.close()
    for message in result.warnings:
        print(f"vmclip: warning: {message}", file=sys.stderr)
    result.save_json(out)

    if debug_dir is not None:
        _write_debug(result, debug_dir, args.device)

    for i, v in enumerate(result.views):
        print(
            f"view {i}: keypoint error {v.fit_error_px:.1f} px ({v.fit_error_pct:.2f}% of height), "
            f"IoU {v.iou:.3f}"
        )
    print(
        f"shape ({result.body_kind}): "
        + ", ".join(f"{k}={val}" for k, val in result.shape.items() if not isinstance(val, list))
    )
    print(f"wrote {out}")
    return 0
