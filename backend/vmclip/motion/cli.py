"""Motion-stage commands: `vmclip motion convert` (registered as `motion-convert`) and `vmclip data build`.

Registration imports nothing heavy; the handlers import what they need."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vmclip.errors import InputError

_INPUTS = (".bvh", ".amc", ".npz")
_OUTPUTS = (".npz", ".bvh")


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_convert(subparsers)
    _register_data(subparsers)


def _register_convert(subparsers: argparse._SubParsersAction) -> None:
    conv = subparsers.add_parser(
        "motion-convert",
        help="convert a mocap file (BVH, ASF/AMC or .npz) to our SMPL-24 .npz or .bvh, with a preview video "
        "(also spelled `vmclip motion convert`)",
        description="Read a BVH, CMU ASF/AMC or AMASS-style .npz motion, retarget it onto the SMPL-24 "
        "skeleton (30 fps unless --fps), and write it as .npz (AMASS-style: poses, trans, "
        "mocap_framerate, text) or .bvh (SMPL-24 joint names, Y up, metres unless --units cm), "
        "optionally with a stick-figure preview MP4. Outputs are written atomically: on any "
        "error nothing is left behind.",
        epilog="examples:\n  vmclip motion convert walk.bvh -o walk.npz --preview walk.mp4\n"
        "  vmclip motion convert 01_01.amc --asf 01.asf -o 01_01.bvh\n"
        "  vmclip motion convert walk.npz -o walk.bvh",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    conv.add_argument("input", type=Path, help="input motion: .bvh, .amc (with --asf) or .npz")
    conv.add_argument("-o", "--output", type=Path, help="output motion: .npz or .bvh")
    conv.add_argument(
        "--asf",
        type=Path,
        help="the subject's .asf skeleton (AMC input only; default: SUBJECT.asf beside the .amc)",
    )
    conv.add_argument("--preview", type=Path, help="also write a stick-figure preview video (.mp4)")
    conv.add_argument(
        "--fps",
        type=float,
        default=None,
        help="output frame rate (default 30 for mocap input, the file's own for .npz)",
    )
    conv.add_argument(
        "--text",
        action="append",
        default=None,
        help="text describing the motion (stored in the .npz, shown in the preview); repeatable",
    )
    conv.add_argument(
        "--units", choices=("m", "cm"), default="m", help="lengths in a .bvh output (default m)"
    )
    conv.add_argument("--size", type=int, default=512, help="preview frame size in pixels (default 512)")
    conv.set_defaults(func=_convert)


def _register_data(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser(
        "data",
        help="training data: `vmclip data build` turns the mocap manifests into train/val/test",
        description="Training-data commands.",
    )
    data_sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    build = data_sub.add_parser(
        "build",
        help="build the processed training data set",
        description="Read both mocap manifests (the main one and extra/), retarget every clip to SMPL-24 at "
        "30 fps, de-duplicate CMU trials, crop long idle takes, add mirrored copies and write "
        "train/val/test (split by recording, no recording in two splits) as .npz + .json with "
        "meta.json. Prints counts per split, action label and source; unreadable files are "
        "reported in one line and skipped.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    build.add_argument(
        "--src",
        type=Path,
        default=Path("../shared/data/motion"),
        help="the motion data folder (holds manifests/ and extra/)",
    )
    build.add_argument("--out", type=Path, default=Path("data/processed"), help="output folder")
    build.add_argument("--workers", type=int, default=2, help="worker processes (1 = in this process)")
    build.add_argument("--seed", type=int, default=0, help="seed of the train/val/test draw")
    build.add_argument("--val-frac", type=float, default=0.1, help="share of recordings in val")
    build.add_argument("--test-frac", type=float, default=0.1, help="share of recordings in test")
    build.add_argument(
        "--max-idle-seconds",
        type=float,
        default=10.0,
        help="idle takes are cropped to a centred window this long",
    )
    build.add_argument("--min-seconds", type=float, default=0.5, help="shorter clips are skipped")
    build.add_argument(
        "--prefer-cmu",
        choices=("amc", "bvh"),
        default="amc",
        help="which copy to keep of a CMU trial staged both as ASF/AMC and as iClone BVH",
    )
    build.add_argument("--no-mirror", action="store_true", help="do not add mirrored copies")
    build.add_argument(
        "--limit", type=int, default=None, help="at most this many recordings per source (quick builds)"
    )
    build.add_argument(
        "--sources",
        nargs="+",
        default=None,
        help="only these sources (bandai1 bandai2 cmu cmu_expmap deepmimic ase "
        "animated_drawings xia reactidle)",
    )
    build.set_defaults(func=_data_build)
    data.set_defaults(func=lambda args: (data.print_help(), 2)[1])


def _convert(args: argparse.Namespace) -> int:
    from vmclip.fileio import check_writable

    src: Path = args.input
    ext = src.suffix.lower()
    if ext not in _INPUTS:
        raise InputError(
            f"{src}: unsupported input type {src.suffix or '(none)'!r}; expected one of {', '.join(_INPUTS)}"
        )
    if args.output is None and args.preview is None:
        raise InputError("nothing to write: give -o OUT.npz|OUT.bvh and/or --preview OUT.mp4")
    if args.output is not None and args.output.suffix.lower() not in _OUTPUTS:
        raise InputError(f"{args.output}: output must end in .npz or .bvh")
    if args.preview is not None and args.preview.suffix.lower() != ".mp4":
        raise InputError(f"{args.preview}: preview must end in .mp4")
    if args.asf is not None and ext != ".amc":
        raise InputError(f"{args.asf}: --asf only applies to an .amc input")
    if args.fps is not None and not (1 <= args.fps <= 1000):
        raise InputError(f"--fps {args.fps} is not in 1..1000")
    if not (64 <= args.size <= 4096):
        raise InputError(f"--size {args.size} is not in 64..4096")
    if not src.is_file():
        raise InputError(f"{src}: no such file")
    # Fail before the (possibly slow) conversion when an output cannot be written.
    for out in (args.output, args.preview):
        if out is not None:
            check_writable(out)

    motion = _read_motion(src, args.asf)
    if args.fps is not None:
        motion = motion.resample(args.fps)
    if args.text:
        motion.texts = [t for t in args.text if t.strip()]
    written = []
    if args.output is not None:
        if args.output.suffix.lower() == ".npz":
            motion.save_npz(args.output)
        else:
            from vmclip.motion.bvh_write import write_bvh

            write_bvh(motion, args.output, units=args.units)
        written.append(str(args.output))
    if args.preview is not None:
        from vmclip.motion.preview import write_preview

        write_preview(motion, args.preview, text=motion.text or src.stem, size=args.size)
        written.append(str(args.preview))
    print(
        f"{src}: {motion.num_frames} frames at {motion.fps:g} fps ({motion.seconds:.2f} s) -> "
        f"{', '.join(written)}"
    )
    return 0


def _read_motion(src: Path, asf: Path | None):
    ext = src.suffix.lower()
    if ext == ".npz":
        from vmclip.motion.format import load_npz

        return load_npz(src)
    from vmclip.motion.mocap import load_mocap

    if ext == ".bvh":
        from vmclip.motion.bvh_write import read_smpl_bvh, smpl_bvh_joint_names

        try:
            head = src.read_bytes()[:65536].decode("latin-1")
        except OSError as exc:
            raise InputError(f"{src}: cannot read ({exc.strerror or exc})") from None
        if smpl_bvh_joint_names(head) is not None:  # already our skeleton: read exactly, no retarget
            motion = read_smpl_bvh(src)
            return motion.resample(30.0) if abs(motion.fps - 30.0) > 1e-6 else motion
    if ext == ".amc":
        if asf is None:
            asf = src.parent / f"{src.stem.split('_')[0]}.asf"
            if not asf.is_file():
                raise InputError(f"{src}: AMC needs its skeleton; no {asf.name} beside it, pass --asf X.asf")
        elif not asf.is_file():
            raise InputError(f"{asf}: no such file")
        return load_mocap(src, asf=asf)
    return load_mocap(src)


def _data_build(args: argparse.Namespace) -> int:
    from vmclip.motion.dataset import BuildOptions, build_dataset, format_counts

    if args.workers < 1:
        raise InputError("--workers must be at least 1")
    if args.limit is not None and args.limit < 1:
        raise InputError("--limit must be at least 1")
    options = BuildOptions(
        val_frac=args.val_frac,
        test_frac=args.test_frac,
        seed=args.seed,
        mirror=not args.no_mirror,
        max_idle_seconds=args.max_idle_seconds,
        min_seconds=args.min_seconds,
        prefer_cmu=args.prefer_cmu,
        limit=args.limit,
        sources=args.sources,
        workers=args.workers,
    )
    meta = build_dataset(args.src, args.out, options)
    print(format_counts(meta))
    print(f"wrote {args.out} in {meta['seconds']['total']:.0f} s", file=sys.stderr)
    return 0
