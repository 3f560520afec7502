"""The Blender half of the main job: run Blender headless (the `bpy` module, in a subprocess of its own)
with the built add-on, exactly as an artist would use it, against a running backend.

`run_blender_demo` builds the add-on zip (offline), installs it into a throw-away Blender user folder,
fills in the panel (images, prompt, seconds, seed), presses Generate Motion, Bake Video and Export FBX
through the add-on's operators, and leaves in `out_dir`:

- `demo.blend`: the SMPL-24 armature (rest pose fitted to the person) with the person's fitted body
  skinned to it and textured by projecting the photo (packed into the file), the generated action, and
  the baked video as a strip in the Video Sequencer (path relative to the .blend, so the folder can
  be moved);
- `demo.mp4`: the photographed person moving as the armature does, rendered by the backend;
- `demo.fbx`: armature, skinned body and the action as one take.

With `rig` ('rigify' or a .blend/.fbx/.glb/.bvh path), the motion goes onto that humanoid rig instead
(its bones mapped to the SMPL-24 roles by the add-on; Rigify's rig is generated from its metarig).

Outputs appear only when everything has worked (written into a temporary folder inside `out_dir`,
then moved into place).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

from vmclip.errors import InputError, VmclipError

REPO = Path(__file__).resolve().parents[2]
ADDON_MODULE = "bl_ext.user_default.videomotionclip"
OUTPUTS = ("demo.blend", "demo.mp4", "demo.fbx")
_MARK = "@@VMCLIP_DEMO@@"

# Runs inside the bpy subprocess; reads its settings from a JSON file given as the only argument.
_SCRIPT = r"""
import importlib, json, os, sys, time
import bpy

cfg = json.load(open(sys.argv[-1]))
MARK, MODULE = cfg["mark"], cfg["module"]


def say(**kw):
    print(MARK + json.dumps(kw), flush=True)


def fail(msg):
    say(error=msg)
    sys.exit(3)


def bad(msg):  # the user's input (the rig) is the problem
    say(bad_input=msg)
    sys.exit(3)


if bpy.ops.extensions.package_install_files(filepath=cfg["zip"], repo="user_default",
                                             enable_on_install=True) != {"FINISHED"}:
    fail("the add-on could not be installed into Blender")
prefs = bpy.context.preferences.addons[MODULE].preferences
prefs.address, prefs.timeout_s, prefs.retries = cfg["address"], 5.0, 0
scene = bpy.context.scene
for obj in list(bpy.data.objects):  # the factory cube is not part of the demo
    if obj.type == "MESH":
        bpy.data.objects.remove(obj)
scene.render.fps, scene.render.fps_base, scene.frame_start = 30, 1.0, 1
settings = scene.vmclip
settings.prompt, settings.seconds, settings.seed = cfg["prompt"], cfg["seconds"], cfg["seed"]
settings.video_size = str(cfg["size"])
settings.video_camera = cfg.get("camera", "follow")


def load_rig(spec):
    # The artist's armature: Rigify's generated human, or the armature of an imported file.
    before = set(bpy.data.objects)
    if spec == "rigify":
        import addon_utils
        if not addon_utils.check("rigify")[1]:
            bpy.ops.preferences.addon_enable(module="rigify")
        bpy.ops.object.armature_human_metarig_add()
        meta = bpy.context.object
        bpy.ops.pose.rigify_generate()
        rig = bpy.context.object
        bpy.data.objects.remove(meta)  # the metarig only describes the rig; the demo keeps the rig
        bpy.ops.object.mode_set(mode="OBJECT")
        return rig
    ext = os.path.splitext(spec)[1].lower()
    if ext == ".blend":
        with bpy.data.libraries.load(spec, link=False) as (src, dst):
            dst.objects = list(src.objects)
        for obj in dst.objects:
            if obj is not None and obj.type in {"ARMATURE", "MESH"}:
                scene.collection.objects.link(obj)
    elif ext == ".fbx":
        bpy.ops.import_scene.fbx(filepath=spec)
    elif ext in (".glb", ".gltf"):
        bpy.ops.import_scene.gltf(filepath=spec)
    elif ext == ".bvh":
        bpy.ops.import_anim.bvh(filepath=spec, global_scale=cfg.get("bvh_scale", 1.0))
    arms = [o for o in bpy.data.objects if o not in before and o.type == "ARMATURE"]
    if not arms:
        bad(f"{os.path.basename(spec)} holds no armature")
    if bpy.context.object is not None and bpy.context.object.mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")
    rig = max(arms, key=lambda o: len(o.data.bones))
    heads = [rig.matrix_world @ b.head_local for b in rig.data.bones]
    height = max(h.z for h in heads) - min(h.z for h in heads)
    if not 0.5 < height < 4.0:  # a rig in centimetres (BVH, FBX): sized like a person for the camera
        rig.scale = rig.scale * (1.7 / max(height, 1e-6))
    if rig.animation_data is not None and rig.animation_data.action is not None:
        rig.animation_data.action.use_fake_user = True  # the file's own motion stays in demo.blend
    return rig


if cfg.get("rig"):
    say(stage=f"load rig {cfg['rig_name']}")
    settings.armature = load_rig(cfg["rig"])
    try:
        mapped = bpy.ops.vmclip.map_rig()
    except RuntimeError:  # (its ERROR report: a rig built like no person; the status line says why)
        mapped = None
    if mapped != {"FINISHED"} or bpy.context.window_manager.vmclip_state.status_is_error:
        bad(bpy.context.window_manager.vmclip_state.status)
    say(note=bpy.context.window_manager.vmclip_state.status)
    if cfg.get("check_only"):  # the rig alone, before any motion is generated
        try:
            importlib.import_module(MODULE + ".operators").target_map(bpy.context)
        except Exception as exc:  # noqa: BLE001 - the add-on's one-line reason
            bad(str(exc))
        say(result={"rig": "humanoid"})
        sys.exit(0)
for path in cfg["images"]:
    settings.images.add().filepath = path
work = cfg["work"]
blend = os.path.join(work, "demo.blend")
bpy.ops.wm.save_as_mainfile(filepath=blend)  # the video is baked beside the .blend


def run(label, op, **kw):
    say(stage=label)
    t0 = time.monotonic()
    try:
        outcome = op(**kw)
    except RuntimeError as exc:  # the add-on's ERROR report (one line)
        fail(f"{label}: {str(exc).strip().removeprefix('Error: ')}")
    if outcome != {"FINISHED"}:
        fail(f"{label}: {bpy.context.window_manager.vmclip_state.status or outcome}")
    say(done=label, seconds=round(time.monotonic() - t0, 1))


run("check connection", bpy.ops.vmclip.check_connection)
# Jobs send progress at least once a second; 15 s of silence means the backend is gone.
prefs.timeout_s, prefs.retries = 15.0, 1
say(stage="generate motion")
t0 = time.monotonic()
try:
    outcome = bpy.ops.vmclip.generate_motion()
except RuntimeError as exc:  # the add-on's ERROR report; a rig it cannot map is the user's input
    msg = str(exc).strip().removeprefix("Error: ")
    (bad if "humanoid" in msg or "no bone" in msg else fail)(f"generate motion: {msg}")
if outcome != {"FINISHED"}:
    fail(f"generate motion: {bpy.context.window_manager.vmclip_state.status or outcome}")
say(done="generate motion", seconds=round(time.monotonic() - t0, 1))
arm = settings.armature
skinned = [m for o in bpy.data.objects if o.type == "MESH" for m in o.modifiers if m.type == "ARMATURE"]
# A bare rig gets the add-on's mannequin on its deform bones, so demo.blend shows a body moving.
if cfg.get("rig") and not any(m.object == arm for m in skinned):
    importlib.import_module(MODULE + ".rig").create_proxy_body(bpy.context, arm)
# A camera on the rig, so that opening demo.blend and pressing F12 shows the motion too.
cam = scene.camera
if cam is not None:
    cam.location = (0.0, -6.0, 1.1)
    cam.rotation_euler = (1.5708, 0.0, 0.0)
body = bpy.data.objects.get(arm.name + "_body")
say(note=f"fitted body: {body.name}" if body is not None else
    "no fitted body (see the status line): the rig shows its mannequin")
for image in bpy.data.images:  # the photo travels inside demo.blend, so the body stays textured
    on_disk = os.path.isfile(bpy.path.abspath(image.filepath))
    if image.source == "FILE" and image.packed_file is None and on_disk:
        image.pack()
run("bake video", bpy.ops.vmclip.bake_video)
run("export FBX", bpy.ops.vmclip.export_fbx, filepath=os.path.join(work, "demo.fbx"))
bpy.ops.wm.save_as_mainfile(filepath=blend)
action = arm.animation_data.action
say(result={"frames": scene.frame_end - scene.frame_start + 1, "action": action.name,
            "bones": len(arm.data.bones), "body": body.name if body is not None else None,
            "status": bpy.context.window_manager.vmclip_state.status})
"""


RIG_SUFFIXES = (".blend", ".fbx", ".glb", ".gltf", ".bvh")


def resolve_rig(spec: str, work: Path) -> str:
    """`--rig`: 'rigify', or the path of a file holding a humanoid armature. A path whose file is
    missing is looked up in a zip named after one of its folders (how ../shared stores its mocap);
    the member is extracted into `work`. InputError (one line) for anything else."""
    if spec.strip().lower() == "rigify":
        return "rigify"
    path = Path(spec).expanduser()
    if path.suffix.lower() not in RIG_SUFFIXES:
        raise InputError(f"--rig {spec}: expected 'rigify' or a {', '.join(RIG_SUFFIXES)} file")
    if path.is_file():
        return str(path.resolve())
    for folder in path.parents:
        if not folder.name:
            continue
        archive = folder.with_name(folder.name + ".zip")
        if archive.is_file():
            member = path.relative_to(folder).as_posix()
            with zipfile.ZipFile(archive) as z:
                if member not in z.namelist():
                    break
                target = work / ".rig" / path.name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(z.read(member))
                return str(target.resolve())
    raise InputError(f"--rig {spec}: no such file")


def _load_builder():
    path = REPO / "build_addon.py"
    if not path.is_file():
        raise VmclipError(f"{path} is missing: the Blender demo needs the repository's add-on sources")
    spec = importlib.util.spec_from_file_location("vmclip_build_addon", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_script(cfg: dict, tmp_path: Path, timeout_s: float, log) -> dict:
    """Run the bpy script with `cfg` in a fresh Blender user folder under `tmp_path`; its result.
    InputError for the user's rig, VmclipError (one line) when Blender or the backend fails."""
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    (tmp_path / "demo_script.py").write_text(_SCRIPT)
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "blender-user"))
    cmd = [sys.executable, str(tmp_path / "demo_script.py"), str(tmp_path / "cfg.json")]
    summary: dict = {}
    error = bad_input = None
    tail: list[str] = []
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path
    )
    try:
        for line in proc.stdout:
            if line.startswith(_MARK):
                msg = json.loads(line[len(_MARK) :])
                if "stage" in msg:
                    log(f"blender: {msg['stage']}...")
                elif "done" in msg:
                    log(f"blender: {msg['done']} done ({msg['seconds']} s)")
                elif "note" in msg:
                    log(f"blender: {msg['note']}")
                elif "error" in msg:
                    error = msg["error"]
                elif "bad_input" in msg:
                    bad_input = msg["bad_input"]
                elif "result" in msg:
                    summary = msg["result"]
            else:
                tail = (tail + [line.rstrip()])[-20:]
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise VmclipError(f"headless Blender did not finish within {timeout_s:.0f} s") from None
    if bad_input is not None:
        raise InputError(f"--rig: {bad_input}")
    if error is not None:
        raise VmclipError(f"Blender demo: {error}")
    if proc.returncode != 0 or not summary:
        detail = next((t for t in reversed(tail) if t.strip()), "no output")
        raise VmclipError(f"headless Blender failed (exit {proc.returncode}): {detail}")
    return summary


def check_rig(rig: str, out_dir: str | Path, *, timeout_s: float = 600.0, log=print) -> None:
    """Load `rig` (a path resolve_rig gave) into headless Blender and map it with the add-on, as the
    demo will, before any backend or motion: InputError (one line) when it is not a humanoid the
    add-on can key."""
    if importlib.util.find_spec("bpy") is None:
        raise VmclipError("the bpy module is not installed (pip install bpy==5.0.1, Python 3.11)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".vmclip-rig-", dir=out_dir) as tmp:
        tmp_path = Path(tmp).resolve()
        zip_path = _load_builder().build(tmp_path / "dist", offline=True, log=lambda *_: None)
        cfg = {
            "mark": _MARK,
            "module": ADDON_MODULE,
            "zip": str(zip_path),
            "address": "",
            "prompt": "",
            "seconds": 1.0,
            "seed": 0,
            "size": 256,
            "images": [],
            "work": str(tmp_path),
            "rig": rig,
            "rig_name": Path(rig).name,
            "check_only": True,
        }
        _run_script(cfg, tmp_path, timeout_s, log)


def run_blender_demo(
    out_dir: str | Path,
    server_address: str,
    images: Sequence[str | Path],
    prompt: str,
    seconds: float = 4.0,
    seed: int = 0,
    *,
    size: int = 512,
    camera: str = "follow",
    rig: str | None = None,
    timeout_s: float = 3600.0,
    log=print,
) -> dict:
    """Generate, bake and export through the add-on in headless Blender; returns paths and a summary.

    `server_address` must be a running `vmclip serve`. Raises InputError for bad arguments and
    VmclipError (one line) when Blender or the backend fails."""
    out_dir = Path(out_dir)
    images = [Path(p).resolve() for p in images]
    if not images:
        raise InputError("the Blender demo needs at least one photo of the person")
    for img in images:
        if not img.is_file():
            raise InputError(f"{img}: no such image")
    if not prompt.strip():
        raise InputError("the Blender demo needs a prompt")
    if importlib.util.find_spec("bpy") is None:  # (not imported here: Blender runs in a subprocess)
        raise VmclipError("the bpy module is not installed (pip install bpy==5.0.1, Python 3.11)")
    out_dir.mkdir(parents=True, exist_ok=True)
    builder = _load_builder()
    with tempfile.TemporaryDirectory(prefix=".vmclip-demo-", dir=out_dir) as tmp:
        tmp_path = Path(tmp).resolve()  # absolute: Blender runs with this folder as its working directory
        zip_path = builder.build(tmp_path / "dist", offline=True, log=lambda *_: None)
        work = tmp_path / "out"
        work.mkdir()
        cfg = {
            "mark": _MARK,
            "module": ADDON_MODULE,
            "zip": str(zip_path),
            "address": server_address,
            "prompt": prompt,
            "seconds": float(seconds),
            "seed": int(seed),
            "size": int(size),
            "camera": camera,
            "images": [str(p) for p in images],
            "work": str(work),
            "rig": rig,
            "rig_name": Path(rig).name if rig else None,
        }
        summary = _run_script(cfg, tmp_path, timeout_s, log)
        missing = [name for name in OUTPUTS if not (work / name).is_file()]
        if missing:
            raise VmclipError(f"headless Blender did not write {', '.join(missing)}")
        paths = {}
        for name in OUTPUTS:
            dest = out_dir / name
            os.replace(work / name, dest)
            paths[name.split(".")[1]] = dest
        for extra in work.glob("*.blend1"):  # Blender's backup of the first save
            extra.unlink()
    return {**summary, **paths}
