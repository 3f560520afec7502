"""Make the README's pictures from the project's own example person (never from the test photos).

    .venv/bin/python docs/make_pictures.py            # both pictures
    .venv/bin/python docs/make_pictures.py --only animation
    .venv/bin/python docs/make_pictures.py --only panel
    .venv/bin/python docs/make_pictures.py --only avatar

Writes into docs/images/:
- `example.gif`: the example person (rendered by set-up, `vmclip.render.example`) doing PROMPT,
  made with the same `vmclip animate` command a user runs, then thinned to GIF_FPS and GIF_SIDE px;
- `example_strip.png`: six frames of the same video side by side (for pages that show no GIFs);
- `blender_panel.png`: Debian's Blender 3.4 in a real window (Xvfb) with the add-on's sidebar panel
  after Generate Motion against a real `vmclip serve`, the example person's textured body on the rig
  (needs `blender`, `Xvfb`, ImageMagick's `import` and `xdotool`; the same driver as
  tests/test_addon_gui.py).
- `avatar.png`: the example person's avatar on the add-on's body (the fitted body as `analyze` sends
  it, built by the add-on in headless Blender, the `bpy` module) seen from the front and from behind
  in Blender's Workbench (the viewport's Solid shading with texture colours), and its atlas.
Run it again after a change to the renderer or the panel; commit the images.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"
PROMPT = "a person does jumping jacks"  # a motion that reads at a glance, in a small picture
SECONDS = 4.0
SEED = 0
RENDER_SIDE = 256  # the README shows it small; a 4-s GIF at this size stays a few hundred KB
GIF_FPS = 12  # smooth enough to read the motion, 40 % of the frames of 30 fps
GIF_COLOURS = 160  # enough for a room, skin and two garments without visible banding
STRIP_FRAMES = 6
PANEL_WIDTH = 900  # the 3D viewport with its sidebar, scaled to this width: the panel's text stays legible
DEFAULT_PORT = 5555  # `vmclip serve`'s and the add-on's default
GUI_SCRIPT = ROOT / "tests" / "gui" / "gui_generate.py"
GUI_TOOLS = ("blender", "Xvfb", "import", "xdotool")


def _vmclip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "vmclip", *args], check=True, cwd=ROOT)


def example_photo() -> Path:
    from vmclip.render.example import prepare_example

    return Path(prepare_example())


def make_animation(out_dir: Path) -> list[Path]:
    """The example person doing PROMPT: `vmclip animate` writes every frame, we keep GIF_FPS of them."""
    with tempfile.TemporaryDirectory() as tmp:
        frames_dir = Path(tmp) / "frames"
        _vmclip(
            "animate",
            str(example_photo()),
            "--prompt",
            PROMPT,
            "--seconds",
            str(SECONDS),
            "--seed",
            str(SEED),
            "--size",
            str(RENDER_SIDE),
            "-o",
            str(Path(tmp) / "example.mp4"),
            "--frames",
            str(frames_dir),
        )
        paths = sorted(frames_dir.glob("frame_*.png"))
        frames = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    picks = np.round(np.arange(0, len(frames), 30.0 / GIF_FPS)).astype(int)
    gif_frames = [Image.fromarray(frames[i]) for i in picks if i < len(frames)]
    # One palette for the whole clip, from a mosaic of its frames: the background stays still instead of
    # dithering differently per frame, and raised arms find their colours too.
    mosaic = Image.fromarray(
        np.concatenate([np.asarray(f) for f in gif_frames[:: max(1, len(gif_frames) // 8)]], 1)
    )
    palette = mosaic.quantize(colors=GIF_COLOURS, method=Image.Quantize.MEDIANCUT)
    quantized = [f.quantize(palette=palette, dither=Image.Dither.NONE) for f in gif_frames]
    gif = out_dir / "example.gif"
    quantized[0].save(
        gif, save_all=True, append_images=quantized[1:], duration=round(1000 / GIF_FPS), loop=0, optimize=True
    )
    strip_picks = np.linspace(0, len(frames) - 1, STRIP_FRAMES + 2).round().astype(int)[1:-1]
    strip = Image.fromarray(np.concatenate([frames[i] for i in strip_picks], axis=1))
    strip_path = out_dir / "example_strip.png"
    strip.save(strip_path, optimize=True)
    return [gif, strip_path]


def _port() -> int:
    """The default port when it is free (the panel then shows the address a user sees), else any."""
    for port in (DEFAULT_PORT, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError("no free loopback port")


def _wait_for(path: Path, seconds: float, proc: subprocess.Popen | None = None) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if path.exists():
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(0.1)
    return False


def _wait_ready(address: str, proc: subprocess.Popen, seconds: float = 120) -> None:
    from vmclip_protocol import Client, ServerUnavailable

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError("vmclip serve exited before it answered")
        try:
            with Client(address, timeout_s=1.0, retries=0) as c:
                c.hello()
                return
        except ServerUnavailable:
            time.sleep(0.3)
    raise RuntimeError(f"no server at {address} after {seconds} s")


def _start_xvfb() -> tuple[subprocess.Popen, str]:
    read, write = os.pipe()
    proc = subprocess.Popen(
        [
            "Xvfb",
            "-displayfd",
            str(write),
            "-screen",
            "0",
            "1600x900x24",
            "+extension",
            "GLX",
            "-nolisten",
            "tcp",
        ],
        pass_fds=(write,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    with os.fdopen(read) as fh:
        return proc, f":{fh.readline().strip()}"


def _x(display: str, *cmd: str) -> str:
    env = dict(os.environ, DISPLAY=display)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=20).stdout


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _select_panel_tab(display: str, work: Path) -> None:
    """Scroll the mouse wheel over the sidebar's tab strip until the add-on's panel draws."""
    tabs = json.loads((work / "tabs.json").read_text())
    win = _x(display, "xdotool", "search", "--onlyvisible", "--name", "Blender").split()
    if not win:
        raise RuntimeError("no Blender window on the X display")
    geom = _x(display, "xdotool", "getwindowgeometry", "--shell", win[0])
    g = dict(line.split("=", 1) for line in geom.split())
    x0, y0 = int(g["X"]), int(g["Y"])
    x = x0 + tabs["ui_x"] + tabs["ui_width"] - 10
    y = y0 + tabs["window_height"] - (tabs["ui_y"] + tabs["ui_height"] - 60)
    for button in ["5"] * 8 + ["4"] * 16:
        if (work / "panel_drawn").exists():
            break
        _x(display, "xdotool", "mousemove", str(x), str(y), "click", button)
        _wait_for(work / "panel_drawn", 0.7)
    if not (work / "panel_drawn").exists():
        raise RuntimeError("the VideoMotionCLIP tab never showed")
    _x(display, "xdotool", "mousemove", str(x0 + 400), str(y0 + 300))  # off the buttons: no tooltip


def _viewport_crop(img: Image.Image, tabs: dict) -> Image.Image:
    """The window from its top (menus) to the bottom of the 3D viewport, from its left edge to the
    sidebar's tab strip: the outliner, properties and timeline only make the panel smaller."""
    right = tabs["ui_x"] + tabs["ui_width"]  # region coordinates from the window's bottom left
    bottom = tabs["window_height"] - tabs["ui_y"]
    return img.crop((0, 0, min(right, img.width), min(bottom, img.height)))


def make_panel(out_dir: Path) -> list[Path]:
    """Blender 3.4 in a real window, Generate Motion pressed with the example person's photo."""
    missing = [t for t in GUI_TOOLS if not shutil.which(t)]
    if missing:
        raise SystemExit(
            f"make_pictures: the panel screenshot needs {', '.join(missing)} (apt-get install "
            "blender xvfb imagemagick xdotool python3-numpy python3-zmq)"
        )
    import build_addon

    photo = example_photo()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        work, scripts = tmp / "work", tmp / "scripts" / "addons"
        work.mkdir()
        scripts.mkdir(parents=True)
        with zipfile.ZipFile(build_addon.build(tmp / "dist", offline=True, log=lambda *_: None)) as zf:
            zf.extractall(scripts)  # what Blender 3.4's "Install add-on from file" does
        env = dict(
            os.environ,
            HOME=str(tmp),
            BLENDER_USER_SCRIPTS=str(tmp / "scripts"),
            BLENDER_USER_CONFIG=str(tmp / "config"),
            BLENDER_USER_DATAFILES=str(tmp / "data"),
        )
        blend = tmp / "empty.blend"
        save = f"import bpy; bpy.ops.wm.save_as_mainfile(filepath={str(blend)!r})"
        subprocess.run(
            ["blender", "-b", "--factory-startup", "--python-expr", save],
            env=env,
            capture_output=True,
            check=True,
        )
        address = f"tcp://127.0.0.1:{_port()}"
        server = subprocess.Popen(
            [sys.executable, "-m", "vmclip", "serve", "--bind", address, "--workers", "1"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        xvfb, display = _start_xvfb()
        blender = None
        try:
            _wait_ready(address, server)
            cmd = ["blender", "--factory-startup", str(blend), "--python", str(GUI_SCRIPT), "--"]
            cmd += ["--address", address, "--work", str(work), "--image", str(photo), "--prompt", PROMPT]
            log = open(tmp / "blender.log", "w")
            blender = subprocess.Popen(
                cmd, env=dict(env, DISPLAY=display), stdout=log, stderr=subprocess.STDOUT
            )
            if not _wait_for(work / "tabs.json", 90, blender):
                raise RuntimeError((tmp / "blender.log").read_text()[-2000:])
            _select_panel_tab(display, work)
            if not _wait_for(work / "shoot", 330, blender):
                raise RuntimeError((tmp / "blender.log").read_text()[-2000:])
            time.sleep(0.5)
            shot = tmp / "screen.png"
            _x(display, "import", "-window", "root", str(shot))
            (work / "done").write_text("1")
            result = json.loads((work / "result.json").read_text())
            if "error" in result or not result.get("fitted_body"):
                raise RuntimeError(f"Generate Motion did not put the person on the rig: {result}")
            img = _viewport_crop(
                Image.open(shot).convert("RGB"), json.loads((work / "tabs.json").read_text())
            )
        finally:
            for proc in (blender, xvfb, server):
                if proc is not None:
                    _stop(proc)
    scale = min(1.0, PANEL_WIDTH / img.width)
    img = img.resize((round(img.width * scale), round(img.height * scale)), Image.LANCZOS)
    path = out_dir / "blender_panel.png"
    img.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    return [path]


AVATAR_SCRIPT = """
import json, os, sys, math
import bpy
import numpy as np
from importlib import import_module
from mathutils import Euler
cfg = json.loads(sys.argv[-1])
assert bpy.ops.extensions.package_install_files(
    filepath=cfg["zip"], repo="user_default", enable_on_install=True) == {"FINISHED"}
mod = cfg["module"]
rig, smpl, body = (import_module(mod + "." + m) for m in ("rig", "smpl", "body"))
proto = import_module(mod + ".vmclip_protocol")
d = np.load(cfg["mesh"])
mesh = proto.BodyMesh(
    d["vertices"], d["faces"], d["joints"], d["skin_joints"], d["skin_weights"], [d["uv"]],
    [d["visible"]], [d["facing"]], 1.0, float(d["floor"]), open(cfg["atlas"], "rb").read(), d["corner_uv"])
ctx = bpy.context
for o in list(ctx.scene.objects):
    bpy.data.objects.remove(o)
arm = rig.ensure_armature(ctx, smpl.Skeleton())
rig.fit_rest_to_person(ctx, arm, mesh.joints, mesh.floor_offset, mesh.trans_scale)
obj = body.build_body(ctx, arm, mesh, [cfg["photo"]])
arm.hide_render = True
scene = ctx.scene
scene.render.engine = "BLENDER_WORKBENCH"
scene.display.shading.light = "STUDIO"
scene.display.shading.color_type = "TEXTURE"
scene.view_settings.view_transform = "Standard"
scene.render.resolution_x, scene.render.resolution_y = cfg["width"], cfg["height"]
scene.render.film_transparent = True
cam = bpy.data.objects.new("cam", bpy.data.cameras.new("cam"))
cam.data.type, cam.data.ortho_scale = "ORTHO", 1.9  # the whole arm span, nothing else
scene.collection.objects.link(cam)
scene.camera = cam
for name, y, yaw in (("front", -4.2, 0.0), ("back", 4.2, math.pi)):
    cam.location = (0.0, y, 0.9)
    cam.rotation_euler = Euler((math.pi / 2, 0.0, yaw), "XYZ")
    scene.render.filepath = os.path.join(cfg["out"], name + ".png")
    bpy.ops.render.render(write_still=True)
"""


def make_avatar(out_dir: Path) -> list[Path]:
    """The example person's avatar on the add-on's body, front and back, and its atlas."""
    import io

    from vmclip.person import analyze
    from vmclip.server.body_payload import body_payload

    import build_addon

    photo = example_photo()
    person = analyze([photo])
    _, frames, _ = body_payload(person)
    f: dict = {}
    for name, data, *_ in frames:
        f.setdefault(name, data)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        np.savez(
            tmp / "mesh.npz",
            vertices=f["body_vertices"],
            faces=f["body_faces"],
            joints=f["body_joints"],
            skin_joints=f["skin_joints"],
            skin_weights=f["skin_weights"],
            uv=f["view_uv"],
            visible=f["view_visible"],
            facing=f["view_facing"].astype(np.float32) / 255,
            floor=float(-np.asarray(f["body_vertices"])[:, 1].min()),
            corner_uv=f["body_corner_uv"],
        )
        (tmp / "atlas.png").write_bytes(f["texture"])
        cfg = {
            "zip": str(build_addon.build(tmp / "dist", offline=True, log=lambda *_: None)),
            "module": "bl_ext.user_default.videomotionclip",
            "mesh": str(tmp / "mesh.npz"),
            "atlas": str(tmp / "atlas.png"),
            "photo": str(photo),
            "out": str(tmp),
            "width": 440,
            "height": 440,
        }
        script = tmp / "avatar.py"
        script.write_text(AVATAR_SCRIPT)
        env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp / "blender-user"))
        subprocess.run([sys.executable, str(script), json.dumps(cfg)], check=True, env=env, cwd=tmp)
        views = [Image.open(tmp / f"{n}.png").convert("RGBA") for n in ("front", "back")]
        atlas = Image.open(io.BytesIO(f["texture"])).convert("RGB").resize((440, 440), Image.LANCZOS)
    sheet = Image.new("RGB", (2 * views[0].width + atlas.width, atlas.height), (255, 255, 255))
    for i, v in enumerate(views):
        sheet.paste(v, (i * v.width, 0), v)
    sheet.paste(atlas, (2 * views[0].width, 0))
    path = out_dir / "avatar.png"
    sheet.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    return [path]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("animation", "panel", "avatar"), help="make one of the pictures")
    parser.add_argument("--out", type=Path, default=IMAGES, help="output folder (default docs/images)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    made = []
    if args.only in (None, "animation"):
        made += make_animation(args.out)
    if args.only in (None, "panel"):
        made += make_panel(args.out)
    if args.only in (None, "avatar"):
        made += make_avatar(args.out)
    for path in made:
        shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        print(f"{shown}: {path.stat().st_size / 1e3:.0f} KB")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))  # build_addon.py at the repository root
    sys.exit(main())
