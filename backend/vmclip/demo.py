"""`vmclip demo`: the README's main job, end to end on the embedded defaults.

It starts the backend (`vmclip serve`) on a free loopback port, then drives headless Blender (the `bpy`
module) through the add-on exactly as an artist would: prompt -> Generate Motion -> Bake Video ->
Export FBX, on the project's own example person (rendered at set-up). Outputs in `--out`:
demo.blend, demo.fbx, demo.mp4, plus the motion itself (demo_motion.npz, .bvh) and its stick-figure
preview. `--direct` skips Blender and the server and runs the same pipeline in this process.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from vmclip.limits import CAMERA_MODES

DEFAULT_PROMPT = "a person waves with the right hand, then walks forward"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="the main job: prompt + example person -> demo.blend, demo.fbx, demo.mp4",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (default ./demo_out)")
    p.add_argument(
        "--prompt", default=DEFAULT_PROMPT, help=f"what the person does (default: {DEFAULT_PROMPT!r})"
    )
    p.add_argument(
        "--image",
        action="append",
        type=Path,
        default=None,
        help="a photo of the person (repeat for several); default: the project's example person",
    )
    p.add_argument("--seconds", type=float, default=4.0, help="motion length, 1..10 s (default 4)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the motion (default 0)")
    p.add_argument("--size", type=int, default=512, help="longer side of the video in pixels (default 512)")
    p.add_argument(
        "--camera",
        choices=CAMERA_MODES,
        default="follow",
        help="follow: pan, zoom out and step back where the person would leave the frame (default); "
        "fixed: the photo's camera throughout",
    )
    p.add_argument(
        "--rig",
        default=None,
        metavar="PATH|rigify",
        help="animate this humanoid rig instead of the SMPL-24 one: a .blend, .fbx, .glb/.gltf or .bvh "
        "holding an armature (a member of a zip may be named as if the zip were its folder), or "
        "'rigify' for the rig Rigify generates from its human metarig",
    )
    p.add_argument(
        "--direct",
        action="store_true",
        help="run the pipeline in this process, without the server and Blender",
    )
    p.set_defaults(func=run)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _say(msg: str) -> None:
    print(f"demo: {msg}", file=sys.stderr, flush=True)


def _write_motion_files(motion, out: Path) -> None:
    from vmclip.motion import write_bvh, write_preview

    motion.save_npz(out / "demo_motion.npz")
    write_bvh(motion, out / "demo_motion.bvh")
    write_preview(motion, out / "demo_motion_preview.mp4", text=motion.text)


def run(args: argparse.Namespace) -> int:
    from vmclip.demo_blender import check_rig, resolve_rig
    from vmclip.errors import InputError, VmclipError
    from vmclip.fileio import check_writable
    from vmclip.t2m.generate import validate_prompt, validate_seconds, validate_seed

    prompt = validate_prompt(args.prompt)
    seconds = validate_seconds(args.seconds)
    seed = validate_seed(args.seed)
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    check_writable(out / "demo.mp4")
    rig = resolve_rig(args.rig, out) if getattr(args, "rig", None) else None
    if rig is not None and args.direct:
        raise InputError("--rig needs Blender: it cannot be combined with --direct")
    if rig is not None and rig != "rigify":  # (Rigify's own rig is a person's)
        # a rig that is not a humanoid is refused before the backend starts or any motion is made
        check_rig(rig, out, log=lambda *a: _say(" ".join(str(x) for x in a)))

    if args.image:
        images = [Path(p) for p in args.image]
        for img in images:
            if not img.is_file():
                raise InputError(f"{img}: no such image")
    else:
        from vmclip.render import example_paths, prepare_example

        prepare_example()
        images = [example_paths()["photo"]]
    _say(f"person: {', '.join(str(p) for p in images)}")
    _say(f"prompt: {prompt!r}, {seconds:g} s, seed {seed}")

    t0 = time.perf_counter()
    if args.direct:
        from vmclip.pipeline import Pipeline

        result = Pipeline().run(
            prompt=prompt,
            seconds=seconds,
            seed=seed,
            images=images,
            out=out / "demo.mp4",
            size=args.size,
            camera=args.camera,
        )
        _write_motion_files(result.motion, out)
        _say(f"wrote {out / 'demo.mp4'} and the motion files in {time.perf_counter() - t0:.1f} s")
        return 0

    from vmclip_protocol import Client

    from vmclip.demo_blender import run_blender_demo

    address = f"tcp://127.0.0.1:{_free_port()}"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    log_path = out / "server.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "vmclip", "serve", "--bind", address],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        _say(f"backend starting on {address} (log: {log_path})")
        deadline = time.monotonic() + 180
        with Client(address, timeout_s=5.0, retries=0) as client:
            while True:
                if server.poll() is not None:
                    raise VmclipError(f"the backend exited with code {server.returncode}; see {log_path}")
                try:
                    hello = client.hello()
                    break
                except Exception:  # noqa: BLE001 - not up yet: keep polling until the deadline
                    if time.monotonic() > deadline:
                        raise VmclipError(
                            f"the backend did not answer within 180 s; see {log_path}"
                        ) from None
                    time.sleep(0.5)
            _say(f"backend ready on {hello.get('device', '?')}")
            payload = client.generate_motion(prompt, seconds=seconds, seed=seed)
        from vmclip.motion import Motion

        poses = payload.poses.reshape(len(payload.poses), -1)
        result = run_blender_demo(
            out,
            address,
            images,
            prompt,
            seconds,
            seed,
            size=args.size,
            camera=args.camera,
            rig=rig,
            log=lambda *a: _say(" ".join(str(x) for x in a)),
        )
        # (after Blender: a rig it cannot map leaves no outputs behind)
        _write_motion_files(Motion.from_axis_angle(poses, payload.trans, payload.fps, [prompt]), out)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    _say(f"done in {time.perf_counter() - t0:.1f} s")
    for name in (
        "demo.blend",
        "demo.fbx",
        "demo.mp4",
        "demo_motion.npz",
        "demo_motion.bvh",
        "demo_motion_preview.mp4",
    ):
        print(out / name)
    del result
    return 0
