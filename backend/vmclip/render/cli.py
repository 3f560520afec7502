"""`vmclip animate`: photo(s) + prompt (or motion file) -> MP4 of the person performing it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vmclip.errors import InputError
from vmclip.limits import CAMERA_MODES, MAX_IMAGES, MAX_MOTION_FRAMES


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "animate",
        help="animate the person in one or more photos from a text prompt or a motion file",
        description="Animate the person in the photo(s): the prompt becomes SMPL-24 motion (or --motion "
        "gives one), the photos are analysed (pose, mask, fitted body, background plate), and the person "
        "is re-posed frame by frame over the in-painted background (transformation flow) into an H.264 MP4. "
        "Several photos of the same person (any sizes and framings, up to 8) fill in what one photo "
        "hides; the video has the first photo's size, camera and background.",
        epilog="Example: vmclip animate me.jpg --prompt 'a person waves with the right hand' -o wave.mp4",
    )
    p.add_argument(
        "images", nargs="+", metavar="IMG", help=f"photo(s) of one person (JPEG/PNG, 1..{MAX_IMAGES})"
    )
    p.add_argument("--prompt", help="what the person does, in plain English")
    p.add_argument(
        "--motion",
        metavar="NPZ",
        help="use this motion (AMASS-style .npz) instead of a prompt; "
        f"at most {MAX_MOTION_FRAMES} frames (the server's limit too)",
    )
    p.add_argument("-o", "--output", required=True, metavar="MP4", help="output video (.mp4)")
    p.add_argument("--seconds", type=float, default=4.0, help="length of the generated motion (default 4)")
    p.add_argument("--size", type=int, default=512, help="longer side of the video in pixels (default 512)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the motion generator (default 0)")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--gif", metavar="GIF", help="also write an animated GIF here")
    p.add_argument("--frames", metavar="DIR", help="also write every frame as PNG into this folder")
    p.add_argument("--person", metavar="JSON", help="reuse a saved analysis (vmclip analyze -o)")
    p.add_argument(
        "--camera",
        choices=CAMERA_MODES,
        default="follow",
        help="follow: pan, zoom out and step back where the person would leave the frame, keeping the "
        "motion's whole travel (default); fixed: the first photo's camera throughout",
    )
    p.add_argument(
        "--exact-travel",
        action="store_true",
        help="with --camera fixed: refuse a motion that walks out of the frame instead of scaling "
        "its travel down",
    )
    p.add_argument(
        "--lwg",
        metavar="CKPT",
        help="refine with a Liquid Warping GAN generator checkpoint "
        "(iPERCore format); the classical warping is used without it",
    )
    p.set_defaults(func=run)


def _check_images(paths: list[str]) -> None:
    from PIL import Image, UnidentifiedImageError

    if len(paths) > MAX_IMAGES:
        raise InputError(f"{len(paths)} photos: at most {MAX_IMAGES} photos of one person")
    for path in paths:
        if not Path(path).is_file():
            raise InputError(f"{path}: no such file")
        try:
            with Image.open(path) as im:
                im.size  # noqa: B018 - the header is read: a file that is no image fails here
        except (UnidentifiedImageError, OSError) as exc:
            raise InputError(f"{path}: not a readable image ({exc})") from None


class _Bar:
    """A tqdm bar on a terminal driven by (fraction, message) callbacks; silent otherwise."""

    def __init__(self, desc: str) -> None:
        self.bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(
                total=100,
                desc=desc,
                leave=False,
                dynamic_ncols=True,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}",
            )

    def __call__(self, fraction: float, message: str = "") -> None:
        if self.bar is not None:
            self.bar.n = round(100 * fraction)
            self.bar.set_postfix_str(message, refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run(args: argparse.Namespace) -> int:
    import warnings

    from vmclip.fileio import check_writable

    if not args.prompt and not args.motion:
        raise InputError("give --prompt TEXT or --motion FILE.npz")
    out = Path(args.output)
    if out.suffix.lower() != ".mp4":
        raise InputError(f"{out}: video output must end in .mp4")
    check_writable(out)
    if args.gif:
        if Path(args.gif).suffix.lower() != ".gif":
            raise InputError(f"{args.gif}: GIF output must end in .gif")
        check_writable(args.gif)
    if not (0.5 <= args.seconds <= 60):
        raise InputError(f"--seconds {args.seconds}: expected 0.5..60")
    if not (64 <= args.size <= 4096):
        raise InputError(f"--size {args.size}: expected 64..4096 pixels")
    _check_images(args.images)

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"vmclip: warning: {message}", file=sys.stderr)

    warnings.showwarning = show

    from vmclip.motion import load_npz
    from vmclip.pipeline import Pipeline

    pipeline = Pipeline(args.device)
    motion = load_npz(args.motion, max_frames=MAX_MOTION_FRAMES) if args.motion else None
    person = None
    if args.person:
        from vmclip.person import PersonAnalysis

        try:
            person = PersonAnalysis.load_json(args.person)
        except (
            KeyError,
            TypeError,
            ValueError,
            IndexError,
            AttributeError,
        ) as exc:  # a field missing or wrong
            raise InputError(
                f"{args.person}: not a valid person analysis ({type(exc).__name__}: {exc})"
            ) from None
    bar = _Bar("animate")
    try:
        pipeline.run(
            prompt=None if motion is not None else args.prompt,
            motion=motion,
            images=[] if person is not None else args.images,
            person=person,
            out=out,
            seconds=args.seconds,
            seed=args.seed,
            size=args.size,
            progress=bar,
            lwg_checkpoint=args.lwg,
            gif=args.gif,
            frames_dir=args.frames,
            fit_travel=not args.exact_travel,
            camera=args.camera,
        )
    finally:
        bar.close()
    print(out)
    return 0
